//! What steps and hooks write: a plugin's state, its progress, the event log — each
//! step's writes in one transaction with its outcome's event.

use super::Store;
use crate::model::{Event, Level, now_ms};
use anyhow::Result;
use sqlx::types::Json;
use std::collections::HashMap;

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

impl Store {
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
            .bind(Json(runs))
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

    /// The size of each value of a deployment's plugin state, by key.
    pub async fn plugin_state_sizes(&self, id: &str) -> Result<HashMap<String, usize>> {
        let rows = sqlx::query_as("SELECT key, length(value) FROM plugin_state WHERE deployment_id = ?")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(key, size): (String, i64)| (key, size as usize)).collect())
    }

    /// One value of a deployment's plugin state.
    pub async fn plugin_state_value(&self, id: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT value FROM plugin_state WHERE deployment_id = ? AND key = ?")
                .bind(id)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(value,)| value))
    }

    pub async fn event(&self, id: &str, level: Level, message: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_event(&mut tx, id, now_ms(), level, message).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn events(&self, id: &str, after: i64) -> Result<Vec<Event>> {
        Ok(sqlx::query_as::<_, Event>(
            "SELECT id, deployment_id, at_ms, level, message FROM events WHERE deployment_id = ? AND id > ? ORDER BY id",
        )
        .bind(id)
        .bind(after)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Adds a line to a deployment's event log; returns its id.
pub(super) async fn insert_event(
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
