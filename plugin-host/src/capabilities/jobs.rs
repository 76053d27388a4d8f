//! `jobs`: one-off jobs in a fresh replica of a release the deployment owns (migrations,
//! self-tests), for hooks. Each job ends by the hook's deadline.

use super::{CapabilityError, HostState, bounds};
use crate::bindings::hook::hivemind::plugin::jobs;
use crate::runtime::LaunchSpec;

impl jobs::Host for HostState {
    async fn run_job(
        &mut self,
        version: String,
        command: String,
        timeout_ms: u32,
    ) -> Result<jobs::JobResult, CapabilityError> {
        let caps = self.hook()?;
        if !caps.grants.jobs() {
            return Err(CapabilityError::Denied(format!(
                "jobs.run-job: plugin {} was not granted `jobs`, so it may not run commands; whoever installs it may allow it with `hivemind plugin install FILE --allow jobs`",
                caps.plugin
            )));
        }
        if command.len() > bounds::JOB_COMMAND_BYTES {
            return Err(CapabilityError::Invalid(format!(
                "jobs.run-job: a command may be at most {} bytes; this one has {}",
                bounds::JOB_COMMAND_BYTES,
                command.len()
            )));
        }
        let release = caps.scope.release("jobs.run-job", &version)?;
        let (timeout, limit) = caps.time_left(timeout_ms);
        // A job answers no probes.
        let spec = LaunchSpec { health_port: None, ..caps.scope.launch_spec(&release) };
        let outcome = caps.scope.platform.run_job(&spec, &command, timeout).await?;
        match outcome.exit_code {
            Some(exit_code) => Ok(jobs::JobResult { exit_code, output: outcome.output }),
            None => Err(CapabilityError::Failed(format!(
                "`{command}` did not finish within {limit} and was stopped; it printed: {}",
                if outcome.output.is_empty() { "nothing" } else { &outcome.output }
            ))),
        }
    }
}
