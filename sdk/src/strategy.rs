//! The strategy side of the SDK: the [`Strategy`] trait, the capabilities, and the glue
//! that turns them into the `strategy` world's exports.

use crate::{Error, Params, Result};
use serde::{Serialize, de::DeserializeOwned};
use std::time::Duration;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
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
/// What the engine knows beyond the deployment's record: whether it is a rollback of a
/// completed deployment, and how often it was promoted (plugin API 0.1.1).
pub use bindings::hivemind::plugin::context;
/// Read the router's counts per version.
pub use bindings::hivemind::plugin::metrics;
/// Report progress and write to the deployment's event log.
pub use bindings::hivemind::plugin::progress;
/// Split traffic between versions, and drain replicas.
pub use bindings::hivemind::plugin::routing;
pub use bindings::hivemind::plugin::routing::{DrainState, Weight};
pub use bindings::{Phase, StepContext};
pub use types::{Deployment, Release, Replica, ReplicaState, Variant};

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
    /// The new release is reachable on its preview route and no traffic has moved yet:
    /// the host runs the deployment's verify hooks, then calls the strategy again with
    /// [`StepContext::verified`] set. Ask for it once, before moving traffic:
    ///
    /// ```ignore
    /// if !cx.verified {
    ///     return Ok(Step::Verify);
    /// }
    /// ```
    Verify,
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
/// it is healthy, route all traffic to it, then drain and stop every replica of any other
/// version. With no previous release, it drains and removes the target's replicas.
/// Idempotent: call it from every rollback step.
pub fn restore_previous(d: &Deployment, cx: &StepContext) -> Result<Step> {
    let Some(previous) = &d.previous else {
        routing::set_split(&[])?;
        let ids: Vec<String> = containers::list()?.into_iter().map(|r| r.id).collect();
        return Ok(if drain_and_stop(&ids, 10_000)? { Step::Done } else { Step::after_ms(100) });
    };
    let replicas = containers::scale(&previous.version, previous.replicas)?;
    let readiness = probe(&replicas)?;
    if readiness.ready.len() < previous.replicas as usize {
        if cx.elapsed_ms > d.health.ready_timeout_ms as u64 {
            return Ok(Step::failed(format!(
                "previous release {} has {} of {} replicas healthy after {} s: {}",
                previous.version,
                readiness.ready.len(),
                previous.replicas,
                cx.elapsed_ms / 1000,
                readiness.last_failure().unwrap_or("no probe ran")
            )));
        }
        progress::report(
            50,
            &format!("restoring {}: {}/{} healthy", previous.version, readiness.ready.len(), previous.replicas),
        );
        return Ok(Step::after_ms(200));
    }
    routing::set_split(&[Weight { version: previous.version.clone(), weight: 100 }])?;
    let others: Vec<String> =
        containers::list()?.into_iter().filter(|r| r.version != previous.version).map(|r| r.id).collect();
    if !drain_and_stop(&others, 10_000)? {
        progress::report(90, &format!("{} serves again; draining {} replicas", previous.version, others.len()));
        return Ok(Step::after_ms(100));
    }
    progress::report(100, &format!("{} serves again", previous.version));
    Ok(Step::Done)
}

/// Refuses A/B variants, for strategies that roll out one release.
pub fn no_variants(d: &Deployment) -> Result<()> {
    if d.variants.is_empty() {
        Ok(())
    } else {
        Err(Error::msg("--variant is for the ab-testing strategy; this strategy rolls out one --image"))
    }
}

/// Milliseconds since the Unix epoch, by the host's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The outcome of probing a set of replicas.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Replicas that passed their health check now.
    pub ready: Vec<Replica>,
    /// Replicas that did not, with what the probe said.
    pub waiting: Vec<(Replica, String)>,
}

impl Readiness {
    /// What the latest failed probe said, if one failed.
    pub fn last_failure(&self) -> Option<&str> {
        self.waiting.last().map(|(_, m)| m.as_str())
    }

    /// The waiting replica that started longest ago, with how long it has waited (ms).
    pub fn oldest_waiting(&self) -> Option<(&Replica, &str, u64)> {
        let now = now_ms();
        self.waiting
            .iter()
            .min_by_key(|(r, _)| r.started_at_ms)
            .map(|(r, m)| (r, m.as_str(), now.saturating_sub(r.started_at_ms)))
    }
}

/// Probes each replica now and sorts them into ready and waiting.
pub fn probe(replicas: &[Replica]) -> Result<Readiness> {
    let mut readiness = Readiness::default();
    for r in replicas {
        let result = health::probe(&r.id)?;
        if result.healthy {
            readiness.ready.push(r.clone());
        } else {
            readiness.waiting.push((r.clone(), result.message));
        }
    }
    Ok(readiness)
}

/// Fails when a replica has waited longer than the deployment's health timeout, with a
/// message that names the replica and what its probe said.
pub fn check_ready_in_time(d: &Deployment, readiness: &Readiness) -> Result<()> {
    if let Some((replica, message, waited)) = readiness.oldest_waiting()
        && waited > d.health.ready_timeout_ms as u64
    {
        return Err(Error(format!(
            "health check failed: replica {} of {} not healthy after {} s: {message}",
            replica.id,
            replica.version,
            waited / 1000
        )));
    }
    Ok(())
}

/// Drains the replicas through the router and stops each one once its in-flight
/// requests are done or `timeout_ms` passed. Returns true when all are stopped.
/// Idempotent: call it again on the next step until it says true.
pub fn drain_and_stop(ids: &[String], timeout_ms: u32) -> Result<bool> {
    if ids.is_empty() {
        return Ok(true);
    }
    routing::drain(ids, timeout_ms)?;
    let mut finished = Vec::new();
    for id in ids {
        match routing::drain_status(id)? {
            DrainState::Draining(_) => {}
            DrainState::Drained | DrainState::TimedOut => finished.push(id.clone()),
        }
    }
    if !finished.is_empty() {
        containers::stop(&finished, 10_000)?;
    }
    Ok(finished.len() == ids.len())
}

/// A number of replicas given as a count (`2`) or a percentage (`25%`), as Kubernetes'
/// `maxSurge` and `maxUnavailable` are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Count(u32),
    Percent(u32),
}

impl Amount {
    /// Reads parameter `key`, or `default` when it is absent. The error names the key.
    pub fn param(d: &Deployment, key: &str, default: Amount) -> Result<Amount> {
        let Some(raw) = d.raw(key) else { return Ok(default) };
        let raw = raw.trim();
        let parsed = match raw.strip_suffix('%') {
            Some(p) => p.trim().parse::<u32>().ok().filter(|p| *p <= 100).map(Amount::Percent),
            None => raw.parse::<u32>().ok().map(Amount::Count),
        };
        parsed.ok_or_else(|| {
            Error(format!("{key} must be a count (2) or a percentage from 0% to 100% (25%); got `{raw}`"))
        })
    }

    /// Of `total` replicas, rounding up (as maxSurge does).
    pub fn round_up(self, total: u32) -> u32 {
        match self {
            Amount::Count(n) => n,
            Amount::Percent(p) => (total * p).div_ceil(100),
        }
    }

    /// Of `total` replicas, rounding down (as maxUnavailable does).
    pub fn round_down(self, total: u32) -> u32 {
        match self {
            Amount::Count(n) => n,
            Amount::Percent(p) => total * p / 100,
        }
    }
}

const STATE_KEY: &str = "sdk.state";
/// The most the host keeps under one state key.
const STATE_BYTES: usize = 1 << 20;

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
                Ok(bytes) if bytes.len() > STATE_BYTES => {
                    return StepOutcome::Failed(format!(
                        "the strategy's state is {} bytes as JSON, and the host keeps at most 1 MiB per value: keep less in `State`",
                        bytes.len()
                    ));
                }
                Ok(bytes) => bindings::hivemind::plugin::state::set(STATE_KEY, &bytes),
                Err(e) => return StepOutcome::Failed(format!("plugin state does not encode: {e}")),
            }
            match step {
                Step::After(delay) => StepOutcome::Continue(delay.as_millis().min(u32::MAX as u128) as u32),
                Step::AwaitApproval(reason) => StepOutcome::AwaitApproval(reason),
                Step::Verify => StepOutcome::Verify,
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
