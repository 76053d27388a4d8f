-- Each image a deployment runs, as asked, and the reference it was pinned to
-- (`repo@sha256:…`), JSON (see model::Deployment::images).
ALTER TABLE deployments ADD COLUMN images JSONB NOT NULL DEFAULT '{}';
-- Registry credentials given with `hivemind registry login`, used for image pulls by
-- whichever server leads. No answer, event or log shows the password.
CREATE TABLE registry_logins (
    registry      TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    password      TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
