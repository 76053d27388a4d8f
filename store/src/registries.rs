//! Registry credentials given with `hivemind registry login`, for image pulls: in the
//! database, so that every server of a cluster pulls with them.

use super::{Store, with_pool, write_tx};
use crate::model::{RegistryLogin, now_ms};
use anyhow::Result;

impl Store {
    /// Stores (or replaces) the credentials for `registry`.
    pub async fn set_registry_login(&self, registry: &str, username: &str, password: &str) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query(
                "INSERT INTO registry_logins (registry, username, password, updated_at_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (registry) DO UPDATE SET username = $2, password = $3, updated_at_ms = $4",
            )
            .bind(registry)
            .bind(username)
            .bind(password)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Forgets the credentials for `registry`; whether there were any.
    pub async fn remove_registry_login(&self, registry: &str) -> Result<bool> {
        let gone = write_tx!(self, tx => {
            sqlx::query("DELETE FROM registry_logins WHERE registry = $1").bind(registry).execute(&mut *tx).await?.rows_affected()
        });
        Ok(gone > 0)
    }

    /// The user name and password stored for `registry`.
    pub async fn registry_login(&self, registry: &str) -> Result<Option<(String, String)>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as("SELECT username, password FROM registry_logins WHERE registry = $1")
                .bind(registry)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Every stored login, without its password, by registry.
    pub async fn registry_logins(&self) -> Result<Vec<RegistryLogin>> {
        let rows: Vec<(String, String, i64)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT registry, username, updated_at_ms FROM registry_logins ORDER BY registry")
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(registry, username, updated_at_ms)| RegistryLogin { registry, username, updated_at_ms })
            .collect())
    }
}
