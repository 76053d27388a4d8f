//! The handles the engine and the plugins' capabilities share: the fleet, the router, the
//! prober and the store, and the allowlist hooks send HTTP through. A bag of the layers
//! below both, so that neither depends on the other to reach them. The capabilities see
//! it as their `Platform` (below): the work their calls ask for, on the real thing.

use crate::health::{HttpCheck, ProbeResult, Prober};
use crate::model::{ReplicaRecord, Split};
use crate::plugins::{CapabilityError, HookHosts, Platform};
use crate::router::{BackendSpec, DrainState, Router, StatsSnapshot};
use crate::runtime::{Fleet, JobOutcome, LaunchSpec};
use crate::store::Store;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Services {
    pub fleet: Arc<Fleet>,
    pub router: Arc<Router>,
    pub prober: Prober,
    pub store: Store,
    /// Where hooks may send HTTP requests.
    pub hook_hosts: HookHosts,
    /// What the probes said of each replica lately: for `diagnose`, and for the healer's
    /// liveness check.
    health: Mutex<HashMap<String, ReplicaHealth>>,
    /// Each deployment's figures over time and per traffic split, for the dashboard.
    pub series: crate::series::Series,
}

/// What the probes said of one replica.
#[derive(Debug, Clone, Default)]
pub struct ReplicaHealth {
    pub last: Option<ProbeResult>,
    /// Probes failed since the last that passed.
    pub failures_in_a_row: u32,
    /// Since when it passes its probes, if it does now (ms since the epoch).
    pub healthy_since_ms: Option<i64>,
    /// Whether it ever passed one: a replica that never did is still starting.
    pub ever_healthy: bool,
}

impl Services {
    pub fn new(fleet: Arc<Fleet>, router: Arc<Router>, store: Store, hook_allowed_hosts: Vec<String>) -> Services {
        Services {
            fleet,
            router,
            prober: Prober::new(),
            store,
            // `serve` refuses a bad entry before it gets here; should one slip through,
            // hooks reach nothing rather than more than was meant.
            hook_hosts: HookHosts::new(hook_allowed_hosts).unwrap_or_else(|why| {
                tracing::error!("{why}; hooks may reach no host");
                HookHosts::new(Vec::new()).expect("an empty allowlist")
            }),
            health: Default::default(),
            series: Default::default(),
        }
    }

    /// The latest probe of a replica, if it was probed.
    pub fn last_probe(&self, replica: &str) -> Option<ProbeResult> {
        self.health.lock().unwrap().get(replica).and_then(|h| h.last.clone())
    }

    /// What the probes said of a replica lately.
    pub fn health_of(&self, replica: &str) -> ReplicaHealth {
        self.health.lock().unwrap().get(replica).cloned().unwrap_or_default()
    }

    /// Forgets a replica that is gone.
    pub fn forget(&self, replica: &str) {
        self.health.lock().unwrap().remove(replica);
    }

    /// Tells the router the app's current replicas, and returns once it serves them.
    pub async fn sync_router(&self, app: &str) {
        let specs: Vec<BackendSpec> = self
            .fleet
            .list(app)
            .await
            .into_iter()
            .map(|r| BackendSpec { id: r.id, version: r.version, address: r.address })
            .collect();
        self.router.set_backends(app, &specs);
        self.router.flush().await;
    }

    /// Probes one replica and tells the router the verdict.
    pub async fn probe(&self, replica: &ReplicaRecord, check: &HttpCheck) -> ProbeResult {
        let result = self.prober.probe(&replica.health_address, check).await;
        self.router.set_healthy(&replica.app, &replica.id, result.healthy);
        let mut all = self.health.lock().unwrap();
        // A safety net: replicas are forgotten as they go, but never let the map grow.
        if all.len() > 4096 {
            all.clear();
        }
        let health = all.entry(replica.id.clone()).or_default();
        if result.healthy {
            health.failures_in_a_row = 0;
            health.healthy_since_ms.get_or_insert_with(crate::model::now_ms);
            health.ever_healthy = true;
        } else {
            health.failures_in_a_row += 1;
            health.healthy_since_ms = None;
        }
        health.last = Some(result.clone());
        result
    }
}

#[async_trait]
impl Platform for Services {
    async fn replica(&self, id: &str) -> Option<ReplicaRecord> {
        self.fleet.get(id).await
    }

    async fn replicas(&self, app: &str) -> Vec<ReplicaRecord> {
        self.fleet.list(app).await
    }

    async fn capacity(&self, app: &str) -> u32 {
        self.fleet.capacity_for(app).await
    }

    async fn scale(&self, spec: LaunchSpec, count: u32) -> Result<Vec<ReplicaRecord>, CapabilityError> {
        let result = self.fleet.scale(&spec, count, Duration::from_secs(10)).await;
        self.sync_router(&spec.app).await;
        Ok(result?)
    }

    async fn stop(&self, app: &str, replicas: Vec<ReplicaRecord>, grace: Duration) -> Result<(), CapabilityError> {
        let mut result = Ok(());
        for r in &replicas {
            if let Err(e) = self.fleet.stop(r, grace).await {
                result = Err(CapabilityError::from(e));
            }
        }
        self.sync_router(app).await;
        result
    }

    async fn probe(&self, replica: &ReplicaRecord, check: &HttpCheck) -> ProbeResult {
        if !self.fleet.is_running(replica).await {
            self.router.set_healthy(&replica.app, &replica.id, false);
            return ProbeResult {
                healthy: false,
                message: format!("replica {} is not running (it exited)", replica.id),
            };
        }
        Services::probe(self, replica, check).await
    }

    fn is_healthy(&self, app: &str, id: &str) -> bool {
        self.router.is_healthy(app, id)
    }

    fn split(&self, app: &str) -> (Split, bool) {
        self.router.split(app)
    }

    async fn set_split(
        &self,
        app: &str,
        deployment_id: &str,
        split: Split,
        sticky: bool,
    ) -> Result<(), CapabilityError> {
        // Stored first: after a restart the router comes back with this split.
        self.store.set_app_split(app, &split, sticky).await?;
        // The counts up to now are the old split's: its analysis ends here (the pull of
        // counts happens on a change of split only, never on a step that keeps it).
        if self.series.is_tracked(deployment_id) {
            self.router.refresh().await;
            self.series.split_changes(deployment_id, crate::model::now_ms(), split.clone(), |v| {
                self.router.stats(app, v).unwrap_or_default()
            });
        }
        self.router.set_split(app, split, sticky);
        // The step returns once the router serves the split, not just the control plane.
        self.router.flush().await;
        Ok(())
    }

    fn drain(&self, app: &str, id: &str, timeout: Duration) {
        self.router.drain(app, id, timeout);
    }

    fn drain_state(&self, app: &str, id: &str) -> Option<DrainState> {
        self.router.drain_state(app, id)
    }

    fn counts(&self, app: &str, version: &str) -> StatsSnapshot {
        self.router.stats(app, version).unwrap_or_default()
    }

    async fn metrics_text(&self, replica: &ReplicaRecord, path: &str) -> Result<String, String> {
        self.prober.get_text(&replica.address, path, Duration::from_secs(2)).await
    }

    async fn state_value(&self, deployment_id: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.store.plugin_state_value(deployment_id, key).await
    }

    async fn run_job(
        &self,
        spec: &LaunchSpec,
        command: &str,
        timeout: Duration,
    ) -> Result<JobOutcome, CapabilityError> {
        Ok(self.fleet.run_job(spec, command, timeout).await?)
    }

    fn hook_hosts(&self) -> &HookHosts {
        &self.hook_hosts
    }
}
