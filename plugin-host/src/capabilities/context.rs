//! `context` (plugin API 0.1.1): what the engine knows about the deployment beyond its
//! record — whether it brings back a completed deployment's release, and how often it
//! was promoted.

use super::HostState;
use crate::bindings::strategy::hivemind::plugin::context;

impl context::Host for HostState {
    async fn rollback_of(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.step.as_ref().and_then(|c| c.rollback_of.as_ref().map(|id| id.to_string())))
    }

    async fn promotions(&mut self) -> wasmtime::Result<u32> {
        Ok(self.step.as_ref().map_or(0, |c| c.promotions))
    }
}
