//! The fleet: every replica the host runs, by app and version, kept in memory and in the
//! store so that a restart adopts what still runs and removes what no record owns.

use super::{Driver, JobOutcome, StartSpec};
use crate::model::{ReplicaRecord, now_ms};
use anyhow::Result;
use hivemind_store::Store;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// What `scale` needs to start a replica of a version.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub app: crate::model::AppName,
    pub version: String,
    pub deployment_id: crate::model::DeploymentId,
    pub image: String,
    pub container_port: u16,
    pub health_port: Option<u16>,
    pub env: Vec<(String, String)>,
    pub resources: crate::model::Resources,
    /// The deployment target it runs on (`--cloud-provider`); the server's own runtime
    /// when `None`.
    pub target: Option<String>,
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
    /// The server's own runtime.
    driver: Arc<dyn Driver>,
    /// The deployment targets of the config file that name a Docker endpoint of their own,
    /// by target name: their driver, or why it could not connect.
    targets: BTreeMap<String, Result<Arc<dyn Driver>, String>>,
    store: Store,
    server_id: String,
    /// The most replicas this host runs at once, across all apps.
    max_replicas: u32,
    /// The most replicas one app runs at once, unless it has a quota of its own: a share
    /// that leaves room for the others.
    default_quota: u32,
    /// Apps' own quotas (`--replica-quota`).
    quotas: std::sync::Mutex<HashMap<String, u32>>,
    /// Replica id → record. One lock: changes to the fleet are rare and short.
    replicas: Mutex<BTreeMap<String, ReplicaRecord>>,
    /// One lock per app, held while its replicas are scaled or stopped, so that a scale
    /// still finishing for a step that was interrupted never races the next step's.
    changing: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Apps being removed: nothing starts for them any more.
    closed: std::sync::Mutex<HashSet<String>>,
}

impl Fleet {
    /// A fleet of at most `max_replicas`, each app at most `default_quota` of them
    /// unless it has a quota of its own.
    pub fn new(
        driver: Arc<dyn Driver>,
        store: Store,
        server_id: String,
        max_replicas: u32,
        default_quota: u32,
    ) -> Fleet {
        Fleet {
            driver,
            targets: BTreeMap::new(),
            store,
            server_id,
            max_replicas,
            default_quota: default_quota.clamp(1, max_replicas.max(1)),
            quotas: Default::default(),
            replicas: Mutex::new(BTreeMap::new()),
            changing: Default::default(),
            closed: Default::default(),
        }
    }

    pub fn max_replicas(&self) -> u32 {
        self.max_replicas
    }

    pub fn default_quota(&self) -> u32 {
        self.default_quota
    }

    /// Gives an app a quota of its own, or (None) the default share back.
    pub fn set_quota(&self, app: &str, quota: Option<u32>) {
        let mut quotas = self.quotas.lock().unwrap();
        match quota {
            Some(q) => quotas.insert(app.to_string(), q),
            None => quotas.remove(app),
        };
    }

    /// The most replicas `app` may run at once.
    pub fn quota(&self, app: &str) -> u32 {
        self.quotas.lock().unwrap().get(app).copied().unwrap_or(self.default_quota)
    }

    /// Starts nothing more for `app` (it is being removed), and waits until no scale or
    /// stop of it is under way, so that what is listed next is all there is.
    pub async fn close(&self, app: &str) {
        self.closed.lock().unwrap().insert(app.to_string());
        let changing = self.changing(app);
        drop(changing.lock().await);
    }

    /// Lets replicas start for `app` again (an app of that name is created anew).
    pub fn open(&self, app: &str) {
        self.closed.lock().unwrap().remove(app);
    }

    /// The lock held while `app`'s replicas change.
    fn changing(&self, app: &str) -> Arc<Mutex<()>> {
        self.changing.lock().unwrap().entry(app.to_string()).or_default().clone()
    }

    /// Adds the drivers of deployment targets with endpoints of their own.
    pub fn with_targets(mut self, targets: BTreeMap<String, Result<Arc<dyn Driver>, String>>) -> Fleet {
        self.targets = targets;
        self
    }

    /// The driver that runs replicas on `target` (the server's own for `None`, or for a
    /// target with no endpoint of its own), or why it cannot.
    pub fn driver_for(&self, target: Option<&str>) -> Result<&Arc<dyn Driver>, String> {
        match target.and_then(|t| self.targets.get(t).map(|d| (t, d))) {
            None => Ok(&self.driver),
            Some((_, Ok(driver))) => Ok(driver),
            Some((t, Err(why))) => Err(format!("deployment target `{t}` cannot be reached: {why}")),
        }
    }

    /// How a replica's record names its driver: `docker`, or `docker@TARGET`.
    fn driver_key(&self, target: Option<&str>) -> String {
        match target.filter(|t| matches!(self.targets.get(*t), Some(Ok(_)))) {
            Some(t) => format!("{}@{t}", self.driver_for(Some(t)).map(|d| d.name()).unwrap_or("docker")),
            None => self.driver.name().to_string(),
        }
    }

    /// The driver of a recorded replica, if this server still has it.
    fn driver_of(&self, record: &ReplicaRecord) -> Option<&Arc<dyn Driver>> {
        match record.driver.split_once('@') {
            None => (record.driver == self.driver.name()).then_some(&self.driver),
            Some((_, target)) => self.targets.get(target).and_then(|d| d.as_ref().ok()),
        }
    }

    /// Every driver, each once: the server's own and the targets'.
    fn drivers(&self) -> impl Iterator<Item = &Arc<dyn Driver>> {
        std::iter::once(&self.driver).chain(self.targets.values().filter_map(|d| d.as_ref().ok()))
    }

    /// The last lines a replica printed.
    pub async fn logs(&self, record: &ReplicaRecord, lines: usize) -> String {
        match self.driver_of(record) {
            Some(driver) => driver.logs(&record.handle, lines).await,
            None => String::new(),
        }
    }

    /// How many more replicas `app` may start now: the smaller of what its quota and
    /// what the host's limit leave.
    pub async fn capacity_for(&self, app: &str) -> u32 {
        let map = self.replicas.lock().await;
        let of_app = map.values().filter(|r| r.app == app).count() as u32;
        let host_room = self.max_replicas.saturating_sub(map.len() as u32);
        host_room.min(self.quota(app).saturating_sub(of_app))
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
            let runs = match self.driver_of(&record) {
                Some(driver) => !record.handle.is_empty() && driver.is_running(&record.handle).await,
                None => false,
            };
            if runs {
                report.adopted.push(record);
            } else {
                self.store.delete_replica(&record.id).await?;
                report.gone.push(record);
            }
        }
        let known: HashSet<&str> = report.adopted.iter().map(|r| r.id.as_str()).collect();
        for driver in self.drivers() {
            for (id, handle) in driver.owned(&self.server_id).await {
                // Two targets may share an engine: stop each orphan once.
                if !known.contains(id.as_str()) && !report.orphans.iter().any(|(o, _)| *o == id) {
                    driver.stop(&handle, Duration::from_secs(5)).await?;
                    report.orphans.push((id, handle));
                }
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
    /// exited are forgotten and replaced; a surplus is stopped, newest first. Refused,
    /// before anything starts, when the app's quota or the host's limit has no room.
    pub async fn scale(&self, spec: &LaunchSpec, count: u32, grace: Duration) -> Result<Vec<ReplicaRecord>> {
        let changing = self.changing(&spec.app);
        let _changing = changing.lock().await;
        if self.closed.lock().unwrap().contains(spec.app.as_str()) {
            anyhow::bail!("app `{}` is being removed; no replica starts for it", spec.app);
        }
        let mut current = Vec::new();
        for r in self.list(&spec.app).await.into_iter().filter(|r| r.version == spec.version) {
            if self.is_running(&r).await {
                current.push(r);
            } else {
                tracing::warn!(replica = %r.id, "replica exited; replacing it");
                // What it leaves (a dead container, a Swarm service) goes with it.
                if let Some(driver) = self.driver_of(&r) {
                    let _ = driver.stop(&r.handle, Duration::ZERO).await;
                }
                self.forget(&r.id).await?;
            }
        }
        while current.len() > count as usize {
            let newest = current.pop().unwrap();
            self.stop_unlocked(&newest, grace).await?;
        }
        let missing = count as usize - current.len().min(count as usize);
        let (of_app, all) = {
            let map = self.replicas.lock().await;
            (map.values().filter(|r| r.app == spec.app).count(), map.len())
        };
        let quota = self.quota(&spec.app) as usize;
        if of_app + missing > quota {
            anyhow::bail!(
                "starting {missing} replicas of {} would pass app `{}`'s quota of {quota} replicas ({of_app} run now); \
                 raise it with --replica-quota on the app's next deployment (up to the server's --max-replicas, {})",
                spec.version,
                spec.app,
                self.max_replicas
            );
        }
        if all + missing > self.max_replicas as usize {
            anyhow::bail!(
                "starting {missing} replicas of {} would pass this host's limit of {} replicas ({all} run now, for all apps); raise --max-replicas or free some",
                spec.version,
                self.max_replicas
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
            driver: self.driver_key(spec.target.as_deref()),
            handle: String::new(),
            address: String::new(),
            health_address: String::new(),
            started_at_ms: now_ms(),
        };
        // Recorded before it starts: a crash in between leaves a record to clean up, and
        // the replica carries this server's id, so the next start finds it either way.
        self.store.insert_replica(&record).await?;
        let start = self.start_spec(spec, &id);
        let driver = self.driver_for(spec.target.as_deref()).map_err(anyhow::Error::msg)?;
        let started = match driver.start(&start).await {
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
            ("HIVEMIND_APP".to_string(), spec.app.to_string()),
            ("HIVEMIND_VERSION".to_string(), spec.version.clone()),
            ("HIVEMIND_DEPLOYMENT".to_string(), spec.deployment_id.to_string()),
            ("HIVEMIND_REPLICA".to_string(), id.to_string()),
        ];
        env.extend(spec.env.iter().cloned());
        StartSpec {
            id: id.to_string(),
            server_id: self.server_id.clone(),
            app: spec.app.to_string(),
            version: spec.version.clone(),
            deployment_id: spec.deployment_id.to_string(),
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
        let driver = self.driver_for(spec.target.as_deref()).map_err(anyhow::Error::msg)?;
        driver.run_job(&self.start_spec(spec, &id), command, timeout).await
    }

    /// Stops one replica and forgets it.
    pub async fn stop(&self, replica: &ReplicaRecord, grace: Duration) -> Result<()> {
        let changing = self.changing(&replica.app);
        let _changing = changing.lock().await;
        self.stop_unlocked(replica, grace).await
    }

    async fn stop_unlocked(&self, replica: &ReplicaRecord, grace: Duration) -> Result<()> {
        if let Some(driver) = self.driver_of(replica) {
            driver.stop(&replica.handle, grace).await?;
        }
        self.forget(&replica.id).await
    }

    async fn forget(&self, id: &str) -> Result<()> {
        self.store.delete_replica(id).await?;
        self.replicas.lock().await.remove(id);
        Ok(())
    }

    /// How a replica that no longer runs ended, when its driver knows.
    pub async fn exit_status(&self, replica: &ReplicaRecord) -> Option<String> {
        self.driver_of(replica)?.exit_status(&replica.handle).await
    }

    pub async fn is_running(&self, replica: &ReplicaRecord) -> bool {
        match self.driver_of(replica) {
            Some(driver) => driver.is_running(&replica.handle).await,
            None => false,
        }
    }
}
