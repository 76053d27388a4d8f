//! `state`: memory that survives between steps, scoped to the deployment. Bounded: 1 MiB
//! per value, 256 bytes per key, 64 keys and 4 MiB per deployment. The 0.1 contract has
//! no error for `set`, so a write past a bound traps, and the step fails saying which.

use super::{HostState, bounds};
use crate::bindings::strategy::hivemind::plugin::state;

impl state::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        let Some(caps) = self.step.as_mut() else { return Ok(None) };
        if let Some(value) = caps.writes.state.get(&key).or_else(|| caps.state.values.get(&key)) {
            return Ok(Some(value.clone()));
        }
        if !caps.state.sizes.contains_key(&key) {
            return Ok(None);
        }
        let value = caps
            .scope
            .platform
            .state_value(&caps.scope.deployment_id, &key)
            .await
            .map_err(|e| wasmtime::Error::msg(format!("state.get: {e:#}")))?;
        if let Some(v) = &value {
            caps.state.values.insert(key, v.clone());
        }
        Ok(value)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<()> {
        let Some(caps) = self.step.as_mut() else { return Ok(()) };
        // The state as it would be after this write: stored sizes, this step's writes.
        let mut sizes = caps.state.sizes.clone();
        sizes.extend(caps.writes.state.iter().map(|(k, v)| (k.clone(), v.len())));
        bounds::check_state_write(sizes, &key, value.len()).map_err(wasmtime::Error::msg)?;
        caps.writes.state.insert(key, value);
        Ok(())
    }
}
