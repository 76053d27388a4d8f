//! `{{name}}`: a Hivemind hook. `--pre-hook "plugin:{{name}} ./migrate --all"` runs
//! `./migrate --all` in a one-off replica of the new release before any traffic moves,
//! and fails the deployment (nothing changes) unless it exits 0.
//!
//! A hook may run jobs of the deployment's releases (`jobs`), post JSON to the hosts the
//! server allows (`http`), and log (`progress`); nothing else.

use hivemind_sdk::prelude::*;

struct Plugin;

/// What the event log says of a finished command, or why the hook fails.
fn verdict(command: &str, exit_code: i32, output: &str) -> Result<String> {
    let output = output.trim();
    let shown = if output.is_empty() { "(no output)" } else { output };
    match exit_code {
        0 => Ok(format!("`{command}` passed: {shown}")),
        code => Err(Error(format!("`{command}` exited {code}: {shown}"))),
    }
}

impl Hook for Plugin {
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = "0.1.0";
    const DESCRIPTION: &'static str = "Run a command in a one-off replica of the new release";

    fn run(d: &Deployment, stage: Stage, argument: &str) -> Result<String> {
        let command = argument.trim();
        if command.is_empty() {
            return Err(Error::msg("give the command to run, as in --pre-hook \"plugin:{{name}} ./migrate\""));
        }
        progress::log(progress::Level::Info, &format!("{stage:?} hook: running `{command}`"));
        let job = jobs::run_job(&d.target.version, command, 600_000)?;
        verdict(command, job.exit_code, &job.output)
    }
}

hivemind_sdk::export_hook!(Plugin);

#[cfg(test)]
mod tests {
    use super::verdict;

    #[test]
    fn a_command_passes_only_when_it_exits_0() {
        assert_eq!(verdict("./migrate", 0, "done\n").unwrap(), "`./migrate` passed: done");
        assert_eq!(verdict("./migrate", 3, "").unwrap_err().0, "`./migrate` exited 3: (no output)");
    }
}
