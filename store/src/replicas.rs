//! Replicas the host started, recorded before they start so that a restart adopts what
//! still runs; and the id replicas carry (the server's with SQLite, the cluster's with
//! Postgres), so that whichever server leads adopts them and removes only orphans of its
//! own cluster.

use super::{Store, with_pool, write_tx};
use crate::model::ReplicaRecord;
use anyhow::Result;

impl Store {
    pub async fn insert_replica(&self, r: &ReplicaRecord) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query(
                "INSERT INTO replicas (id, app, version, deployment_id, driver, handle, address, health_address, started_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&r.id)
            .bind(&r.app)
            .bind(&r.version)
            .bind(&r.deployment_id)
            .bind(&r.driver)
            .bind(&r.handle)
            .bind(&r.address)
            .bind(&r.health_address)
            .bind(r.started_at_ms)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Fills in what the driver said once a recorded replica started.
    pub async fn replica_started(&self, id: &str, handle: &str, address: &str, health_address: &str) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query("UPDATE replicas SET handle = $1, address = $2, health_address = $3 WHERE id = $4")
                .bind(handle)
                .bind(address)
                .bind(health_address)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// The id replicas carry, made at first start. Any server may make it (a follower
    /// too), so it is written outside the fence; the first one written stays.
    pub async fn server_id(&self) -> Result<String> {
        let fresh = format!("{:016x}", fastrand::u64(..));
        let id: (String,) = with_pool!(self, pool => {
            sqlx::query("INSERT INTO settings (key, value) VALUES ('server_id', $1) ON CONFLICT DO NOTHING")
                .bind(&fresh)
                .execute(pool)
                .await?;
            sqlx::query_as("SELECT value FROM settings WHERE key = 'server_id'").fetch_one(pool).await?
        });
        Ok(id.0)
    }

    pub async fn delete_replica(&self, id: &str) -> Result<()> {
        write_tx!(self, tx => {
            sqlx::query("DELETE FROM replicas WHERE id = $1").bind(id).execute(&mut *tx).await?;
        });
        Ok(())
    }

    pub async fn replicas(&self) -> Result<Vec<ReplicaRecord>> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as::<_, ReplicaRecord>(
                "SELECT id, app, version, deployment_id, driver, handle, address, health_address, started_at_ms \
                 FROM replicas ORDER BY started_at_ms, id",
            )
            .fetch_all(pool)
            .await?
        }))
    }
}
