//! The fleet: every replica the host runs, by app and version, kept in memory and in the
//! store so that a restart adopts what still runs and removes what no record owns.

use super::{Driver, JobOutcome, StartSpec};
use crate::model::{ReplicaRecord, now_ms};
use crate::store::Store;
use anyhow::Result;
use std::collections::{BTreeMap, HashSet};
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
    pub resources: crate::model::Resources,
}

/// What a restart found, for the event log.
#[derive(Debug, Default)]
pub struct Reconciliation {
    /// Recorded replicas that still run: adopted.
    pub adopted: Vec<ReplicaRecord>,
    /// Recorded replicas that no longer run: forgotten.
    pub gone: Vec<ReplicaRecord>,
    /// Replicas this server started that no record owns (a crash between starting one and
    /// recording it, or a record lost): stopped, as (replica id, handle).
    pub orphans: Vec<(String, String)>,
}

pub struct Fleet {
    driver: Arc<dyn Driver>,
    store: Store,
    server_id: String,
    /// The most replicas this host runs at once, across all apps.
    max_replicas: u32,
    /// Replica id → record. One lock: changes to the fleet are rare and short.
    replicas: Mutex<BTreeMap<String, ReplicaRecord>>,
}

impl Fleet {
    pub fn new(driver: Arc<dyn Driver>, store: Store, server_id: String, max_replicas: u32) -> Fleet {
        Fleet { driver, store, server_id, max_replicas, replicas: Mutex::new(BTreeMap::new()) }
    }

    /// How many more replicas may start now.
    pub async fn capacity(&self) -> u32 {
        self.max_replicas.saturating_sub(self.replicas.lock().await.len() as u32)
    }

    pub fn driver(&self) -> &Arc<dyn Driver> {
        &self.driver
    }

    /// Brings memory and the store in line with what really runs: adopts recorded
    /// replicas that run, forgets those that do not, and stops replicas of this server
    /// that no record owns.
    pub async fn reconcile(&self) -> Result<Reconciliation> {
        let mut report = Reconciliation::default();
        for record in self.store.replicas().await? {
            let runs = !record.handle.is_empty()
                && record.driver == self.driver.name()
                && self.driver.is_running(&record.handle).await;
            if runs {
                report.adopted.push(record);
            } else {
                self.store.delete_replica(&record.id).await?;
                report.gone.push(record);
            }
        }
        let known: HashSet<&str> = report.adopted.iter().map(|r| r.id.as_str()).collect();
        for (id, handle) in self.driver.owned(&self.server_id).await {
            if !known.contains(id.as_str()) {
                self.driver.stop(&handle, Duration::from_secs(5)).await?;
                report.orphans.push((id, handle));
            }
        }
        let mut map = self.replicas.lock().await;
        for r in &report.adopted {
            map.insert(r.id.clone(), r.clone());
        }
        Ok(report)
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
        let missing = count as usize - current.len().min(count as usize);
        let capacity = self.capacity().await as usize;
        if missing > capacity {
            anyhow::bail!(
                "starting {missing} replicas of {} would pass this host's limit of {} replicas ({} run now); raise --max-replicas or free some",
                spec.version,
                self.max_replicas,
                self.max_replicas as usize - capacity
            );
        }
        while current.len() < count as usize {
            current.push(self.start(spec).await?);
        }
        Ok(current)
    }

    async fn start(&self, spec: &LaunchSpec) -> Result<ReplicaRecord> {
        let id = format!("{}-{}-{:06x}", spec.app, spec.version, fastrand::u32(..0x100_0000));
        let mut record = ReplicaRecord {
            id: id.clone(),
            app: spec.app.clone(),
            version: spec.version.clone(),
            deployment_id: spec.deployment_id.clone(),
            driver: self.driver.name().to_string(),
            handle: String::new(),
            address: String::new(),
            health_address: String::new(),
            started_at_ms: now_ms(),
        };
        // Recorded before it starts: a crash in between leaves a record to clean up, and
        // the replica carries this server's id, so the next start finds it either way.
        self.store.insert_replica(&record).await?;
        let start = self.start_spec(spec, &id);
        let started = match self.driver.start(&start).await {
            Ok(started) => started,
            Err(e) => {
                self.store.delete_replica(&id).await?;
                return Err(e);
            }
        };
        self.store.replica_started(&id, &started.handle, &started.address, &started.health_address).await?;
        record.handle = started.handle;
        record.address = started.address;
        record.health_address = started.health_address;
        self.replicas.lock().await.insert(id, record.clone());
        Ok(record)
    }

    /// What the driver needs to start `id`: the replica carries this server's id and its
    /// own, so that a restart finds it even if the crash came before its record.
    fn start_spec(&self, spec: &LaunchSpec, id: &str) -> StartSpec {
        let mut env = vec![
            ("HIVEMIND_SERVER".to_string(), self.server_id.clone()),
            ("HIVEMIND_APP".to_string(), spec.app.clone()),
            ("HIVEMIND_VERSION".to_string(), spec.version.clone()),
            ("HIVEMIND_DEPLOYMENT".to_string(), spec.deployment_id.clone()),
            ("HIVEMIND_REPLICA".to_string(), id.to_string()),
        ];
        env.extend(spec.env.iter().cloned());
        StartSpec {
            id: id.to_string(),
            server_id: self.server_id.clone(),
            app: spec.app.clone(),
            version: spec.version.clone(),
            deployment_id: spec.deployment_id.clone(),
            image: spec.image.clone(),
            container_port: spec.container_port,
            health_port: spec.health_port,
            env,
            resources: spec.resources.clone(),
        }
    }

    /// Runs a one-off job in a fresh replica of `spec`'s release (a hook's command). It
    /// is not one of the app's replicas: the router never sees it. A job left behind by a
    /// crash carries this server's id, so the next start removes it as an orphan.
    pub async fn run_job(&self, spec: &LaunchSpec, command: &str, timeout: Duration) -> Result<JobOutcome> {
        let id = format!("{}-{}-job-{:06x}", spec.app, spec.version, fastrand::u32(..0x100_0000));
        self.driver.run_job(&self.start_spec(spec, &id), command, timeout).await
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
