//! `containers`: the app's replicas. A plugin scales the versions its deployment owns to
//! an absolute count (at most 100 per call, within the app's quota), lists the app's
//! replicas, and stops replicas of its own app.

use super::{CapabilityError, HostState, bounds, types, wit_replica};
use crate::bindings::strategy::hivemind::plugin::containers;
use std::time::Duration;

impl containers::Host for HostState {
    async fn scale(&mut self, version: String, replicas: u32) -> Result<Vec<types::Replica>, CapabilityError> {
        let caps = self.step()?;
        let release = caps.scope.release("containers.scale", &version)?;
        if replicas > bounds::SCALE_REPLICAS {
            return Err(CapabilityError::Invalid(format!(
                "containers.scale: {replicas} replicas is more than the limit of {} per call",
                bounds::SCALE_REPLICAS
            )));
        }
        let spec = caps.scope.launch_spec(&release);
        let platform = caps.scope.platform.clone();
        let before = platform.replicas(&spec.app).await.iter().filter(|r| r.version == version).count();
        // On a task of its own, so that a step interrupted meanwhile (abort, pause) never
        // leaves a replica started and unrecorded: the scale finishes, only the step's
        // wait for it ends.
        let list = tokio::spawn(async move { platform.scale(spec, replicas).await })
            .await
            .map_err(|e| CapabilityError::Failed(format!("containers.scale stopped: {e}")))??;
        if list.len() != before {
            caps.writes.progressed = true;
            caps.note(format!("scaled {version} from {before} to {} replicas", list.len()));
        }
        Ok(list.iter().map(wit_replica).collect())
    }

    async fn list(&mut self) -> Result<Vec<types::Replica>, CapabilityError> {
        let caps = self.step()?;
        Ok(caps.scope.platform.replicas(&caps.scope.app).await.iter().map(wit_replica).collect())
    }

    async fn capacity(&mut self) -> wasmtime::Result<u32> {
        let Ok(caps) = self.step() else { return Ok(0) };
        Ok(caps.scope.platform.capacity(&caps.scope.app).await)
    }

    async fn stop(&mut self, ids: Vec<String>, grace_ms: u32) -> Result<(), CapabilityError> {
        let caps = self.step()?;
        let mut owned = Vec::new();
        for id in &ids {
            owned.extend(caps.scope.own_replica("containers.stop", id).await?);
        }
        if owned.is_empty() {
            return Ok(());
        }
        let grace = Duration::from_millis(grace_ms.min(120_000) as u64);
        let platform = caps.scope.platform.clone();
        let (app, stopping) = (caps.scope.app.clone(), owned.clone());
        // On a task of its own, as `scale`: an interrupted step never leaves a stop half done.
        let result = tokio::spawn(async move { platform.stop(&app, stopping, grace).await })
            .await
            .map_err(|e| CapabilityError::Failed(format!("containers.stop stopped: {e}")))?;
        caps.writes.progressed = true;
        caps.note(format!("stopped {}", owned.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(", ")));
        result
    }
}
