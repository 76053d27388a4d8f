//! One plugin call: a fresh store with the call's capabilities and the sandbox's limits,
//! the call itself under its wall-clock timeout, and its outcome in bounds.

use super::bindings::{Stage, StepContext, StepOutcome, wit};
use super::bounds;
use super::registry::{LoadedPlugin, PluginHost, Pre};
use super::sandbox::{HostState, describe_trap};
use super::scope::{HookCaps, StepCaps};
use anyhow::Result;
use std::time::Duration;
use wasmtime::Store;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

impl PluginHost {
    /// A fresh store for one call, with the step's or the hook's capabilities.
    pub(super) fn new_store(&self, step: Option<StepCaps>, hook: Option<HookCaps>) -> Store<HostState> {
        let stderr = MemoryOutputPipe::new(16 << 10);
        // No preopened directories, no environment, no sockets: the default context
        // denies every address, and we add nothing.
        let wasi = WasiCtx::builder().stderr(stderr.clone()).allow_tcp(false).allow_udp(false).build();
        super::sandbox::new_store(&self.engine, &self.limits, wasi, stderr, step, hook)
    }

    /// Calls the plugin's `validate`: `Ok(Err(why))` when it refuses the deployment, `Err`
    /// when the plugin itself failed (a trap, a budget overrun, the timeout), described
    /// for people. Both are the plugin's doing, never the server's.
    pub async fn validate(
        &self,
        plugin: &LoadedPlugin,
        deployment: &wit::Deployment,
    ) -> Result<Result<(), String>, String> {
        let Pre::Strategy(pre) = &plugin.pre else {
            return Err(format!("plugin {} is a hook, not a strategy", plugin.info.name));
        };
        let mut store = self.new_store(None, None);
        let result = tokio::time::timeout(self.limits.timeout, async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_validate(&mut store, deployment).await
        })
        .await;
        match result {
            Err(_) => Err(format!("validate() did not return within {} s", self.limits.timeout.as_secs())),
            Ok(Err(e)) => Err(describe_trap(&e, &store.data().stderr)),
            Ok(Ok(verdict)) => Ok(verdict.map_err(|why| bounds::bounded(why, bounds::REASON_BYTES))),
        }
    }

    /// Runs one step in a fresh sandbox, until it returns or `cancel` resolves (a user
    /// paused, aborted or rolled back the deployment meanwhile). Returns the outcome (an
    /// error is a trap, a budget overrun or a timeout, described for people; `None` when
    /// cancelled) and the capabilities back, with what the step wrote.
    pub async fn step(
        &self,
        plugin: &LoadedPlugin,
        caps: StepCaps,
        deployment: &wit::Deployment,
        context: &StepContext,
        cancel: impl std::future::Future<Output = ()>,
    ) -> (Option<Result<StepOutcome, String>>, StepCaps) {
        let Pre::Strategy(pre) = &plugin.pre else {
            return (Some(Err(format!("plugin {} is a hook, not a strategy", plugin.info.name))), caps);
        };
        let mut store = self.new_store(Some(caps), None);
        // Dropping the call (at the timeout, or when cancelled) unwinds the guest and the
        // host call it waits on; host calls that change the world finish on their own
        // task (see `capabilities`), so nothing is left half done.
        let call = tokio::time::timeout(self.limits.timeout, async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_step(&mut store, deployment, context).await
        });
        let result = tokio::select! {
            result = call => Some(result),
            () = cancel => None,
        };
        let outcome = result.map(|result| match result {
            Err(_) => Err(format!("the step did not finish within its {} s time limit", self.limits.timeout.as_secs())),
            Ok(Err(e)) => Err(describe_trap(&e, &store.data().stderr)),
            Ok(Ok(outcome)) => Ok(bounded_outcome(outcome)),
        });
        let caps = store.into_data().step.expect("a step store carries capabilities");
        (outcome, caps)
    }

    /// Runs a hook in a fresh sandbox, for at most `timeout` (its jobs and requests are
    /// stopped at that deadline too). Returns its verdict — output on success, the
    /// reason on failure, a trap or the timeout described for people — and what it logged.
    pub async fn run_hook(
        &self,
        plugin: &LoadedPlugin,
        caps: HookCaps,
        deployment: &wit::Deployment,
        stage: Stage,
        argument: &str,
        timeout: Duration,
    ) -> (Result<String, String>, HookCaps) {
        let Pre::Hook(pre) = &plugin.pre else {
            return (Err(format!("plugin {} is a strategy, not a hook", plugin.info.name)), caps);
        };
        // The capabilities check these on every call.
        let caps = HookCaps { plugin: plugin.info.name.clone(), grants: plugin.grants(), ..caps };
        let mut store = self.new_store(None, Some(caps));
        // A moment past the deadline, so that a job or request stopped at the deadline
        // reports it itself, with what it printed.
        let result = tokio::time::timeout(timeout + Duration::from_secs(1), async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, deployment, stage, argument).await
        })
        .await;
        let verdict = match result {
            Err(_) => Err(format!("it did not finish within its {} s timeout and was stopped", timeout.as_secs())),
            Ok(Err(e)) => Err(describe_trap(&e, &store.data().stderr)),
            Ok(Ok(verdict)) => verdict
                .map(|output| bounds::bounded(output, bounds::REASON_BYTES))
                .map_err(|why| bounds::bounded(why, bounds::REASON_BYTES)),
        };
        let caps = store.into_data().hook.expect("a hook store carries capabilities");
        (verdict, caps)
    }
}

/// A step's outcome with its reasons cut to size.
fn bounded_outcome(outcome: StepOutcome) -> StepOutcome {
    match outcome {
        StepOutcome::Failed(why) => StepOutcome::Failed(bounds::bounded(why, bounds::REASON_BYTES)),
        StepOutcome::AwaitApproval(why) => StepOutcome::AwaitApproval(bounds::bounded(why, bounds::REASON_BYTES)),
        other => other,
    }
}
