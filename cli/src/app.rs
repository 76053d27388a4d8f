//! `hivemind app`: deploy apps and look at them.

use super::client::{CliError, Client};
use super::follow::detach_or_follow;
use super::output::{self, Format};
use super::spec::SpecArgs;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum AppCommand {
    /// Create a deployment of an app and run it, showing progress until it ends.
    #[command(
        after_help = "Examples:\n  hivemind app deploy --name web --image hivemind-demo:v2 --strategy simple --replicas 3 --health-check-path /health\n  hivemind app deploy --name web --image './server --flag' --port 8080   # process runtime"
    )]
    Deploy {
        #[command(flatten)]
        spec: SpecArgs,
        /// The app's name.
        #[arg(long)]
        name: String,
        /// Start from a profile stored with `cicd configure-deployment`; flags given here
        /// override it.
        #[arg(long)]
        pipeline: Option<String>,
        /// Return once the deployment started, without waiting.
        #[arg(long)]
        detach: bool,
    },
    /// Replace the app's replicas in batches with no downtime (the zero-downtime strategy).
    #[command(
        after_help = "Example:\n  hivemind app zero-downtime-deploy --image hivemind-demo:v2 --name web --service web-service --batch-size 2 \\\n      --batch-delay 30 --health-check-path /health --health-check-port 8080 --health-check-timeout 60 --drain-timeout 30"
    )]
    ZeroDowntimeDeploy {
        #[command(flatten)]
        spec: SpecArgs,
        /// The app's name.
        #[arg(long)]
        name: String,
        #[arg(long)]
        detach: bool,
    },
    /// List apps with their release and replicas.
    #[command(after_help = "Example:\n  hivemind app list")]
    List,
    /// Show a deployment's status (the same as `deployment status`).
    #[command(after_help = "Example:\n  hivemind app deployment-status --id dep-1a2b3c4d")]
    DeploymentStatus {
        #[arg(long)]
        id: String,
    },
    /// Roll a deployment back (the same as `deployment rollback`).
    #[command(after_help = "Example:\n  hivemind app rollback-deployment --id dep-1a2b3c4d")]
    RollbackDeployment {
        #[arg(long)]
        id: String,
        #[arg(long)]
        detach: bool,
    },
    /// Show one app: its release, replicas and their health, and its split.
    #[command(after_help = "Example:\n  hivemind app get --name web")]
    Get {
        #[arg(long)]
        name: String,
    },
    /// Print the app's preview key: with it, a request chooses a version by name, even one
    /// with no traffic yet (`curl -H "x-hivemind-preview: KEY" -H "x-hivemind-variant: r9"`).
    /// Without it the variant header is ignored.
    #[command(
        name = "preview-key",
        after_help = "Example:\n  curl -H \"x-hivemind-preview: $(hivemind app preview-key --name web)\" -H 'x-hivemind-variant: r2' http://127.0.0.1:PORT/"
    )]
    PreviewKey {
        #[arg(long)]
        name: String,
    },
    /// Change how many replicas the app's release runs, without a deployment: new ones
    /// start, a surplus is drained before it stops.
    #[command(after_help = "Example:\n  hivemind app scale --name web --replicas 5")]
    Scale {
        #[arg(long)]
        name: String,
        #[arg(long)]
        replicas: u32,
    },
    /// The app's own event log: replicas replaced, crash loops, scaling.
    #[command(after_help = "Example:\n  hivemind app events --name web")]
    Events {
        #[arg(long)]
        name: String,
    },
    /// Remove an app: drain and stop its replicas, free its port, delete its history.
    #[command(after_help = "Example:\n  hivemind app remove --name web")]
    Remove {
        #[arg(long)]
        name: String,
        /// Even while a deployment runs (it is aborted without a rollback).
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(client: &Client, command: AppCommand, format: Format) -> Result<ExitCode, CliError> {
    match command {
        AppCommand::Deploy { spec, name, pipeline, detach } => {
            let base = match pipeline {
                None => None,
                Some(p) => Some(client.pipelines().await?.into_iter().find(|x| x.name == p).map(|x| x.spec).ok_or_else(|| {
                    CliError::Usage(format!("no pipeline named `{p}`; `hivemind cicd list` shows them, `hivemind cicd configure-deployment` makes one"))
                })?),
            };
            let d = client.deploy(&spec.into_spec(name, None, base)).await?;
            detach_or_follow(client, &d, detach, format).await
        }
        AppCommand::ZeroDowntimeDeploy { spec, name, detach } => {
            let mut spec = spec.into_spec(name, None, None);
            spec.strategy = "zero-downtime".into();
            let d = client.zero_downtime(&spec).await?;
            detach_or_follow(client, &d, detach, format).await
        }
        AppCommand::List => {
            output::apps(&client.apps().await?, format);
            Ok(ExitCode::SUCCESS)
        }
        AppCommand::Get { name } => {
            output::app(&client.app(&name).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        AppCommand::PreviewKey { name } => {
            let key = client.preview_key(&name).await?;
            match format {
                // The key alone, for `$(hivemind app preview-key --name web)`.
                Format::Table => println!("{}", key.key),
                _ => output::json(&key, format),
            }
            Ok(ExitCode::SUCCESS)
        }
        AppCommand::Scale { name, replicas } => {
            output::app(&client.scale_app(&name, replicas).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        AppCommand::Events { name } => {
            output::app_events(&client.app_events(&name).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        AppCommand::Remove { name, force } => {
            client.remove_app(&name, force).await?;
            if format == Format::Table {
                println!("removed app {name}: its replicas are stopped and its port is free");
            }
            Ok(ExitCode::SUCCESS)
        }
        // The product docs' spellings of two deployment commands.
        AppCommand::DeploymentStatus { id } => {
            output::status(&client.status(&id).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        AppCommand::RollbackDeployment { id, detach } => {
            let d = client.action(&id, "rollback").await?;
            detach_or_follow(client, &d, detach, format).await
        }
    }
}
