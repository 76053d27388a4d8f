//! The host side of the plugin contract: one file per WIT interface, each saying what a
//! plugin may do with it. Every call is scoped to the app of the deployment it runs for
//! (`scope`). A call that fails returns a `CapabilityError`: the guest gets it as
//! `types.error`, or, for `Trap`, the call traps and the step fails with its message.
//!
//! Adding a capability: declare its interface in a new version of the contract (a new
//! folder `wit/vX.Y.Z`, released as `wit/README.md` says, which also updates the SDK's
//! copy), import it in a world, implement its `Host` trait in a new file here, re-export
//! it in the SDK.

mod containers;
mod context;
mod health;
mod http;
mod jobs;
mod metrics;
mod progress;
mod routing;
mod state;

use super::bindings::strategy::hivemind::plugin::types;
use super::bounds;
use super::sandbox::HostState;
use super::scope::{HookCaps, StepCaps};
use crate::model::{Level, ReplicaRecord};

pub use super::error::CapabilityError;

impl CapabilityError {
    /// What the guest receives: the WIT error, or (a trap) the end of the call.
    pub fn into_wit(self) -> wasmtime::Result<types::Error> {
        match self {
            CapabilityError::Denied(m) => Ok(types::Error::Denied(m)),
            CapabilityError::Invalid(m) => Ok(types::Error::Invalid(m)),
            CapabilityError::Failed(m) => Ok(types::Error::Failed(m)),
            CapabilityError::Trap(e) => Err(e),
        }
    }
}

impl types::Host for HostState {
    fn convert_error(&mut self, err: CapabilityError) -> wasmtime::Result<types::Error> {
        err.into_wit()
    }
}

impl HostState {
    /// The capabilities of the step being run; denied outside `step()`.
    fn step(&mut self) -> Result<&mut StepCaps, CapabilityError> {
        self.step
            .as_mut()
            .ok_or_else(|| CapabilityError::Denied("capabilities are only available during step()".into()))
    }

    /// The capabilities of the hook being run; denied outside `run()`.
    fn hook(&mut self) -> Result<&mut HookCaps, CapabilityError> {
        self.hook.as_mut().ok_or_else(|| CapabilityError::Denied("capabilities are only available during run()".into()))
    }

    /// A line for the event log of the step or hook being run; a bounded number of
    /// bounded lines per call.
    fn log_line(&mut self, level: Level, message: String) {
        let line = (level, bounds::bounded(message, bounds::LOG_LINE_BYTES));
        if let Some(caps) = self.step.as_mut() {
            if caps.writes.plugin_lines < bounds::LOG_LINES_PER_CALL {
                caps.writes.plugin_lines += 1;
                caps.writes.events.push(line);
            }
        } else if let Some(hook) = self.hook.as_mut()
            && hook.log.len() < bounds::LOG_LINES_PER_CALL
        {
            hook.log.push(line);
        }
    }
}

fn wit_replica(r: &ReplicaRecord) -> types::Replica {
    types::Replica {
        id: r.id.clone(),
        version: r.version.clone(),
        address: r.address.clone(),
        state: types::ReplicaState::Running,
        started_at_ms: r.started_at_ms as u64,
    }
}
