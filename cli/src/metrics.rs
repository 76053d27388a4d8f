//! `hivemind metrics`: a deployment's live figures and their comparison.

use super::client::{CliError, Client};
use super::output::{self, Format};
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum MetricsCommand {
    /// Requests, error rate, latency percentiles and goals per version (canary against
    /// stable, or each A/B variant against the first), with the significance tests.
    #[command(
        after_help = "Examples:\n  hivemind metrics get --deployment-id dep-1a2b3c4d\n  hivemind metrics get --deployment-id dep-1a2b3c4d --variant new-feature"
    )]
    Get {
        #[arg(long)]
        deployment_id: String,
        /// Only this variant (and its comparison).
        #[arg(long)]
        variant: Option<String>,
    },
}

pub async fn run(client: &Client, command: MetricsCommand, format: Format) -> Result<ExitCode, CliError> {
    match command {
        MetricsCommand::Get { deployment_id, variant } => {
            output::metrics(&client.metrics(&deployment_id, variant.as_deref()).await?, format)
        }
    }
    Ok(ExitCode::SUCCESS)
}
