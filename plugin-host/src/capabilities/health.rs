//! `health`: what the host's probes say about the app's replicas. A plugin probes a
//! replica of its own app now, or counts the healthy replicas of a version.

use super::{CapabilityError, HostState};
use crate::bindings::strategy::hivemind::plugin::health;

impl health::Host for HostState {
    async fn probe(&mut self, replica_id: String) -> Result<health::ProbeResult, CapabilityError> {
        let caps = self.step()?;
        let Some(replica) = caps.scope.own_replica("health.probe", &replica_id).await? else {
            return Err(CapabilityError::Invalid(format!("health.probe: no replica `{replica_id}`")));
        };
        let result = caps.scope.platform.probe(&replica, &caps.health).await;
        Ok(health::ProbeResult { healthy: result.healthy, message: result.message })
    }

    async fn healthy_count(&mut self, version: String) -> wasmtime::Result<u32> {
        let Ok(caps) = self.step() else { return Ok(0) };
        let platform = &caps.scope.platform;
        let replicas = platform.replicas(&caps.scope.app).await;
        Ok(replicas.iter().filter(|r| r.version == version && platform.is_healthy(&caps.scope.app, &r.id)).count()
            as u32)
    }
}
