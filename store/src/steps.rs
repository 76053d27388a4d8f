//! What steps and hooks write: a plugin's state, its progress, the event log — each
//! step's writes in one transaction with its outcome's event.

use super::{Store, with_pool, write_tx};
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

/// Adds a line to a deployment's event log in transaction `$tx`; evaluates to its id.
macro_rules! insert_event {
    ($tx:ident, $id:expr, $at_ms:expr, $level:expr, $message:expr) => {{
        let (event_id,): (i64,) = sqlx::query_as(
            "INSERT INTO events (deployment_id, at_ms, level, message) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind($id)
        .bind($at_ms)
        .bind($level)
        // A URL's credentials (a webhook's) are written down nowhere.
        .bind(crate::model::without_userinfo($message).into_owned())
        .fetch_one(&mut *$tx)
        .await?;
        event_id
    }};
}
pub(super) use insert_event;

impl Store {
    /// Persists what one step did: its state, progress, log lines and outcome event.
    /// Progress (for the deadline) is a rise of the reported percentage, or a change of
    /// the split or the replica set. Returns the id of the outcome's event.
    pub async fn record_step(&self, id: &str, writes: &StepWrites, outcome: &StepEvent) -> Result<i64> {
        let now = now_ms();
        let risen = writes.progress.as_ref().map(|(percent, _)| *percent as i64);
        let event_id = write_tx!(self, tx => {
            for (key, value) in &writes.state {
                sqlx::query(
                    "INSERT INTO plugin_state (deployment_id, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT(deployment_id, key) DO UPDATE SET value = excluded.value",
                )
                .bind(id)
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE deployments SET attempt = attempt + 1, updated_at_ms = $1, \
                 last_progress_at_ms = CASE WHEN $2 OR COALESCE($3 > progress, FALSE) THEN $1 ELSE last_progress_at_ms END \
                 WHERE id = $4",
            )
            .bind(now)
            .bind(writes.progressed)
            .bind(risen)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if let Some((percent, message)) = &writes.progress {
                sqlx::query("UPDATE deployments SET progress = $1, message = $2 WHERE id = $3")
                    .bind(*percent as i64)
                    .bind(message)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            for (level, message) in &writes.events {
                insert_event!(tx, id, now, *level, message);
            }
            match outcome {
                StepEvent::New { level, message } => insert_event!(tx, id, now, *level, message),
                StepEvent::Repeat { id: event, message } => {
                    sqlx::query("UPDATE events SET message = $1, at_ms = $2 WHERE id = $3 AND deployment_id = $4")
                        .bind(crate::model::without_userinfo(message).into_owned())
                        .bind(now)
                        .bind(event)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    *event
                }
            }
        });
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
        write_tx!(self, tx => {
            // A hook that ran is progress: its time does not count against the deadline.
            sqlx::query(
                "UPDATE deployments SET hook_runs = $1, updated_at_ms = $2, last_progress_at_ms = $2 WHERE id = $3",
            )
            .bind(Json(runs))
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            for (level, message) in events {
                insert_event!(tx, id, now, *level, message);
            }
        });
        Ok(())
    }

    /// The size of each value of a deployment's plugin state, by key.
    pub async fn plugin_state_sizes(&self, id: &str) -> Result<HashMap<String, usize>> {
        let rows: Vec<(String, i64)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT key, CAST(length(value) AS BIGINT) FROM plugin_state WHERE deployment_id = $1")
                .bind(id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(key, size)| (key, size as usize)).collect())
    }

    /// One value of a deployment's plugin state.
    pub async fn plugin_state_value(&self, id: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT value FROM plugin_state WHERE deployment_id = $1 AND key = $2")
                .bind(id)
                .bind(key)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(value,)| value))
    }

    pub async fn event(&self, id: &str, level: Level, message: &str) -> Result<()> {
        let now = now_ms();
        write_tx!(self, tx => {
            insert_event!(tx, id, now, level, message);
        });
        Ok(())
    }

    pub async fn events(&self, id: &str, after: i64) -> Result<Vec<Event>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, Event>(
                "SELECT id, deployment_id, at_ms, level, message FROM events WHERE deployment_id = $1 AND id > $2 ORDER BY id",
            )
            .bind(id)
            .bind(after)
            .fetch_all(pool)
            .await?
        }))
    }
}
