-- Apps: one router port each, and the release that serves.
CREATE TABLE apps (
    name            TEXT PRIMARY KEY,
    port            INTEGER NOT NULL UNIQUE,
    -- The release that serves: JSON {version, image, replicas}, NULL before the first success.
    release         TEXT,
    -- The router's split, JSON [[version, weight], ...], restored on restart.
    split           TEXT NOT NULL DEFAULT '[]',
    -- Whether clients keep their version (A/B tests).
    sticky          INTEGER NOT NULL DEFAULT 0,
    release_counter INTEGER NOT NULL DEFAULT 0,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
);

CREATE TABLE deployments (
    id                  TEXT PRIMARY KEY,
    app                 TEXT NOT NULL REFERENCES apps(name),
    name                TEXT NOT NULL,
    strategy            TEXT NOT NULL,
    -- What the user asked for, JSON (see model::DeploymentSpec).
    spec                TEXT NOT NULL,
    target_version      TEXT NOT NULL,
    -- JSON release or NULL.
    previous            TEXT,
    status              TEXT NOT NULL,
    phase               TEXT NOT NULL,
    progress            INTEGER NOT NULL DEFAULT 0,
    message             TEXT NOT NULL DEFAULT '',
    -- Why it failed, kept apart from the message that the rollback phase updates.
    error               TEXT,
    plugin_name         TEXT NOT NULL,
    plugin_version      TEXT NOT NULL,
    plugin_sha256       TEXT NOT NULL,
    attempt             INTEGER NOT NULL DEFAULT 0,
    phase_started_at_ms INTEGER NOT NULL,
    -- Why the rollback phase runs, which decides how it ends: failure, manual, abort.
    rollback_kind       TEXT,
    -- Someone promoted the deployment; the next step sees it, then it is cleared.
    promoted            INTEGER NOT NULL DEFAULT 0,
    -- The deployment this one rolls back, for a rollback of a completed deployment.
    rollback_of         TEXT,
    -- When progress (percent or message) last changed, for the progress deadline.
    last_progress_at_ms INTEGER NOT NULL DEFAULT 0,
    -- The A/B variant picked by select-winner, or the one that won.
    winner              TEXT,
    created_at_ms       INTEGER NOT NULL,
    updated_at_ms       INTEGER NOT NULL
);
CREATE INDEX deployments_app ON deployments(app, created_at_ms);

-- A plugin's saved state, per (deployment, key). The plugin is pinned per deployment.
CREATE TABLE plugin_state (
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    key           TEXT NOT NULL,
    value         BLOB NOT NULL,
    PRIMARY KEY (deployment_id, key)
);

CREATE TABLE events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    at_ms         INTEGER NOT NULL,
    level         TEXT NOT NULL,
    message       TEXT NOT NULL
);
CREATE INDEX events_deployment ON events(deployment_id, id);

-- The server's own settings, such as its id (replicas carry it, so that a server only ever
-- removes orphans of its own).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Replicas the host started and has not seen stop, so a restart can adopt them. A row is
-- written before the replica starts (handle ''), so a crash in between leaves a trace.
CREATE TABLE replicas (
    id             TEXT PRIMARY KEY,
    app            TEXT NOT NULL,
    version        TEXT NOT NULL,
    deployment_id  TEXT NOT NULL,
    driver         TEXT NOT NULL,
    handle         TEXT NOT NULL,
    address        TEXT NOT NULL,
    health_address TEXT NOT NULL,
    started_at_ms  INTEGER NOT NULL
);

-- Deployment profiles for CI (`cicd configure-deployment`): a spec without app or image.
CREATE TABLE pipelines (
    name          TEXT PRIMARY KEY,
    spec          TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

-- Plugins switched off with `plugin disable` (built-in or installed), by name.
CREATE TABLE disabled_plugins (
    name TEXT PRIMARY KEY
);

-- Plugins installed through the API; their bytes live in DATA_DIR/plugins/SHA256.wasm.
CREATE TABLE plugins (
    sha256        TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    version       TEXT NOT NULL,
    installed_at_ms INTEGER NOT NULL
);
