//! The fleet: every replica the host runs, by app and version, kept in memory and in the
//! store so that a restart adopts what still runs.

use super::{Driver, StartSpec};
use crate::model::{ReplicaRecord, now_ms};
use crate::store::Store;
use anyhow::Result;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// What `scale` needs to start a replica of a version.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub app: String,
    pub version: String,
    pub deployment_id: String,
    pub image: String,
    pub container_port: u16,
    pub health_port: Option<u16>,
    pub env: Vec<(String, String)>,
}

pub struct Fleet {
    driver: Arc<dyn Driver>,
    store: Store,
    /// Replica id → record. One lock: changes to the fleet are rare and short.
    replicas: Mutex<BTreeMap<String, ReplicaRecord>>,
}

impl Fleet {
    pub fn new(driver: Arc<dyn Driver>, store: Store) -> Fleet {
        Fleet { driver, store, replicas: Mutex::new(BTreeMap::new()) }
    }

    pub fn driver(&self) -> &Arc<dyn Driver> {
        &self.driver
    }

    /// Adopts the recorded replicas that still run and forgets the rest. Returns what it
    /// adopted and what it found gone, for the event log.
    pub async fn adopt(&self) -> Result<(Vec<ReplicaRecord>, Vec<ReplicaRecord>)> {
        let mut adopted = Vec::new();
        let mut gone = Vec::new();
        for record in self.store.replicas().await? {
            if record.driver == self.driver.name() && self.driver.is_running(&record.handle).await {
                adopted.push(record);
            } else {
                self.store.delete_replica(&record.id).await?;
                gone.push(record);
            }
        }
        let mut map = self.replicas.lock().await;
        for r in &adopted {
            map.insert(r.id.clone(), r.clone());
        }
        Ok((adopted, gone))
    }

    /// The app's replicas, oldest first.
    pub async fn list(&self, app: &str) -> Vec<ReplicaRecord> {
        let map = self.replicas.lock().await;
        let mut list: Vec<_> = map.values().filter(|r| r.app == app).cloned().collect();
        list.sort_by(|a, b| (a.started_at_ms, &a.id).cmp(&(b.started_at_ms, &b.id)));
        list
    }

    pub async fn all(&self) -> Vec<ReplicaRecord> {
        self.replicas.lock().await.values().cloned().collect()
    }

    pub async fn get(&self, id: &str) -> Option<ReplicaRecord> {
        self.replicas.lock().await.get(id).cloned()
    }

    /// Brings the live replicas of `spec.version` to exactly `count`. Replicas that
    /// exited are forgotten and replaced; a surplus is stopped, newest first.
    pub async fn scale(&self, spec: &LaunchSpec, count: u32, grace: Duration) -> Result<Vec<ReplicaRecord>> {
        let mut current = Vec::new();
        for r in self.list(&spec.app).await.into_iter().filter(|r| r.version == spec.version) {
            if self.driver.is_running(&r.handle).await {
                current.push(r);
            } else {
                tracing::warn!(replica = %r.id, "replica exited; replacing it");
                self.forget(&r.id).await?;
            }
        }
        while current.len() > count as usize {
            let newest = current.pop().unwrap();
            self.stop(&newest, grace).await?;
        }
        while current.len() < count as usize {
            current.push(self.start(spec).await?);
        }
        Ok(current)
    }

    async fn start(&self, spec: &LaunchSpec) -> Result<ReplicaRecord> {
        let id = format!("{}-{}-{:06x}", spec.app, spec.version, fastrand::u32(..0x100_0000));
        let mut env = vec![
            ("HIVEMIND_APP".to_string(), spec.app.clone()),
            ("HIVEMIND_VERSION".to_string(), spec.version.clone()),
            ("HIVEMIND_REPLICA".to_string(), id.clone()),
        ];
        env.extend(spec.env.iter().cloned());
        let start = StartSpec {
            id: id.clone(),
            app: spec.app.clone(),
            version: spec.version.clone(),
            deployment_id: spec.deployment_id.clone(),
            image: spec.image.clone(),
            container_port: spec.container_port,
            health_port: spec.health_port,
            env,
        };
        let started = self.driver.start(&start).await?;
        let record = ReplicaRecord {
            id: id.clone(),
            app: spec.app.clone(),
            version: spec.version.clone(),
            deployment_id: spec.deployment_id.clone(),
            driver: self.driver.name().to_string(),
            handle: started.handle,
            address: started.address,
            health_address: started.health_address,
            started_at_ms: now_ms(),
        };
        // Record before anything else can fail, so a crash never orphans it.
        self.store.insert_replica(&record).await?;
        self.replicas.lock().await.insert(id, record.clone());
        Ok(record)
    }

    /// Stops one replica and forgets it.
    pub async fn stop(&self, replica: &ReplicaRecord, grace: Duration) -> Result<()> {
        self.driver.stop(&replica.handle, grace).await?;
        self.forget(&replica.id).await
    }

    async fn forget(&self, id: &str) -> Result<()> {
        self.store.delete_replica(id).await?;
        self.replicas.lock().await.remove(id);
        Ok(())
    }

    pub async fn is_running(&self, replica: &ReplicaRecord) -> bool {
        self.driver.is_running(&replica.handle).await
    }
}
