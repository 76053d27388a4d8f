//! `hivemind deployment`: create, run, watch and steer deployments.

use super::client::{CliError, Client};
use super::follow::detach_or_follow;
use super::output::{self, Format};
use super::spec::SpecArgs;
use clap::Subcommand;
use std::process::ExitCode;

// Parsed once per run: the size of a variant does not matter, and boxing would hide the flags.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum DeploymentCommand {
    /// Record a deployment without running it (see `execute`).
    #[command(
        after_help = "Example:\n  hivemind deployment create --name web-deployment --app-name web --image hivemind-demo:v2 --replicas 3 --strategy simple"
    )]
    Create {
        #[command(flatten)]
        spec: SpecArgs,
        /// A name for the deployment.
        #[arg(long)]
        name: Option<String>,
        /// The app to deploy.
        #[arg(long)]
        app_name: String,
    },
    /// Run a pending deployment.
    #[command(after_help = "Example:\n  hivemind deployment execute --id dep-1a2b3c4d")]
    Execute {
        #[arg(long)]
        id: String,
        /// Return once the deployment started, without waiting.
        #[arg(long)]
        detach: bool,
    },
    /// List deployments, newest first.
    #[command(
        after_help = "Examples:\n  hivemind deployment list\n  hivemind deployment list --app web --status failed --limit 10"
    )]
    List {
        /// Only this app's.
        #[arg(long)]
        app: Option<String>,
        /// Only with this status (in_progress, completed, failed, ...).
        #[arg(long)]
        status: Option<String>,
        /// Only with this strategy.
        #[arg(long)]
        strategy: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Skip this many (the next page).
        #[arg(long, default_value_t = 0)]
        offset: u32,
    },
    /// Show a deployment in full.
    #[command(after_help = "Example:\n  hivemind deployment get --id dep-1a2b3c4d")]
    Get {
        #[arg(long)]
        id: String,
    },
    /// Show a deployment's status, progress and message.
    #[command(after_help = "Example:\n  hivemind deployment status --id dep-1a2b3c4d")]
    Status {
        #[arg(long)]
        id: String,
    },
    /// Show a deployment's event log.
    #[command(after_help = "Example:\n  hivemind deployment events --id dep-1a2b3c4d")]
    Events {
        #[arg(long)]
        id: String,
    },
    /// Roll a deployment back: a running one stops and undoes what it did; a completed one
    /// is reversed by a new deployment that brings the previous release back.
    #[command(after_help = "Example:\n  hivemind deployment rollback --id dep-1a2b3c4d")]
    Rollback {
        #[arg(long)]
        id: String,
        /// Return at once, without following the rollback.
        #[arg(long)]
        detach: bool,
    },
    /// Stop stepping a deployment in progress (it keeps its replicas and routes).
    #[command(after_help = "Example:\n  hivemind deployment pause --id dep-1a2b3c4d")]
    Pause {
        #[arg(long)]
        id: String,
    },
    /// Go on with a paused deployment.
    #[command(after_help = "Example:\n  hivemind deployment resume --id dep-1a2b3c4d")]
    Resume {
        #[arg(long)]
        id: String,
    },
    /// Let a deployment that awaits approval go on (a manual gate).
    #[command(after_help = "Example:\n  hivemind deployment promote --id dep-1a2b3c4d")]
    Promote {
        #[arg(long)]
        id: String,
    },
    /// Make a variant of an A/B test the winner: it becomes the release, the others go.
    #[command(after_help = "Example:\n  hivemind deployment select-winner --id dep-1a2b3c4d --variant new-feature")]
    SelectWinner {
        #[arg(long)]
        id: String,
        #[arg(long)]
        variant: String,
    },
    /// Stop a deployment and roll back what it did.
    #[command(after_help = "Example:\n  hivemind deployment abort --id dep-1a2b3c4d")]
    Abort {
        #[arg(long)]
        id: String,
    },
    /// What happened to a deployment and why, cause first: its timeline, step outcomes,
    /// errors, and the app's replicas with their health and recent output.
    #[command(after_help = "Example:\n  hivemind deployment diagnose --id dep-1a2b3c4d --verbose")]
    Diagnose {
        #[arg(long)]
        id: String,
        /// Every step, and more of each replica's output.
        #[arg(long)]
        verbose: bool,
    },
}

pub async fn run(client: &Client, command: DeploymentCommand, format: Format) -> Result<ExitCode, CliError> {
    match command {
        DeploymentCommand::Create { spec, name, app_name } => {
            output::deployment(&client.create(&spec.into_spec(app_name, name, None)).await?, format);
        }
        DeploymentCommand::Execute { id, detach } => {
            let d = client.execute(&id).await?;
            return detach_or_follow(client, &d, detach, format).await;
        }
        DeploymentCommand::Rollback { id, detach } => {
            let d = client.action(&id, "rollback").await?;
            return detach_or_follow(client, &d, detach, format).await;
        }
        DeploymentCommand::List { app, status, strategy, limit, offset } => {
            let list =
                client.deployments(app.as_deref(), status.as_deref(), strategy.as_deref(), limit, offset).await?;
            output::deployments(&list, format);
        }
        DeploymentCommand::Get { id } => output::deployment(&client.deployment(&id).await?, format),
        DeploymentCommand::Status { id } => output::status(&client.status(&id).await?, format),
        DeploymentCommand::Events { id } => output::events(&client.events(&id, 0).await?, format),
        DeploymentCommand::Diagnose { id, verbose } => output::diagnosis(&client.diagnose(&id, verbose).await?, format),
        DeploymentCommand::Pause { id } => output::deployment(&client.action(&id, "pause").await?, format),
        DeploymentCommand::Resume { id } => output::deployment(&client.action(&id, "resume").await?, format),
        DeploymentCommand::Promote { id } => output::deployment(&client.action(&id, "promote").await?, format),
        DeploymentCommand::Abort { id } => output::deployment(&client.action(&id, "abort").await?, format),
        DeploymentCommand::SelectWinner { id, variant } => {
            output::deployment(&client.select_winner(&id, &variant).await?, format)
        }
    }
    Ok(ExitCode::SUCCESS)
}
