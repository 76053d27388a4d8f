//! The strategy side of the SDK: the [`Strategy`] trait, the capabilities, and the glue
//! that turns them into the `strategy` world's exports.

use crate::{Error, Params, Result};
use serde::{Serialize, de::DeserializeOwned};
use std::time::Duration;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "hivemind:plugin/strategy",
        pub_export_macro: true,
        export_macro_name: "__export_strategy_world",
        default_bindings_module: "hivemind_sdk::strategy_bindings",
    });
}

#[doc(hidden)]
pub use bindings as strategy_bindings;

use bindings::hivemind::plugin::types;

/// Start, list and stop the app's replicas.
pub use bindings::hivemind::plugin::containers;
/// Read the router's counts per version.
pub use bindings::hivemind::plugin::metrics;
/// Report progress and write to the deployment's event log.
pub use bindings::hivemind::plugin::progress;
/// Split traffic between versions, and drain replicas.
pub use bindings::hivemind::plugin::routing;
pub use bindings::hivemind::plugin::routing::{DrainState, Weight};
pub use bindings::{Phase, StepContext};
pub use types::{Deployment, Release, Replica, ReplicaState};

/// Probe replicas and count the healthy ones.
pub mod health {
    pub use super::bindings::hivemind::plugin::health::*;
}

impl From<types::Error> for Error {
    fn from(e: types::Error) -> Self {
        Error(match e {
            types::Error::Denied(m) => format!("denied: {m}"),
            types::Error::Invalid(m) => format!("invalid: {m}"),
            types::Error::Failed(m) => m,
        })
    }
}

/// What should happen after this step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Call the strategy again after this long.
    After(Duration),
    /// Park until someone promotes the deployment (or picks a winner).
    AwaitApproval(String),
    /// This phase is complete.
    Done,
    /// This phase cannot complete. A failed deploy phase starts the rollback phase.
    Failed(String),
}

impl Step {
    /// Call again after `ms` milliseconds.
    pub fn after_ms(ms: u32) -> Step {
        Step::After(Duration::from_millis(ms as u64))
    }

    /// Fail the phase with this reason.
    pub fn failed(reason: impl Into<String>) -> Step {
        Step::Failed(reason.into())
    }
}

/// A deployment strategy.
///
/// Implement it on a unit struct and export it with [`export_strategy!`](crate::export_strategy).
/// `State` is your own serde type: the SDK loads it before each call and saves it after
/// a call that returns `Ok`. A returned `Err` fails the phase with its message.
pub trait Strategy {
    /// The name users pick the strategy by (`--strategy NAME`).
    const NAME: &'static str;
    /// The strategy's own version (semver).
    const VERSION: &'static str;
    /// One line for `hivemind plugin list`.
    const DESCRIPTION: &'static str;

    /// What the strategy remembers between steps.
    type State: Serialize + DeserializeOwned + Default;

    /// Checks the deployment's parameters before anything starts.
    fn validate(_deployment: &Deployment) -> Result<()> {
        Ok(())
    }

    /// One step of rolling the target release out.
    fn deploy(deployment: &Deployment, state: &mut Self::State, cx: &StepContext) -> Result<Step>;

    /// One step of putting the previous release back. The default scales the previous
    /// release back up, routes all traffic to it once healthy, and removes everything else.
    fn rollback(deployment: &Deployment, _state: &mut Self::State, cx: &StepContext) -> Result<Step> {
        restore_previous(deployment, cx)
    }
}

impl Params for Deployment {
    fn raw(&self, key: &str) -> Option<&str> {
        self.params.raw(key)
    }
}

/// The usual rollback: bring the previous release back to its replica count, wait until
/// it is healthy, route all traffic to it, and stop every replica of any other version.
/// With no previous release, it just removes the target's replicas. Idempotent.
pub fn restore_previous(d: &Deployment, cx: &StepContext) -> Result<Step> {
    let Some(previous) = &d.previous else {
        routing::set_split(&[])?;
        containers::scale(&d.target.version, 0)?;
        return Ok(Step::Done);
    };
    containers::scale(&previous.version, previous.replicas)?;
    let healthy = health::healthy_count(&previous.version);
    if healthy < previous.replicas.max(1) {
        if cx.elapsed_ms > d.health.ready_timeout_ms as u64 {
            return Ok(Step::failed(format!(
                "rollback: previous release {} has {healthy} of {} replicas healthy after {} s",
                previous.version,
                previous.replicas,
                cx.elapsed_ms / 1000
            )));
        }
        progress::report(50, &format!("restoring {}: {healthy}/{} healthy", previous.version, previous.replicas));
        return Ok(Step::after_ms(200));
    }
    routing::set_split(&[Weight { version: previous.version.clone(), weight: 100 }])?;
    let others: Vec<String> =
        containers::list()?.into_iter().filter(|r| r.version != previous.version).map(|r| r.id).collect();
    if !others.is_empty() {
        containers::stop(&others, 5_000)?;
    }
    progress::report(100, &format!("{} serves again", previous.version));
    Ok(Step::Done)
}

const STATE_KEY: &str = "sdk.state";

#[doc(hidden)]
pub fn __info<S: Strategy>() -> types::PluginInfo {
    types::PluginInfo {
        name: S::NAME.to_string(),
        version: S::VERSION.to_string(),
        description: S::DESCRIPTION.to_string(),
    }
}

#[doc(hidden)]
pub fn __validate<S: Strategy>(d: Deployment) -> std::result::Result<(), String> {
    S::validate(&d).map_err(|e| e.0)
}

#[doc(hidden)]
pub fn __step<S: Strategy>(d: Deployment, cx: StepContext) -> bindings::StepOutcome {
    use bindings::StepOutcome;
    let loaded = match bindings::hivemind::plugin::state::get(STATE_KEY) {
        None => Ok(S::State::default()),
        Some(bytes) => serde_json::from_slice::<S::State>(&bytes),
    };
    let mut state = match loaded {
        Ok(state) => state,
        Err(e) => return StepOutcome::Failed(format!("plugin state does not decode: {e}")),
    };
    let result = match cx.phase {
        Phase::Deploy => S::deploy(&d, &mut state, &cx),
        Phase::Rollback => S::rollback(&d, &mut state, &cx),
    };
    match result {
        Err(e) => StepOutcome::Failed(e.0),
        Ok(step) => {
            match serde_json::to_vec(&state) {
                Ok(bytes) => bindings::hivemind::plugin::state::set(STATE_KEY, &bytes),
                Err(e) => return StepOutcome::Failed(format!("plugin state does not encode: {e}")),
            }
            match step {
                Step::After(delay) => StepOutcome::Continue(delay.as_millis().min(u32::MAX as u128) as u32),
                Step::AwaitApproval(reason) => StepOutcome::AwaitApproval(reason),
                Step::Done => StepOutcome::Done,
                Step::Failed(reason) => StepOutcome::Failed(reason),
            }
        }
    }
}

/// Exports a [`Strategy`] as the component's `strategy` world.
///
/// ```ignore
/// hivemind_sdk::export_strategy!(MyStrategy);
/// ```
#[macro_export]
macro_rules! export_strategy {
    ($strategy:ty) => {
        const _: () = {
            struct __HivemindStrategyExport;
            impl $crate::strategy_bindings::Guest for __HivemindStrategyExport {
                fn info() -> $crate::strategy_bindings::hivemind::plugin::types::PluginInfo {
                    $crate::__info::<$strategy>()
                }
                fn validate(d: $crate::Deployment) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__validate::<$strategy>(d)
                }
                fn step(d: $crate::Deployment, cx: $crate::StepContext) -> $crate::strategy_bindings::StepOutcome {
                    $crate::__step::<$strategy>(d, cx)
                }
            }
            $crate::strategy_bindings::__export_strategy_world!(__HivemindStrategyExport with_types_in $crate::strategy_bindings);
        };
    };
}
