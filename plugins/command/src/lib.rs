//! `command`: the release-phase pattern of Heroku and Kamal, and the Job analysis of Argo
//! Rollouts. Runs the hook's argument as a command in a one-off replica of the release
//! the deployment rolls out, and passes when it exits 0.
//!
//! `--pre-hook "./run-tests.sh"` selects this hook with that command. With the docker
//! runtime the command's words replace the image's CMD (`docker run IMAGE COMMAND`);
//! with the process runtime it runs under `sh -c` with the release's environment.

use hivemind_sdk::prelude::*;

struct Command;

/// The host stops the job at the hook's own timeout (`--hook-timeout`); this only
/// says "as long as the hook may take".
const NO_LIMIT_MS: u32 = u32::MAX;

impl Hook for Command {
    const NAME: &'static str = "command";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str = "Run a command in a one-off replica of the new release; pass on exit 0";

    fn run(d: &Deployment, _stage: Stage, argument: &str) -> Result<String> {
        let command = argument.trim();
        if command.is_empty() {
            return Err(Error::msg("the command hook needs a command to run, as in --pre-hook \"./run-tests.sh\""));
        }
        let job = jobs::run_job(&d.target.version, command, NO_LIMIT_MS)?;
        let output = job.output.trim();
        let shown = if output.is_empty() { "(no output)".to_string() } else { output.to_string() };
        if job.exit_code == 0 {
            Ok(format!("`{command}` exited 0: {shown}"))
        } else {
            Err(Error(format!("`{command}` exited {}: {shown}", job.exit_code)))
        }
    }
}

hivemind_sdk::export_hook!(Command);
