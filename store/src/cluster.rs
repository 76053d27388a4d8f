//! The cluster's records in Postgres: the servers that joined, and the leader's lease.
//! Times are the database's clock (`clock_timestamp()`), so that servers whose clocks
//! disagree still agree on when a lease expires.

use super::Store;
use anyhow::{Result, bail};
use sqlx::PgPool;

/// Milliseconds since the epoch by the database's clock.
const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The channel a leader that gives the lease up notifies, so followers take over at once
/// instead of at the lease's expiry.
pub const LEASE_CHANNEL: &str = "hivemind_lease";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Lease {
    /// The server instance that holds it.
    pub holder: String,
    /// Its server name.
    pub holder_name: String,
    pub epoch: i64,
    /// Where the holder's API answers.
    pub api_url: String,
    pub acquired_at_ms: i64,
    /// 0 when the holder gave it up.
    pub expires_at_ms: i64,
    /// How many times the lease passed on from a server that did not give it up.
    pub failovers: i64,
    /// The database's clock when this was read.
    pub now_ms: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub api_url: String,
    pub started_at_ms: i64,
    pub seen_at_ms: i64,
    pub now_ms: i64,
}

impl Store {
    fn cluster_pool(&self) -> Result<&PgPool> {
        match self.postgres() {
            Some(pool) => Ok(pool),
            None => bail!("a cluster needs a shared database: start the servers with --database-url postgres://..."),
        }
    }

    /// Records this server as a member (or that it is still alive).
    pub async fn heartbeat(&self, id: &str, name: &str, api_url: &str, started_at_ms: i64) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO cluster_servers (id, name, api_url, started_at_ms, seen_at_ms) VALUES ($1, $2, $3, $4, {DB_NOW_MS}) \
             ON CONFLICT (id) DO UPDATE SET seen_at_ms = excluded.seen_at_ms, api_url = excluded.api_url"
        ))
        .bind(id)
        .bind(name)
        .bind(api_url)
        .bind(started_at_ms)
        .execute(self.cluster_pool()?)
        .await?;
        Ok(())
    }

    /// Forgets this server: it stops.
    pub async fn leave(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM cluster_servers WHERE id = $1").bind(id).execute(self.cluster_pool()?).await?;
        Ok(())
    }

    /// Members seen within `recent_ms`, oldest first.
    pub async fn members(&self, recent_ms: i64) -> Result<Vec<Member>> {
        Ok(sqlx::query_as(&format!(
            "SELECT id, name, api_url, started_at_ms, seen_at_ms, {DB_NOW_MS} AS now_ms FROM cluster_servers \
             WHERE seen_at_ms > {DB_NOW_MS} - $1 ORDER BY started_at_ms, id"
        ))
        .bind(recent_ms)
        .fetch_all(self.cluster_pool()?)
        .await?)
    }

    /// Takes the lease for `lease_ms` if nobody holds it, its holder's expired (or was
    /// given up), or its holder had this server's name (this server, before it restarted);
    /// the epoch rises with every new holder. None when another holds it.
    pub async fn try_acquire(&self, holder: &str, name: &str, api_url: &str, lease_ms: i64) -> Result<Option<Lease>> {
        Ok(sqlx::query_as(&format!(
            "INSERT INTO cluster_lease AS l (name, holder, holder_name, epoch, api_url, acquired_at_ms, expires_at_ms) \
             VALUES ('leader', $1, $4, 1, $2, {DB_NOW_MS}, {DB_NOW_MS} + $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, holder_name = excluded.holder_name, \
             epoch = l.epoch + 1, api_url = excluded.api_url, \
             acquired_at_ms = excluded.acquired_at_ms, expires_at_ms = excluded.expires_at_ms, \
             failovers = l.failovers + CASE WHEN l.expires_at_ms > 0 THEN 1 ELSE 0 END \
             WHERE l.expires_at_ms < excluded.acquired_at_ms OR l.holder_name = excluded.holder_name \
             RETURNING holder, holder_name, epoch, api_url, acquired_at_ms, expires_at_ms, failovers, {DB_NOW_MS} AS now_ms"
        ))
        .bind(holder)
        .bind(api_url)
        .bind(lease_ms)
        .bind(name)
        .fetch_optional(self.cluster_pool()?)
        .await?)
    }

    /// Extends the lease `holder` has under `epoch`; false when it is no longer theirs.
    pub async fn renew(&self, holder: &str, epoch: i64, lease_ms: i64) -> Result<bool> {
        let done = sqlx::query(&format!(
            "UPDATE cluster_lease SET expires_at_ms = {DB_NOW_MS} + $3 \
             WHERE name = 'leader' AND holder = $1 AND epoch = $2 AND expires_at_ms > 0"
        ))
        .bind(holder)
        .bind(epoch)
        .bind(lease_ms)
        .execute(self.cluster_pool()?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease up (the server stops) and tells the followers.
    pub async fn resign(&self, holder: &str, epoch: i64) -> Result<()> {
        let pool = self.cluster_pool()?;
        let mut tx = pool.begin().await?;
        sqlx::query("UPDATE cluster_lease SET expires_at_ms = 0 WHERE name = 'leader' AND holder = $1 AND epoch = $2")
            .bind(holder)
            .bind(epoch)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("NOTIFY {LEASE_CHANNEL}")).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The lease as it stands, if anyone ever held it.
    pub async fn lease(&self) -> Result<Option<Lease>> {
        Ok(sqlx::query_as(&format!(
            "SELECT holder, holder_name, epoch, api_url, acquired_at_ms, expires_at_ms, failovers, {DB_NOW_MS} AS now_ms \
             FROM cluster_lease WHERE name = 'leader'"
        ))
        .fetch_optional(self.cluster_pool()?)
        .await?)
    }

    /// A listener on the lease channel.
    pub async fn listen_lease(&self) -> Result<sqlx::postgres::PgListener> {
        let mut listener = sqlx::postgres::PgListener::connect_with(self.cluster_pool()?).await?;
        listener.listen(LEASE_CHANNEL).await?;
        Ok(listener)
    }
}
