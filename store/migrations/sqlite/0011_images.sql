-- Each image a deployment runs, as asked, and the reference it was pinned to
-- (`repo@sha256:…`), JSON (see model::Deployment::images).
ALTER TABLE deployments ADD COLUMN images TEXT NOT NULL DEFAULT '{}';
-- Registry credentials given with `hivemind registry login`, used for image pulls. The
-- database file is owner-only; no answer, event or log shows the password.
CREATE TABLE registry_logins (
    registry      TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    password      TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
