//! Replicas the host started, recorded before they start so that a restart adopts what
//! still runs; and the server's own id, which its replicas carry.

use super::Store;
use crate::model::ReplicaRecord;
use anyhow::Result;

impl Store {
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
        let (id,): (String,) =
            sqlx::query_as("SELECT value FROM settings WHERE key = 'server_id'").fetch_one(&self.pool).await?;
        Ok(id)
    }

    pub async fn delete_replica(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM replicas WHERE id = ?").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn replicas(&self) -> Result<Vec<ReplicaRecord>> {
        Ok(sqlx::query_as::<_, ReplicaRecord>(
            "SELECT id, app, version, deployment_id, driver, handle, address, health_address, started_at_ms FROM replicas ORDER BY started_at_ms, id",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
