//! The commands of the `hivemind` binary that run in this process, not on a server:
//! `serve`, `router`, `store` and `plugin test`. The CLI crate parses them; this is where
//! they meet the server's crates.

mod config;
mod private;
mod router;
mod serve;
mod store;

use hivemind_cli::{CliError, Local, RouterArgs, ServeArgs, StoreCommand};
use hivemind_model::simulation::{Report, Settings};
use std::process::ExitCode;

/// What `hivemind_cli::run` is given: the server, the router and the store of this build.
pub struct Commands;

impl Local for Commands {
    async fn serve(&self, args: ServeArgs) -> Result<ExitCode, CliError> {
        serve::run(args).await
    }

    async fn router(&self, args: RouterArgs) -> Result<ExitCode, CliError> {
        router::run(args).await
    }

    async fn store(&self, command: StoreCommand) -> Result<ExitCode, CliError> {
        store::run(command).await
    }

    async fn simulate(&self, component: &[u8], settings: &Settings) -> anyhow::Result<Report> {
        crate::simulator::run(component, settings).await
    }
}
