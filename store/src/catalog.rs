//! The catalog: CI deployment profiles, installed plugins (their bytes live in
//! DATA_DIR/plugins), and the plugins switched off.

use super::{Store, with_pool, write_tx};
use crate::model::{DeploymentSpec, now_ms};
use anyhow::Result;
use sqlx::types::Json;

impl Store {
    pub async fn put_pipeline(&self, name: &str, spec: &DeploymentSpec) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query(
                "INSERT INTO pipelines (name, spec, updated_at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, updated_at_ms = excluded.updated_at_ms",
            )
            .bind(name)
            .bind(Json(spec))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    pub async fn pipelines(&self) -> Result<Vec<(String, DeploymentSpec)>> {
        let rows: Vec<(String, Json<DeploymentSpec>)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT name, spec FROM pipelines ORDER BY name").fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(|(name, spec)| (name, spec.0)).collect())
    }

    /// Records an installed plugin with what it was granted (`Grants::to_list`).
    pub async fn insert_plugin(
        &self,
        sha256: &str,
        name: &str,
        version: &str,
        source: &str,
        grants: &str,
    ) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query(
                "INSERT INTO plugins (sha256, name, version, source, grants, installed_at_ms) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT(sha256) DO UPDATE SET name = excluded.name, version = excluded.version, \
                 source = excluded.source, grants = excluded.grants, installed_at_ms = excluded.installed_at_ms",
            )
            .bind(sha256)
            .bind(name)
            .bind(version)
            .bind(source)
            .bind(grants)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    pub async fn delete_plugin(&self, sha256: &str) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query("DELETE FROM plugins WHERE sha256 = $1").bind(sha256).execute(&mut *tx).await?;
        });
        Ok(())
    }

    pub async fn set_plugin_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        let sql = if disabled {
            "INSERT INTO disabled_plugins (name) VALUES ($1) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM disabled_plugins WHERE name = $1"
        };
        write_tx!(self, tx => {
            sqlx::query(sql).bind(name).execute(&mut *tx).await?;
        });
        Ok(())
    }

    pub async fn disabled_plugins(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT name FROM disabled_plugins").fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(|(name,)| name).collect())
    }

    /// Installed plugins as (sha256, where they came from), oldest first.
    /// Every installed plugin's sha256, source and grants, in the order installed.
    pub async fn installed_plugins(&self) -> Result<Vec<(String, String, String)>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as("SELECT sha256, source, grants FROM plugins ORDER BY installed_at_ms").fetch_all(pool).await?
        }))
    }
}
