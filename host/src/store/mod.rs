//! Durable state: apps, deployments, plugin state, events, replicas, installed plugins.
//!
//! SQLite through sqlx, with the migrations in `host/migrations` embedded in the binary.
//! Every write a step makes (its state, its progress, its event) lands in one transaction,
//! so a crash leaves either the whole step or none of it.

use crate::model::{
    App, Deployment, Event, Level, Phase, PluginRef, Release, ReplicaRecord, RollbackKind, Status, now_ms,
};
use anyhow::{Context, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool, sqlite::SqliteRow};
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// Which deployments a list shows.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub app: Option<String>,
    pub status: Option<Status>,
    pub strategy: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// A change of a deployment's status, with the event that records it.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    pub status: Status,
    /// Set when a rollback phase starts: why it runs.
    pub rollback_kind: Option<RollbackKind>,
    /// Set to record a promotion (true) or that a step consumed it (false).
    pub promoted: Option<bool>,
    /// Restart the progress-deadline clock.
    pub touch_progress: bool,
    /// A new phase restarts the phase clock and the attempt count.
    pub phase: Option<Phase>,
    pub progress: Option<u8>,
    pub message: &'a str,
    pub level: Level,
    pub error: Option<&'a str>,
}

impl<'a> Transition<'a> {
    pub fn to(status: Status, message: &'a str) -> Transition<'a> {
        Transition {
            status,
            rollback_kind: None,
            promoted: None,
            touch_progress: false,
            phase: None,
            progress: None,
            message,
            level: Level::Info,
            error: None,
        }
    }
}

/// What one step wrote, persisted atomically.
#[derive(Debug, Default)]
pub struct StepWrites {
    pub state: HashMap<String, Vec<u8>>,
    pub progress: Option<(u8, String)>,
    /// Lines for the event log: the plugin's own, and what its capabilities changed.
    pub events: Vec<(Level, String)>,
    /// How many of `events` the plugin wrote itself (they are bounded per step).
    pub plugin_lines: usize,
    /// The step changed the traffic split or the replica set: progress, for the
    /// progress deadline, as a rise of the reported percentage is.
    pub progressed: bool,
}

/// The event that records a step's outcome: a new line, or the line of the steps before
/// it, when they said the same and wrote nothing else, updated with the count.
#[derive(Debug, Clone)]
pub enum StepEvent {
    New { level: Level, message: String },
    Repeat { id: i64, message: String },
}

const DEPLOYMENT_COLUMNS: &str = "id, app, name, strategy, spec, target_version, previous, status, phase, progress, message, error, \
     plugin_name, plugin_version, plugin_sha256, attempt, phase_started_at_ms, rollback_kind, promoted, rollback_of, \
     last_progress_at_ms, winner, hook_runs, created_at_ms, updated_at_ms, promotions";

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

    // ---- apps ----

    pub async fn app(&self, name: &str) -> Result<Option<App>> {
        let row = sqlx::query("SELECT * FROM apps WHERE name = ?").bind(name).fetch_optional(&self.pool).await?;
        row.map(app_from_row).transpose()
    }

    pub async fn apps(&self) -> Result<Vec<App>> {
        let rows = sqlx::query("SELECT * FROM apps ORDER BY name").fetch_all(&self.pool).await?;
        rows.into_iter().map(app_from_row).collect()
    }

    pub async fn insert_app(&self, name: &str, port: u16) -> Result<App> {
        let now = now_ms();
        sqlx::query("INSERT INTO apps (name, port, created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?)")
            .bind(name)
            .bind(port as i64)
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(self.app(name).await?.expect("just inserted"))
    }

    /// Takes the app's next release number (1, 2, ...).
    pub async fn next_release_number(&self, app: &str) -> Result<i64> {
        let row = sqlx::query(
            "UPDATE apps SET release_counter = release_counter + 1 WHERE name = ? RETURNING release_counter",
        )
        .bind(app)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get(0))
    }

    /// Records the release that serves; the app is healthy again if it was degraded.
    pub async fn set_app_release(&self, app: &str, release: Option<&Release>) -> Result<()> {
        sqlx::query("UPDATE apps SET release = ?, degraded = NULL, updated_at_ms = ? WHERE name = ?")
            .bind(release.map(|r| serde_json::to_string(r).unwrap()))
            .bind(now_ms())
            .bind(app)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_app_replica_quota(&self, app: &str, quota: u32) -> Result<()> {
        sqlx::query("UPDATE apps SET replica_quota = ?, updated_at_ms = ? WHERE name = ?")
            .bind(quota as i64)
            .bind(now_ms())
            .bind(app)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that the app is not as any deployment meant it to be, why, and the release
    /// that really serves (none when no single release does).
    pub async fn set_app_degraded(&self, app: &str, release: Option<&Release>, why: &str) -> Result<()> {
        sqlx::query("UPDATE apps SET release = ?, degraded = ?, updated_at_ms = ? WHERE name = ?")
            .bind(release.map(|r| serde_json::to_string(r).unwrap()))
            .bind(why)
            .bind(now_ms())
            .bind(app)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_app_split(&self, app: &str, split: &[(String, u32)], sticky: bool) -> Result<()> {
        sqlx::query("UPDATE apps SET split = ?, sticky = ?, updated_at_ms = ? WHERE name = ?")
            .bind(serde_json::to_string(split)?)
            .bind(sticky)
            .bind(now_ms())
            .bind(app)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- deployments ----

    pub async fn insert_deployment(&self, d: &Deployment) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO deployments ({DEPLOYMENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        ))
        .bind(&d.id)
        .bind(&d.app)
        .bind(&d.name)
        .bind(&d.strategy)
        .bind(serde_json::to_string(&d.spec)?)
        .bind(&d.target_version)
        .bind(d.previous.as_ref().map(|r| serde_json::to_string(r).unwrap()))
        .bind(d.status.as_str())
        .bind(d.phase.as_str())
        .bind(d.progress as i64)
        .bind(&d.message)
        .bind(&d.error)
        .bind(&d.plugin.name)
        .bind(&d.plugin.version)
        .bind(&d.plugin.sha256)
        .bind(d.attempt as i64)
        .bind(d.phase_started_at_ms)
        .bind(d.rollback_kind.map(|k| k.as_str()))
        .bind(d.promoted)
        .bind(&d.rollback_of)
        .bind(d.last_progress_at_ms)
        .bind(&d.winner)
        .bind(serde_json::to_string(&d.hook_runs)?)
        .bind(d.created_at_ms)
        .bind(d.updated_at_ms)
        .bind(d.promotions as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn deployment(&self, id: &str) -> Result<Option<Deployment>> {
        let row = sqlx::query(&format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(deployment_from_row).transpose()
    }

    /// Deployments, newest first, filtered, a page at a time.
    pub async fn list_deployments(&self, f: &ListFilter) -> Result<Vec<Deployment>> {
        let rows = sqlx::query(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE (?1 IS NULL OR app = ?1) AND (?2 IS NULL OR status = ?2) \
             AND (?3 IS NULL OR strategy = ?3) ORDER BY created_at_ms DESC, id DESC LIMIT ?4 OFFSET ?5"
        ))
        .bind(&f.app)
        .bind(f.status.map(|s| s.as_str()))
        .bind(&f.strategy)
        .bind(f.limit)
        .bind(f.offset)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(deployment_from_row).collect()
    }

    /// Deployments, newest first, optionally of one app.
    pub async fn deployments(&self, app: Option<&str>, limit: i64) -> Result<Vec<Deployment>> {
        let rows = sqlx::query(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE (?1 IS NULL OR app = ?1) ORDER BY created_at_ms DESC, id DESC LIMIT ?2"
        ))
        .bind(app)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(deployment_from_row).collect()
    }

    /// Deployments an engine must drive: in progress, awaiting approval, rolling back.
    pub async fn active_deployments(&self) -> Result<Vec<Deployment>> {
        let rows = sqlx::query(&format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE status IN ('in_progress', 'paused', 'awaiting_approval', 'rolling_back') ORDER BY created_at_ms"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(deployment_from_row).collect()
    }

    /// Moves a deployment to a new status (and optionally phase), with an event, atomically.
    pub async fn transition(&self, id: &str, to: Transition<'_>) -> Result<()> {
        let Transition { status, rollback_kind, promoted, touch_progress, phase, progress, message, level, error } = to;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE deployments SET status = ?, message = ?, updated_at_ms = ?, progress = COALESCE(?, progress), error = COALESCE(?, error), \
             rollback_kind = COALESCE(?, rollback_kind), promoted = COALESCE(?, promoted), \
             promotions = promotions + CASE WHEN ? THEN 1 ELSE 0 END, \
             last_progress_at_ms = CASE WHEN ? THEN ? ELSE last_progress_at_ms END, \
             phase = COALESCE(?, phase), attempt = CASE WHEN ? IS NULL THEN attempt ELSE 0 END, \
             phase_started_at_ms = CASE WHEN ? IS NULL THEN phase_started_at_ms ELSE ? END WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(message)
        .bind(now)
        .bind(progress.map(|p| p as i64))
        .bind(error)
        .bind(rollback_kind.map(|k| k.as_str()))
        .bind(promoted)
        .bind(promoted == Some(true))
        .bind(touch_progress)
        .bind(now)
        .bind(phase.map(|p| p.as_str()))
        .bind(phase.map(|p| p.as_str()))
        .bind(phase.map(|p| p.as_str()))
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if status.is_terminal() {
            // A finished deployment's plugin never runs again: its state goes (its events,
            // which `diagnose` reads, stay).
            sqlx::query("DELETE FROM plugin_state WHERE deployment_id = ?").bind(id).execute(&mut *tx).await?;
        }
        insert_event(&mut tx, id, now, level, message).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the A/B variant that wins, with an event.
    pub async fn set_winner(&self, id: &str, winner: &str, message: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE deployments SET winner = ?, updated_at_ms = ? WHERE id = ?")
            .bind(winner)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_event(&mut tx, id, now_ms(), Level::Info, message).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Persists what one step did: its state, progress, log lines and outcome event.
    /// Progress (for the deadline) is a rise of the reported percentage, or a change of
    /// the split or the replica set. Returns the id of the outcome's event.
    pub async fn record_step(&self, id: &str, writes: &StepWrites, outcome: &StepEvent) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for (key, value) in &writes.state {
            sqlx::query("INSERT INTO plugin_state (deployment_id, key, value) VALUES (?, ?, ?) ON CONFLICT(deployment_id, key) DO UPDATE SET value = excluded.value")
                .bind(id)
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        let risen = writes.progress.as_ref().map(|(percent, _)| *percent as i64);
        sqlx::query(
            "UPDATE deployments SET attempt = attempt + 1, updated_at_ms = ?1, \
             last_progress_at_ms = CASE WHEN ?2 OR COALESCE(?3 > progress, 0) THEN ?1 ELSE last_progress_at_ms END \
             WHERE id = ?4",
        )
        .bind(now)
        .bind(writes.progressed)
        .bind(risen)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some((percent, message)) = &writes.progress {
            sqlx::query("UPDATE deployments SET progress = ?, message = ? WHERE id = ?")
                .bind(*percent as i64)
                .bind(message)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for (level, message) in &writes.events {
            insert_event(&mut tx, id, now, *level, message).await?;
        }
        let event_id = match outcome {
            StepEvent::New { level, message } => insert_event(&mut tx, id, now, *level, message).await?,
            StepEvent::Repeat { id: event, message } => {
                sqlx::query("UPDATE events SET message = ?, at_ms = ? WHERE id = ? AND deployment_id = ?")
                    .bind(message)
                    .bind(now)
                    .bind(event)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                *event
            }
        };
        tx.commit().await?;
        Ok(event_id)
    }

    /// Records that a stage's hooks ran, with what they said, atomically: a restart
    /// sees either both or neither.
    pub async fn record_hooks(
        &self,
        id: &str,
        runs: &crate::model::HookRuns,
        events: &[(Level, String)],
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        // A hook that ran is progress: its time does not count against the deadline.
        sqlx::query("UPDATE deployments SET hook_runs = ?, updated_at_ms = ?, last_progress_at_ms = ? WHERE id = ?")
            .bind(serde_json::to_string(runs)?)
            .bind(now)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for (level, message) in events {
            insert_event(&mut tx, id, now, *level, message).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the oldest finished deployments of `app` beyond the newest `keep`, with
    /// their events and state. Returns how many went.
    pub async fn prune_history(&self, app: &str, keep: i64) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let doomed: Vec<String> = sqlx::query(
            "SELECT id FROM deployments WHERE app = ?1 AND status IN ('completed', 'failed', 'rolled_back', 'aborted') \
             AND id NOT IN (SELECT id FROM deployments WHERE app = ?1 ORDER BY created_at_ms DESC, id DESC LIMIT ?2)",
        )
        .bind(app)
        .bind(keep)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
        for id in &doomed {
            for table in ["events", "plugin_state"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE deployment_id = ?")).bind(id).execute(&mut *tx).await?;
            }
            sqlx::query("DELETE FROM deployments WHERE id = ?").bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(doomed.len() as u64)
    }

    /// The size of each value of a deployment's plugin state, by key.
    pub async fn plugin_state_sizes(&self, id: &str) -> Result<HashMap<String, usize>> {
        let rows = sqlx::query("SELECT key, length(value) FROM plugin_state WHERE deployment_id = ?")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)? as usize))).collect()
    }

    /// One value of a deployment's plugin state.
    pub async fn plugin_state_value(&self, id: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT value FROM plugin_state WHERE deployment_id = ? AND key = ?")
            .bind(id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub async fn event(&self, id: &str, level: Level, message: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_event(&mut tx, id, now_ms(), level, message).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn events(&self, id: &str, after: i64) -> Result<Vec<Event>> {
        let rows = sqlx::query("SELECT id, deployment_id, at_ms, level, message FROM events WHERE deployment_id = ? AND id > ? ORDER BY id")
            .bind(id)
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Event {
                id: r.get(0),
                deployment_id: r.get(1),
                at_ms: r.get(2),
                level: r.get(3),
                message: r.get(4),
            })
            .collect())
    }

    // ---- replicas ----

    pub async fn insert_replica(&self, r: &ReplicaRecord) -> Result<()> {
        sqlx::query("INSERT INTO replicas (id, app, version, deployment_id, driver, handle, address, health_address, started_at_ms) VALUES (?,?,?,?,?,?,?,?,?)")
            .bind(&r.id)
            .bind(&r.app)
            .bind(&r.version)
            .bind(&r.deployment_id)
            .bind(&r.driver)
            .bind(&r.handle)
            .bind(&r.address)
            .bind(&r.health_address)
            .bind(r.started_at_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Fills in what the driver said once a recorded replica started.
    pub async fn replica_started(&self, id: &str, handle: &str, address: &str, health_address: &str) -> Result<()> {
        sqlx::query("UPDATE replicas SET handle = ?, address = ?, health_address = ? WHERE id = ?")
            .bind(handle)
            .bind(address)
            .bind(health_address)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The server's id, made at first start.
    pub async fn server_id(&self) -> Result<String> {
        let fresh = format!("{:016x}", fastrand::u64(..));
        sqlx::query("INSERT OR IGNORE INTO settings (key, value) VALUES ('server_id', ?)")
            .bind(&fresh)
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM settings WHERE key = 'server_id'").fetch_one(&self.pool).await?;
        Ok(row.get(0))
    }

    pub async fn delete_replica(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM replicas WHERE id = ?").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn replicas(&self) -> Result<Vec<ReplicaRecord>> {
        let rows = sqlx::query("SELECT id, app, version, deployment_id, driver, handle, address, health_address, started_at_ms FROM replicas ORDER BY started_at_ms, id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| ReplicaRecord {
                id: r.get(0),
                app: r.get(1),
                version: r.get(2),
                deployment_id: r.get(3),
                driver: r.get(4),
                handle: r.get(5),
                address: r.get(6),
                health_address: r.get(7),
                started_at_ms: r.get(8),
            })
            .collect())
    }

    /// Removes an app and all its records: deployments, their events and state.
    pub async fn delete_app(&self, app: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for table in ["events", "plugin_state"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE deployment_id IN (SELECT id FROM deployments WHERE app = ?)"
            ))
            .bind(app)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM deployments WHERE app = ?").bind(app).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM apps WHERE name = ?").bind(app).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- CI pipelines ----

    pub async fn put_pipeline(&self, name: &str, spec: &crate::model::DeploymentSpec) -> Result<()> {
        sqlx::query("INSERT INTO pipelines (name, spec, updated_at_ms) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, updated_at_ms = excluded.updated_at_ms")
            .bind(name)
            .bind(serde_json::to_string(spec)?)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn pipelines(&self) -> Result<Vec<(String, crate::model::DeploymentSpec)>> {
        let rows = sqlx::query("SELECT name, spec FROM pipelines ORDER BY name").fetch_all(&self.pool).await?;
        rows.into_iter().map(|r| Ok((r.get(0), serde_json::from_str(&r.get::<String, _>(1))?))).collect()
    }

    // ---- installed plugins ----

    pub async fn insert_plugin(&self, sha256: &str, name: &str, version: &str, source: &str) -> Result<()> {
        sqlx::query(
            "INSERT OR REPLACE INTO plugins (sha256, name, version, source, installed_at_ms) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(sha256)
        .bind(name)
        .bind(version)
        .bind(source)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_plugin(&self, sha256: &str) -> Result<()> {
        sqlx::query("DELETE FROM plugins WHERE sha256 = ?").bind(sha256).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn set_plugin_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        let sql = if disabled {
            "INSERT OR IGNORE INTO disabled_plugins (name) VALUES (?)"
        } else {
            "DELETE FROM disabled_plugins WHERE name = ?"
        };
        sqlx::query(sql).bind(name).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn disabled_plugins(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT name FROM disabled_plugins").fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// Installed plugins as (sha256, where they came from), oldest first.
    pub async fn installed_plugins(&self) -> Result<Vec<(String, String)>> {
        let rows =
            sqlx::query("SELECT sha256, source FROM plugins ORDER BY installed_at_ms").fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

/// Adds a line to a deployment's event log; returns its id.
async fn insert_event(
    tx: &mut sqlx::SqliteConnection,
    id: &str,
    at_ms: i64,
    level: Level,
    message: &str,
) -> Result<i64> {
    let done = sqlx::query("INSERT INTO events (deployment_id, at_ms, level, message) VALUES (?, ?, ?, ?)")
        .bind(id)
        .bind(at_ms)
        .bind(level)
        .bind(message)
        .execute(tx)
        .await?;
    Ok(done.last_insert_rowid())
}

fn app_from_row(r: SqliteRow) -> Result<App> {
    let release: Option<String> = r.get("release");
    let split: String = r.get("split");
    Ok(App {
        name: r.get("name"),
        port: r.get::<i64, _>("port") as u16,
        release: release.map(|s| serde_json::from_str(&s)).transpose()?,
        split: serde_json::from_str(&split)?,
        sticky: r.get("sticky"),
        degraded: r.get("degraded"),
        replica_quota: r.get::<Option<i64>, _>("replica_quota").map(|q| q as u32),
        release_counter: r.get("release_counter"),
        created_at_ms: r.get("created_at_ms"),
        updated_at_ms: r.get("updated_at_ms"),
    })
}

fn deployment_from_row(r: SqliteRow) -> Result<Deployment> {
    let spec: String = r.get("spec");
    let previous: Option<String> = r.get("previous");
    let status: String = r.get("status");
    let phase: String = r.get("phase");
    Ok(Deployment {
        id: r.get("id"),
        app: r.get("app"),
        name: r.get("name"),
        strategy: r.get("strategy"),
        spec: serde_json::from_str(&spec)?,
        target_version: r.get("target_version"),
        previous: previous.map(|s| serde_json::from_str(&s)).transpose()?,
        status: Status::parse(&status).with_context(|| format!("unknown status {status}"))?,
        phase: if phase == "rollback" { Phase::Rollback } else { Phase::Deploy },
        progress: r.get::<i64, _>("progress") as u8,
        message: r.get("message"),
        error: r.get("error"),
        plugin: PluginRef {
            name: r.get("plugin_name"),
            version: r.get("plugin_version"),
            sha256: r.get("plugin_sha256"),
        },
        attempt: r.get::<i64, _>("attempt") as u32,
        phase_started_at_ms: r.get("phase_started_at_ms"),
        rollback_kind: r.get::<Option<String>, _>("rollback_kind").as_deref().and_then(RollbackKind::parse),
        promoted: r.get("promoted"),
        promotions: r.get::<i64, _>("promotions") as u32,
        rollback_of: r.get("rollback_of"),
        last_progress_at_ms: r.get("last_progress_at_ms"),
        winner: r.get("winner"),
        hook_runs: serde_json::from_str(&r.get::<String, _>("hook_runs"))?,
        created_at_ms: r.get("created_at_ms"),
        updated_at_ms: r.get("updated_at_ms"),
    })
}
