//! The simulated world as the capabilities' `Platform`: the strategy's calls go through
//! the server's own capability code (scoping, bounds, messages, events), and only the
//! work they ask for is done here, on `World` instead of replicas, a router and a store.

use super::world::{APP, EPOCH_MS, NEIGHBOUR_REPLICA, Replica, World};
use crate::health::{HttpCheck, ProbeResult};
use crate::model::{ReplicaRecord, Split};
use crate::plugins::{CapabilityError, HookHosts, Platform};
use crate::router::{DrainState, StatsSnapshot};
use crate::runtime::{JobOutcome, LaunchSpec};
use async_trait::async_trait;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub struct SimPlatform {
    pub world: Arc<Mutex<World>>,
    /// None allowed: the simulator runs strategies, and a strategy sends no HTTP.
    hooks: HookHosts,
}

impl SimPlatform {
    pub fn new(world: Arc<Mutex<World>>) -> SimPlatform {
        SimPlatform { world, hooks: HookHosts::new(Vec::new()).expect("an empty allowlist") }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }
}

/// A simulated replica as the fleet lists one: running (health says if it serves).
fn record(r: &Replica) -> ReplicaRecord {
    replica_of(APP, &r.id, &r.version, EPOCH_MS + r.started_ms)
}

fn replica_of(app: &str, id: &str, version: &str, started_at_ms: u64) -> ReplicaRecord {
    ReplicaRecord {
        id: id.into(),
        app: app.into(),
        version: version.into(),
        deployment_id: Default::default(),
        driver: "simulated".into(),
        handle: String::new(),
        address: format!("sim://{id}"),
        health_address: format!("sim://{id}"),
        started_at_ms: started_at_ms as i64,
    }
}

#[async_trait]
impl Platform for SimPlatform {
    async fn replica(&self, id: &str) -> Option<ReplicaRecord> {
        if id == NEIGHBOUR_REPLICA {
            // Another app's replica, which a strategy must leave alone.
            return Some(replica_of("other-app", id, "v1", EPOCH_MS));
        }
        self.world().replicas.iter().find(|r| r.id == id).map(record)
    }

    async fn replicas(&self, _app: &str) -> Vec<ReplicaRecord> {
        self.world().replicas.iter().map(record).collect()
    }

    async fn capacity(&self, _app: &str) -> u32 {
        32
    }

    async fn scale(&self, spec: LaunchSpec, count: u32) -> Result<Vec<ReplicaRecord>, CapabilityError> {
        let mut world = self.world();
        world.scale(&spec.version, count);
        Ok(world.of_version(&spec.version).into_iter().map(record).collect())
    }

    async fn stop(&self, _app: &str, replicas: Vec<ReplicaRecord>, _grace: Duration) -> Result<(), CapabilityError> {
        self.world().replicas.retain(|r| !replicas.iter().any(|s| s.id == r.id));
        Ok(())
    }

    async fn probe(&self, replica: &ReplicaRecord, _check: &HttpCheck) -> ProbeResult {
        let healthy = self.world().probe(&replica.id).unwrap_or(false);
        let status = if healthy { 200 } else { 503 };
        ProbeResult { healthy, message: format!("GET sim://{}/health returned {status}", replica.id) }
    }

    fn is_healthy(&self, _app: &str, id: &str) -> bool {
        self.world().replicas.iter().any(|r| r.id == id && r.healthy)
    }

    fn split(&self, _app: &str) -> (Split, bool) {
        let world = self.world();
        (world.split.clone(), world.sticky)
    }

    async fn set_split(&self, _app: &str, _id: &str, split: Split, sticky: bool) -> Result<(), CapabilityError> {
        let mut world = self.world();
        world.split = split;
        world.sticky = sticky;
        Ok(())
    }

    fn drain(&self, _app: &str, id: &str, timeout: Duration) {
        let mut world = self.world();
        // In-flight requests finish within a few hundred milliseconds here.
        let at = world.now() + (timeout.as_millis() as u64).min(300);
        for r in world.replicas.iter_mut().filter(|r| r.id == id && r.drained_at.is_none()) {
            r.drained_at = Some(at);
        }
    }

    fn drain_state(&self, _app: &str, id: &str) -> Option<DrainState> {
        let world = self.world();
        let at = world.replicas.iter().find(|r| r.id == id)?.drained_at?;
        Some(if at > world.now() { DrainState::Draining(1) } else { DrainState::Drained })
    }

    fn counts(&self, _app: &str, version: &str) -> StatsSnapshot {
        let t = self.world().traffic.get(version).cloned().unwrap_or_default();
        let requests = t.requests.round() as u64;
        let errors = (t.errors.round() as u64).min(requests);
        // Every version answers as fast: 60% within 25 ms, 35% within 50, 5% within 100.
        let (fast, middling) = (requests * 60 / 100, requests * 35 / 100);
        StatsSnapshot {
            requests,
            status_2xx: requests - errors,
            status_5xx: errors,
            p50_ms: 20.0,
            p90_ms: 40.0,
            p99_ms: 80.0,
            latency_buckets: vec![(25.0, fast), (50.0, middling), (100.0, requests - fast - middling)],
            ..Default::default()
        }
    }

    async fn metrics_text(&self, replica: &ReplicaRecord, path: &str) -> Result<String, String> {
        Err(format!("the simulated replica {} exports no counters at {path}", replica.id))
    }

    async fn state_value(&self, _id: &str, _key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        // The driver hands every step the whole state: nothing is left to fetch.
        Ok(None)
    }

    async fn run_job(&self, _: &LaunchSpec, _: &str, _: Duration) -> Result<JobOutcome, CapabilityError> {
        Err(CapabilityError::Denied("jobs are for hooks, and the simulator runs strategies".into()))
    }

    fn hook_hosts(&self) -> &HookHosts {
        &self.hooks
    }
}
