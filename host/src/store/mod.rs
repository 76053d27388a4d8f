//! Durable state, SQLite through sqlx, with the migrations in `host/migrations` embedded
//! in the binary. One file per kind of record: apps, deployments, what steps and hooks
//! wrote (plugin state, events), replicas, and the catalog of plugins and CI profiles.
//! Every write a step makes lands in one transaction, so a crash leaves either the whole
//! step or none of it. Rows map to records through `FromRow`, JSON columns through
//! `sqlx::types::Json`, closed sets through `sqlx::Type`: nothing panics on a bad row.

mod apps;
mod catalog;
mod deployments;
mod replicas;
mod steps;

pub use deployments::{ListFilter, Transition};
pub use steps::{StepEvent, StepWrites};

use anyhow::{Context, Result};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
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
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening the database {}", path.display()))?;
        sqlx::migrate!("./migrations").run(&pool).await.context("migrating the database")?;
        Ok(Store { pool })
    }
}
