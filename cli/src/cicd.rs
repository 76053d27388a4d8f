//! `hivemind cicd`: deployment profiles, so that a CI job deploys with one line.

use super::client::{CliError, Client};
use super::output::{self, Format};
use super::spec::SpecArgs;
use clap::Subcommand;
use std::process::ExitCode;

// Parsed once per run: the size of a variant does not matter, and boxing would hide the flags.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum CicdCommand {
    /// Store a deployment profile, so that a CI job deploys with one line:
    /// `hivemind app deploy --pipeline P --name N --image I`.
    #[command(
        after_help = "Example:\n  hivemind cicd configure-deployment --pipeline my-pipeline --strategy blue-green --verification-timeout 60\n  hivemind app deploy --pipeline my-pipeline --name web --image hivemind-demo:v2"
    )]
    ConfigureDeployment {
        #[arg(long)]
        pipeline: String,
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// List the stored profiles.
    #[command(after_help = "Example:\n  hivemind cicd list")]
    List,
}

pub async fn run(client: &Client, command: CicdCommand, format: Format) -> Result<ExitCode, CliError> {
    match command {
        CicdCommand::ConfigureDeployment { pipeline, spec } => {
            let stored = client.put_pipeline(&pipeline, &spec.into_spec(String::new(), None, None)).await?;
            output::pipelines(&[stored], format);
        }
        CicdCommand::List => output::pipelines(&client.pipelines().await?, format),
    }
    Ok(ExitCode::SUCCESS)
}
