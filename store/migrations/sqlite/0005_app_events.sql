-- An app's own event log: what keeps its release running between deployments (a replica
-- replaced, a crash loop, a scale by request), apart from any deployment's log.
CREATE TABLE app_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    app     TEXT NOT NULL,
    at_ms   INTEGER NOT NULL,
    level   TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX app_events_app ON app_events(app, id);
