//! `hivemind cluster`: the servers sharing one database, and which leads.

use super::client::{CliError, Client};
use super::output::{self, Format};
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// The servers, which one leads (drives deployments), since when, and the lease epoch.
    #[command(
        after_help = "Example:\n  hivemind cluster status\n  hivemind --server http://10.0.0.2:7070 cluster status --output json"
    )]
    Status,
}

pub async fn run(client: &Client, command: ClusterCommand, format: Format) -> Result<ExitCode, CliError> {
    match command {
        ClusterCommand::Status => output::cluster(&client.cluster().await?, format),
    }
    Ok(ExitCode::SUCCESS)
}
