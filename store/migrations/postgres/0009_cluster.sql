-- Postgres only: the servers of a cluster, and the leader's lease. The lease row carries a
-- fencing epoch that rises at every change of holder; every write a leader makes checks,
-- in its own transaction, that the row still names it with its epoch (`FOR SHARE`, so a
-- takeover waits for writes under way and no write commits after one).
CREATE TABLE cluster_servers (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    api_url       TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    seen_at_ms    BIGINT NOT NULL
);

CREATE TABLE cluster_lease (
    name           TEXT PRIMARY KEY,
    holder         TEXT NOT NULL,
    -- The holder's server name: a server that restarts takes its own lease back at once.
    holder_name    TEXT NOT NULL,
    epoch          BIGINT NOT NULL,
    api_url        TEXT NOT NULL,
    acquired_at_ms BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    -- How many times the lease passed from a server that did not give it up.
    failovers      BIGINT NOT NULL DEFAULT 0
);
