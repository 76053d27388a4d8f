//! What the capabilities act on. The capability files hold the plugin contract: which
//! call may touch what (`scope`), the bounds, the messages and the events. A `Platform`
//! only does the work they ask for, on replicas, routes, probes, counts and stored state:
//! the server's (`services::Services`, over the fleet, the router, the prober and the
//! store) or `plugin test`'s simulated world (`hivemind::simulator`). So the simulator runs
//! the very code a server runs, and predicts it by construction; a new capability, or a
//! change to one, lands in both at once.

use super::error::CapabilityError;
use super::hook_hosts::HookHosts;
use crate::health::{HttpCheck, ProbeResult};
use crate::model::{ReplicaRecord, Split};
use crate::router::{DrainState, StatsSnapshot};
use crate::runtime::{JobOutcome, LaunchSpec};
use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
pub trait Platform: Send + Sync {
    /// A replica by its id, whichever app it belongs to; `None` once it is gone.
    async fn replica(&self, id: &str) -> Option<ReplicaRecord>;
    /// The app's replicas.
    async fn replicas(&self, app: &str) -> Vec<ReplicaRecord>;
    /// How many more replicas the app may run now.
    async fn capacity(&self, app: &str) -> u32;
    /// Starts or stops replicas of `spec.version` until it has `count`; returns them once
    /// the router knows the new set.
    async fn scale(&self, spec: LaunchSpec, count: u32) -> Result<Vec<ReplicaRecord>, CapabilityError>;
    /// Stops replicas of `app`, each given `grace` to finish; returns once the router no
    /// longer sends them requests.
    async fn stop(&self, app: &str, replicas: Vec<ReplicaRecord>, grace: Duration) -> Result<(), CapabilityError>;
    /// Probes a replica now, and tells the router the verdict.
    async fn probe(&self, replica: &ReplicaRecord, check: &HttpCheck) -> ProbeResult;
    /// Whether a replica passed its latest probe.
    fn is_healthy(&self, app: &str, id: &str) -> bool;
    /// The app's traffic split, and whether it is sticky.
    fn split(&self, app: &str) -> (Split, bool);
    /// Sets the app's split for deployment `deployment_id` (recorded before the router
    /// hears it, so that a restart brings it back); returns once the router serves it.
    async fn set_split(
        &self,
        app: &str,
        deployment_id: &str,
        split: Split,
        sticky: bool,
    ) -> Result<(), CapabilityError>;
    /// Sends a replica no new requests, for at most `timeout` while its own finish.
    fn drain(&self, app: &str, id: &str, timeout: Duration);
    /// How a drain goes; `None` for a replica never drained.
    fn drain_state(&self, app: &str, id: &str) -> Option<DrainState>;
    /// What the router counted for a version of the app.
    fn counts(&self, app: &str, version: &str) -> StatsSnapshot;
    /// The text a replica's own metrics endpoint answers at `path`.
    async fn metrics_text(&self, replica: &ReplicaRecord, path: &str) -> Result<String, String>;
    /// A value of a deployment's stored plugin state.
    async fn state_value(&self, deployment_id: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Runs a one-off job in a fresh replica, for hooks.
    async fn run_job(&self, spec: &LaunchSpec, command: &str, timeout: Duration)
    -> Result<JobOutcome, CapabilityError>;
    /// The hosts hooks may send HTTP requests to, and the client they go through.
    fn hook_hosts(&self) -> &HookHosts;
}
