//! Apps: their router port, the release that serves, the split, their quota and health.

use super::{Store, with_pool, write_tx};
use crate::model::{App, AppBinding, AppEvent, Level, Release, now_ms};
use anyhow::Result;
use sqlx::types::Json;

#[derive(sqlx::FromRow)]
struct AppRow {
    name: String,
    port: i64,
    release: Option<Json<Release>>,
    split: Json<crate::model::Split>,
    sticky: bool,
    degraded: Option<String>,
    replica_quota: Option<i64>,
    hosts: Json<Vec<String>>,
    path_prefix: String,
    tls: crate::model::TlsMode,
    redirect_https: bool,
    backend_protocol: crate::model::BackendProtocol,
    preview_key: String,
    release_counter: i64,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl From<AppRow> for App {
    fn from(r: AppRow) -> App {
        App {
            name: r.name.into(),
            port: r.port as u16,
            release: r.release.map(|j| j.0),
            split: r.split.0,
            sticky: r.sticky,
            degraded: r.degraded,
            replica_quota: r.replica_quota.map(|q| q as u32),
            hosts: r.hosts.0,
            path_prefix: r.path_prefix,
            tls: r.tls,
            redirect_https: r.redirect_https,
            backend_protocol: r.backend_protocol,
            preview_key: r.preview_key,
            release_counter: r.release_counter,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        }
    }
}

/// 128 bits from the operating system's generator, as hex: a key nobody guesses.
fn new_preview_key() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the system's random generator failed: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Store {
    /// The app's preview key, given one first if it has none (an app made by a version
    /// before preview keys).
    pub async fn preview_key(&self, app: &str) -> Result<Option<String>> {
        let Some(found) = self.app(app).await? else { return Ok(None) };
        if !found.preview_key.is_empty() {
            return Ok(Some(found.preview_key));
        }
        let fresh = new_preview_key()?;
        write_tx!(self, tx => {
            sqlx::query("UPDATE apps SET preview_key = $1 WHERE name = $2 AND preview_key = ''")
                .bind(&fresh)
                .bind(app)
                .execute(&mut *tx)
                .await?;
        });
        Ok(self.app(app).await?.map(|a| a.preview_key))
    }

    pub async fn app(&self, name: &str) -> Result<Option<App>> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, AppRow>("SELECT * FROM apps WHERE name = $1").bind(name).fetch_optional(pool).await?
        });
        Ok(row.map(App::from))
    }

    pub async fn apps(&self) -> Result<Vec<App>> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, AppRow>("SELECT * FROM apps ORDER BY name").fetch_all(pool).await?);
        Ok(rows.into_iter().map(App::from).collect())
    }

    pub async fn insert_app(&self, name: &str, port: u16) -> Result<App> {
        let now = now_ms();
        let preview_key = new_preview_key()?;
        write_tx!(self, tx => {
            sqlx::query("INSERT INTO apps (name, port, preview_key, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5)")
                .bind(name)
                .bind(port as i64)
                .bind(&preview_key)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        });
        Ok(self.app(name).await?.expect("just inserted"))
    }

    /// Binds the app to host names on the entrypoints.
    pub async fn set_app_binding(&self, app: &str, binding: &AppBinding) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query(
                "UPDATE apps SET hosts = $1, path_prefix = $2, tls = $3, redirect_https = $4, backend_protocol = $5, updated_at_ms = $6 WHERE name = $7",
            )
            .bind(Json(&binding.hosts))
            .bind(&binding.path_prefix)
            .bind(binding.tls)
            .bind(binding.redirect_https)
            .bind(binding.backend_protocol)
            .bind(now_ms())
            .bind(app)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Takes the app's next release number (1, 2, ...).
    pub async fn next_release_number(&self, app: &str) -> Result<i64> {
        let (n,): (i64,) = write_tx!(self, tx => {
            sqlx::query_as("UPDATE apps SET release_counter = release_counter + 1 WHERE name = $1 RETURNING release_counter")
                .bind(app)
                .fetch_one(&mut *tx)
                .await?
        });
        Ok(n)
    }

    /// Records the release that serves; the app is healthy again if it was degraded.
    pub async fn set_app_release(&self, app: &str, release: Option<&Release>) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query("UPDATE apps SET release = $1, degraded = NULL, updated_at_ms = $2 WHERE name = $3")
                .bind(release.map(Json))
                .bind(now_ms())
                .bind(app)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    pub async fn set_app_replica_quota(&self, app: &str, quota: u32) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query("UPDATE apps SET replica_quota = $1, updated_at_ms = $2 WHERE name = $3")
                .bind(quota as i64)
                .bind(now_ms())
                .bind(app)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Records that the app is not as any deployment meant it to be, why, and the release
    /// that really serves (none when no single release does).
    pub async fn set_app_degraded(&self, app: &str, release: Option<&Release>, why: &str) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query("UPDATE apps SET release = $1, degraded = $2, updated_at_ms = $3 WHERE name = $4")
                .bind(release.map(Json))
                .bind(why)
                .bind(now_ms())
                .bind(app)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    pub async fn set_app_split(&self, app: &str, split: &crate::model::Split, sticky: bool) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query("UPDATE apps SET split = $1, sticky = $2, updated_at_ms = $3 WHERE name = $4")
                .bind(Json(split))
                .bind(sticky)
                .bind(now_ms())
                .bind(app)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Removes an app and all its records: deployments, their events and state.
    pub async fn delete_app(&self, app: &str) -> Result<()> {
        write_tx!(self, tx => {
            for table in ["events", "plugin_state"] {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE deployment_id IN (SELECT id FROM deployments WHERE app = $1)"
                ))
                .bind(app)
                .execute(&mut *tx)
                .await?;
            }
            for table in ["deployments", "app_events"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE app = $1")).bind(app).execute(&mut *tx).await?;
            }
            sqlx::query("DELETE FROM apps WHERE name = $1").bind(app).execute(&mut *tx).await?;
        });
        Ok(())
    }

    /// Adds a line to an app's own event log.
    pub async fn app_event(&self, app: &str, level: Level, message: &str) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query("INSERT INTO app_events (app, at_ms, level, message) VALUES ($1, $2, $3, $4)")
                .bind(app)
                .bind(now_ms())
                .bind(level)
                .bind(crate::model::without_userinfo(message).into_owned())
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// An app's own event log after event `after`, oldest first.
    pub async fn app_events(&self, app: &str, after: i64) -> Result<Vec<AppEvent>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, AppEvent>(
                "SELECT id, app, at_ms, level, message FROM app_events WHERE app = $1 AND id > $2 ORDER BY id",
            )
            .bind(app)
            .bind(after)
            .fetch_all(pool)
            .await?
        }))
    }
}
