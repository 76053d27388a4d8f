//! `routing`: the app's traffic. A plugin sets the split between the versions its
//! deployment owns (sticky for A/B tests), and drains replicas of its own app.

use super::{CapabilityError, HostState};
use crate::bindings::strategy::hivemind::plugin::routing;
use crate::model::Split;
use crate::router::DrainState;
use std::time::Duration;

impl HostState {
    async fn apply_split(
        &mut self,
        capability: &str,
        split: Vec<routing::Weight>,
        sticky: bool,
    ) -> Result<(), CapabilityError> {
        let caps = self.step()?;
        for w in &split {
            caps.scope.release(capability, &w.version)?;
        }
        let table = Split::new(split.into_iter().map(|w| (w.version, w.weight)).collect())
            .map_err(|e| CapabilityError::Invalid(format!("{capability}: {e}")))?;
        let platform = &caps.scope.platform;
        if platform.split(&caps.scope.app) == (table.clone(), sticky) {
            return Ok(());
        }
        platform.set_split(&caps.scope.app, &caps.scope.deployment_id, table.clone(), sticky).await?;
        caps.writes.progressed = true;
        let kind = if sticky { "sticky traffic split" } else { "traffic split" };
        caps.note(format!("{kind} set to [{table}]"));
        Ok(())
    }
}

impl routing::Host for HostState {
    async fn set_split(&mut self, split: Vec<routing::Weight>) -> Result<(), CapabilityError> {
        self.apply_split("routing.set-split", split, false).await
    }

    async fn set_sticky_split(&mut self, split: Vec<routing::Weight>) -> Result<(), CapabilityError> {
        self.apply_split("routing.set-sticky-split", split, true).await
    }

    async fn current_split(&mut self) -> wasmtime::Result<Vec<routing::Weight>> {
        let Ok(caps) = self.step() else { return Ok(Vec::new()) };
        let (split, _) = caps.scope.platform.split(&caps.scope.app);
        Ok(split.into_iter().map(|(version, weight)| routing::Weight { version, weight }).collect())
    }

    async fn drain(&mut self, ids: Vec<String>, timeout_ms: u32) -> Result<(), CapabilityError> {
        let caps = self.step()?;
        for id in &ids {
            if caps.scope.own_replica("routing.drain", id).await?.is_some() {
                caps.scope.platform.drain(&caps.scope.app, id, Duration::from_millis(timeout_ms as u64));
            }
        }
        Ok(())
    }

    async fn drain_status(&mut self, id: String) -> Result<routing::DrainState, CapabilityError> {
        let caps = self.step()?;
        caps.scope.own_replica("routing.drain-status", &id).await?;
        Ok(match caps.scope.platform.drain_state(&caps.scope.app, &id) {
            None | Some(DrainState::Drained) => routing::DrainState::Drained,
            Some(DrainState::TimedOut) => routing::DrainState::TimedOut,
            Some(DrainState::Draining(n)) => routing::DrainState::Draining(n.min(u32::MAX as u64) as u32),
        })
    }
}
