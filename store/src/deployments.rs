//! Deployments: recorded, listed, moved from status to status (each move with its event,
//! in one transaction), and pruned beyond the history limit.

use super::steps::insert_event;
use super::{Store, with_pool, write_tx};
use crate::model::{
    Deployment, DeploymentSpec, HookRuns, Level, Phase, PluginRef, Release, RollbackKind, Status, now_ms,
};
use anyhow::Result;
use sqlx::types::Json;
use std::collections::BTreeMap;

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

const DEPLOYMENT_COLUMNS: &str = "id, app, name, strategy, spec, target_version, previous, status, phase, progress, message, error, \
     plugin_name, plugin_version, plugin_sha256, attempt, phase_started_at_ms, rollback_kind, promoted, rollback_of, \
     last_progress_at_ms, winner, hook_runs, created_at_ms, updated_at_ms, promotions, images";

#[derive(sqlx::FromRow)]
struct DeploymentRow {
    id: String,
    app: String,
    name: String,
    strategy: String,
    spec: Json<DeploymentSpec>,
    target_version: String,
    previous: Option<Json<Release>>,
    status: Status,
    phase: Phase,
    progress: i64,
    message: String,
    error: Option<String>,
    plugin_name: String,
    plugin_version: String,
    plugin_sha256: String,
    attempt: i64,
    phase_started_at_ms: i64,
    rollback_kind: Option<RollbackKind>,
    promoted: bool,
    promotions: i64,
    rollback_of: Option<String>,
    last_progress_at_ms: i64,
    winner: Option<String>,
    hook_runs: Json<HookRuns>,
    images: Json<BTreeMap<String, String>>,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl From<DeploymentRow> for Deployment {
    fn from(r: DeploymentRow) -> Deployment {
        Deployment {
            id: r.id.into(),
            name: r.name,
            app: r.app.into(),
            strategy: r.strategy.into(),
            spec: r.spec.0,
            target_version: r.target_version,
            previous: r.previous.map(|j| j.0),
            status: r.status,
            phase: r.phase,
            progress: r.progress as u8,
            message: r.message,
            error: r.error,
            plugin: PluginRef { name: r.plugin_name, version: r.plugin_version, sha256: r.plugin_sha256 },
            attempt: r.attempt as u32,
            phase_started_at_ms: r.phase_started_at_ms,
            rollback_kind: r.rollback_kind,
            promoted: r.promoted,
            promotions: r.promotions as u32,
            rollback_of: r.rollback_of.map(Into::into),
            last_progress_at_ms: r.last_progress_at_ms,
            winner: r.winner,
            hook_runs: r.hook_runs.0,
            images: r.images.0,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        }
    }
}

impl Store {
    pub async fn insert_deployment(&self, d: &Deployment) -> Result<()> {
        let values = (1..=27).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
        let sql = format!("INSERT INTO deployments ({DEPLOYMENT_COLUMNS}) VALUES ({values})");
        write_tx!(self, tx => {
            sqlx::query(&sql)
                .bind(&d.id)
                .bind(&d.app)
                .bind(&d.name)
                .bind(&d.strategy)
                .bind(Json(&d.spec))
                .bind(&d.target_version)
                .bind(d.previous.as_ref().map(Json))
                .bind(d.status)
                .bind(d.phase)
                .bind(d.progress as i64)
                .bind(&d.message)
                .bind(&d.error)
                .bind(&d.plugin.name)
                .bind(&d.plugin.version)
                .bind(&d.plugin.sha256)
                .bind(d.attempt as i64)
                .bind(d.phase_started_at_ms)
                .bind(d.rollback_kind)
                .bind(d.promoted)
                .bind(&d.rollback_of)
                .bind(d.last_progress_at_ms)
                .bind(&d.winner)
                .bind(Json(&d.hook_runs))
                .bind(d.created_at_ms)
                .bind(d.updated_at_ms)
                .bind(d.promotions as i64)
                .bind(Json(&d.images))
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    pub async fn deployment(&self, id: &str) -> Result<Option<Deployment>> {
        let sql = format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = $1");
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, DeploymentRow>(&sql).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(Deployment::from))
    }

    /// Deployments, newest first, filtered, a page at a time.
    pub async fn list_deployments(&self, f: &ListFilter) -> Result<Vec<Deployment>> {
        let sql = format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE ($1 IS NULL OR app = $1) AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR strategy = $3) ORDER BY created_at_ms DESC, id DESC LIMIT $4 OFFSET $5"
        );
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, DeploymentRow>(&sql)
                .bind(&f.app)
                .bind(f.status)
                .bind(&f.strategy)
                .bind(f.limit)
                .bind(f.offset)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(Deployment::from).collect())
    }

    /// Deployments, newest first, optionally of one app.
    pub async fn deployments(&self, app: Option<&str>, limit: i64) -> Result<Vec<Deployment>> {
        let sql = format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE ($1 IS NULL OR app = $1) ORDER BY created_at_ms DESC, id DESC LIMIT $2"
        );
        let rows = with_pool!(self, pool => {
            sqlx::query_as::<_, DeploymentRow>(&sql).bind(app).bind(limit).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(Deployment::from).collect())
    }

    /// Deployments an engine must drive: in progress, awaiting approval, rolling back.
    pub async fn active_deployments(&self) -> Result<Vec<Deployment>> {
        let sql = format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE status IN ('in_progress', 'paused', 'awaiting_approval', 'rolling_back') ORDER BY created_at_ms"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, DeploymentRow>(&sql).fetch_all(pool).await?);
        Ok(rows.into_iter().map(Deployment::from).collect())
    }

    /// Moves a deployment to a new status (and optionally phase), with an event, atomically.
    pub async fn transition(&self, id: &str, to: Transition<'_>) -> Result<()> {
        let Transition { status, rollback_kind, promoted, touch_progress, phase, progress, message, level, error } = to;
        let now = now_ms();
        write_tx!(self, tx => {
            sqlx::query(
                "UPDATE deployments SET status = $1, message = $2, updated_at_ms = $3, progress = COALESCE($4, progress), \
                 error = COALESCE($5, error), rollback_kind = COALESCE($6, rollback_kind), promoted = COALESCE($7, promoted), \
                 promotions = promotions + CASE WHEN $8 THEN 1 ELSE 0 END, \
                 last_progress_at_ms = CASE WHEN $9 THEN $3 ELSE last_progress_at_ms END, \
                 phase = COALESCE($10, phase), attempt = CASE WHEN $10 IS NULL THEN attempt ELSE 0 END, \
                 phase_started_at_ms = CASE WHEN $10 IS NULL THEN phase_started_at_ms ELSE $3 END WHERE id = $11",
            )
            .bind(status)
            .bind(message)
            .bind(now)
            .bind(progress.map(|p| p as i64))
            .bind(error)
            .bind(rollback_kind)
            .bind(promoted)
            .bind(promoted == Some(true))
            .bind(touch_progress)
            .bind(phase)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if status.is_terminal() {
                // A finished deployment's plugin never runs again: its state goes (its events,
                // which `diagnose` reads, stay).
                sqlx::query("DELETE FROM plugin_state WHERE deployment_id = $1").bind(id).execute(&mut *tx).await?;
            }
            insert_event!(tx, id, now, level, message);
        });
        Ok(())
    }

    /// Records the A/B variant that wins, with an event.
    pub async fn set_winner(&self, id: &str, winner: &str, message: &str) -> Result<()> {
        let now = now_ms();
        write_tx!(self, tx => {
            sqlx::query("UPDATE deployments SET winner = $1, updated_at_ms = $2 WHERE id = $3")
                .bind(winner)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_event!(tx, id, now, Level::Info, message);
        });
        Ok(())
    }

    /// Sets the deployment's message without an event (a pull's progress, said often),
    /// which counts as progress for its deadline.
    pub async fn set_message(&self, id: &str, message: &str) -> Result<()> {
        let now = now_ms();
        write_tx!(self, tx => {
            // Only while it runs: a paused or rolled-back deployment keeps its own message.
            sqlx::query(
                "UPDATE deployments SET message = $1, updated_at_ms = $2, last_progress_at_ms = $2 \
                 WHERE id = $3 AND status = 'in_progress'",
            )
                .bind(message)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Records what each image of the deployment was pinned to, with the events that say
    /// so, in one transaction.
    pub async fn set_images(&self, id: &str, images: &BTreeMap<String, String>, events: &[String]) -> Result<()> {
        let now = now_ms();
        write_tx!(self, tx => {
            sqlx::query("UPDATE deployments SET images = $1, updated_at_ms = $2 WHERE id = $3")
                .bind(Json(images))
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for message in events {
                insert_event!(tx, id, now, Level::Info, message);
            }
        });
        Ok(())
    }

    /// Deletes the oldest finished deployments of `app` beyond the newest `keep`, with
    /// their events and state. Returns how many went.
    pub async fn prune_history(&self, app: &str, keep: i64) -> Result<u64> {
        let gone = write_tx!(self, tx => {
            let doomed: Vec<(String,)> = sqlx::query_as(
                "SELECT id FROM deployments WHERE app = $1 AND status IN ('completed', 'failed', 'rolled_back', 'aborted') \
                 AND id NOT IN (SELECT id FROM deployments WHERE app = $1 ORDER BY created_at_ms DESC, id DESC LIMIT $2)",
            )
            .bind(app)
            .bind(keep)
            .fetch_all(&mut *tx)
            .await?;
            for (id,) in &doomed {
                for table in ["events", "plugin_state"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE deployment_id = $1"))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("DELETE FROM deployments WHERE id = $1").bind(id).execute(&mut *tx).await?;
            }
            doomed.len() as u64
        });
        Ok(gone)
    }
}
