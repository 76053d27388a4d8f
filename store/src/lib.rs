//! Durable state through sqlx: SQLite in the data dir (the embedded default, one server),
//! or Postgres by URL (several servers, one leader). The migrations, one directory per
//! dialect in `store/migrations`, are embedded in the binary. One file per kind of record:
//! apps, deployments, what steps and hooks wrote (plugin state, events), replicas, the
//! catalog of plugins and CI profiles, and the cluster's lease. The SQL is written once,
//! with `$N` parameters, which both dialects read.
//!
//! Every write a step makes lands in one transaction, so a crash leaves either the whole
//! step or none of it; with Postgres that transaction also checks the leader's fencing
//! epoch (`fence.rs`), so a server that lost the lease writes nothing. Rows map to records
//! through `FromRow`, JSON columns through `sqlx::types::Json`, closed sets as text (the
//! model crate's `sqlx` feature): nothing panics on a bad row.
//!
//! A crate of its own, below everything that writes: it depends on the model alone, so
//! that no query can reach up into the engine or the router.

mod apps;
mod catalog;
pub mod cluster;
mod deployments;
mod fence;
mod migrate;
mod registries;
mod replicas;
mod steps;

pub use deployments::{ListFilter, Transition};
pub use fence::{Fence, NotLeader};
pub use migrate::copy_to;
pub use steps::{StepEvent, StepWrites};

use anyhow::{Context, Result, bail};
use hivemind_model::{error, model};
use sqlx::SqlitePool;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// The database behind a store.
#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code on whichever pool the store has: the code is type-checked once
/// per dialect, and the SQL text is shared.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` in a transaction that first checks the leader's fence (with Postgres) and
/// commits at the end; an error anywhere (`?`) rolls the whole of it back. A write that
/// failed (a full disk, a database gone, a lost lease) closes its connection rather than
/// hand it to the next writer: after a COMMIT that failed, SQLite may have rolled back on
/// its own or not, and a connection whose transaction state is in doubt once held the
/// database's write lock for good ("database is locked" after the disk had room again).
macro_rules! write_tx {
    ($store:expr, $tx:ident => $body:expr) => {
        with_pool!($store, pool => {
            let mut connection = pool.acquire().await?;
            let done: anyhow::Result<_> = async {
                let mut $tx = sqlx::Connection::begin(&mut *connection).await?;
                if let Some((holder, epoch)) = $store.fence.holder()? {
                    let held: Option<(i64,)> = sqlx::query_as($crate::fence::CHECK)
                        .bind(holder)
                        .bind(epoch)
                        .fetch_optional(&mut *$tx)
                        .await?;
                    if held.is_none() {
                        return Err($store.fence.lost(epoch).into());
                    }
                }
                #[allow(clippy::redundant_closure_call)]
                let out = $body;
                $tx.commit().await?;
                Ok(out)
            }
            .await;
            if done.is_err() {
                connection.close_on_drop();
            }
            done?
        })
    };
}

pub(crate) use {with_pool, write_tx};

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// Whether this server may write, and under which epoch (Postgres).
    fence: Fence,
}

impl Store {
    /// Opens (creating if needed) the SQLite database in `data_dir` and migrates it.
    pub async fn open(data_dir: &Path) -> Result<Store> {
        let path = data_dir.join("hivemind.db");
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening the database {}", path.display()))?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await.context("migrating the database")?;
        Ok(Store { pool: Pool::Sqlite(pool), fence: Fence::unfenced() })
    }

    /// Connects to the Postgres database at `url` and migrates it. Writes are refused
    /// until this server holds the lease (`Fence::lead`).
    pub async fn connect(url: &str) -> Result<Store> {
        let shown = redact(url);
        let options = PgConnectOptions::from_str(url)
            .with_context(|| {
                format!(
                    "--database-url {shown} is not a Postgres URL: write postgres://USER:PASSWORD@HOST:PORT/DATABASE"
                )
            })?
            // A server paused inside a transaction (SIGSTOP, a VM frozen) would hold its
            // lock on the lease row and keep any other server from taking over: Postgres
            // ends such a session after 2 s. No transaction of ours waits that long.
            .options([("idle_in_transaction_session_timeout", "2s"), ("lock_timeout", "5s")]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .with_context(|| {
                format!("connecting to the database {shown}: is Postgres running there, and are the user, password and database right?")
            })?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .with_context(|| format!("migrating the database {shown}"))?;
        Ok(Store { pool: Pool::Postgres(pool), fence: Fence::follower() })
    }

    /// The store for `--database-url`, or SQLite in the data dir when there is none.
    pub async fn open_url(url: Option<&str>, data_dir: &Path) -> Result<Store> {
        match url {
            None => Store::open(data_dir).await,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Store::connect(url).await
            }
            Some(url) if url.starts_with("sqlite:") => bail!(
                "--database-url {}: SQLite lives in the data dir; leave --database-url out to use it",
                redact(url)
            ),
            Some(url) => bail!(
                "--database-url {}: only postgres:// URLs are supported (leave it out for SQLite in the data dir)",
                redact(url)
            ),
        }
    }

    /// Whether several servers may share this store (Postgres).
    pub fn is_shared(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    pub fn dialect(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    pub(crate) fn postgres(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }
}

/// A database URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
