//! The `hivemind` command line. Every command but `serve` talks to a server over the
//! REST API (found through `--server` or `HIVEMIND_URL`), never to the store.

mod client;
mod output;

use crate::model::DeploymentSpec;
use crate::server::{self, RuntimeChoice, ServeOptions};
use clap::{Args, Parser, Subcommand};
use client::{CliError, Client};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hivemind",
    version,
    about = "Zero-downtime deployments; strategies are sandboxed WebAssembly components"
)]
pub struct Cli {
    /// The server's URL.
    #[arg(long, global = true, env = "HIVEMIND_URL", default_value = "http://127.0.0.1:7070")]
    server: String,
    /// How to print results.
    #[arg(long, global = true, value_enum, default_value = "table")]
    output: output::Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: API, routers, engine.
    #[command(after_help = "Example:\n  hivemind serve --data-dir ./data --api-addr 127.0.0.1:7070 --runtime process")]
    Serve(ServeArgs),
    /// Deploy and inspect apps.
    #[command(subcommand)]
    App(AppCommand),
    /// Create, run and inspect deployments.
    #[command(subcommand)]
    Deployment(DeploymentCommand),
    /// Install and list strategy plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Live traffic figures of a deployment's versions or variants, with their comparison.
    #[command(subcommand)]
    Metrics(MetricsCommand),
}

#[derive(Args)]
struct ServeArgs {
    /// Where the database, plugins and logs live.
    #[arg(long, default_value = "./hivemind-data")]
    data_dir: PathBuf,
    /// Where the API listens.
    #[arg(long, default_value = "127.0.0.1:7070")]
    api_addr: SocketAddr,
    /// How replicas run.
    #[arg(long, value_enum, default_value = "auto")]
    runtime: RuntimeChoice,
    /// The address the apps' routers bind to.
    #[arg(long, default_value = "127.0.0.1")]
    router_addr: IpAddr,
    /// The most replicas this host runs at once, across all apps.
    #[arg(long, default_value_t = 64)]
    max_replicas: u32,
    /// Finished deployments kept per app; older ones are deleted with their events.
    #[arg(long, default_value_t = 100)]
    history_limit: u32,
    /// Wall-clock limit of one plugin call, in seconds.
    #[arg(long, default_value_t = 60)]
    plugin_timeout: u64,
    /// Linear memory limit of one plugin instance, in MiB.
    #[arg(long, default_value_t = 64)]
    plugin_memory_mib: usize,
}

#[derive(Subcommand)]
enum AppCommand {
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
    List,
    /// Show a deployment's status (the same as `deployment status`).
    DeploymentStatus {
        #[arg(long)]
        id: String,
    },
    /// Roll a deployment back (the same as `deployment rollback`).
    RollbackDeployment {
        #[arg(long)]
        id: String,
        #[arg(long)]
        detach: bool,
    },
    /// Show one app: its release, replicas and their health, and its split.
    Get {
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum DeploymentCommand {
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
    Execute {
        #[arg(long)]
        id: String,
        /// Return once the deployment started, without waiting.
        #[arg(long)]
        detach: bool,
    },
    /// List deployments, newest first.
    List {
        /// Only this app's.
        #[arg(long)]
        app: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show a deployment in full.
    Get {
        #[arg(long)]
        id: String,
    },
    /// Show a deployment's status, progress and message.
    Status {
        #[arg(long)]
        id: String,
    },
    /// Show a deployment's event log.
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
    Pause {
        #[arg(long)]
        id: String,
    },
    /// Go on with a paused deployment.
    Resume {
        #[arg(long)]
        id: String,
    },
    /// Let a deployment that awaits approval go on (a manual gate).
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

#[derive(Subcommand)]
enum MetricsCommand {
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

#[derive(Subcommand)]
enum PluginCommand {
    /// Install a strategy component (.wasm) on the running server.
    Install { file: PathBuf },
    /// List the loaded plugins.
    List,
}

/// The flags that describe what to deploy.
#[derive(Args)]
struct SpecArgs {
    /// A container image (docker runtime), or a command line (process runtime). An A/B
    /// test takes its images from --variant instead.
    #[arg(long)]
    image: Option<String>,
    /// An A/B variant, name=NAME,image=IMAGE,percentage=P (repeatable; shares sum to 100).
    #[arg(long = "variant", value_parser = crate::model::VariantSpec::parse)]
    variants: Vec<crate::model::VariantSpec>,
    /// The strategy (a plugin name).
    #[arg(long, default_value = "simple")]
    strategy: String,
    #[arg(long, default_value_t = 1)]
    replicas: u32,
    /// The app's router port, when the app is new (default: a free port).
    #[arg(long)]
    port: Option<u16>,
    /// The port the app listens on inside its container.
    #[arg(long, default_value_t = 8080)]
    container_port: u16,
    /// The HTTP path health probes GET; a 2xx or 3xx is healthy.
    #[arg(long, default_value = "/")]
    health_check_path: String,
    /// The port health probes go to inside the container (docker runtime).
    #[arg(long)]
    health_check_port: Option<u16>,
    /// Seconds a new replica may take to pass its health check.
    #[arg(long, default_value_t = 60)]
    health_check_timeout: u32,
    /// An environment variable for the replicas, KEY=VALUE (repeatable).
    #[arg(long = "env", value_parser = parse_key_value)]
    env: Vec<(String, String)>,
    /// A strategy parameter, KEY=VALUE (repeatable), for strategies of your own.
    #[arg(long = "param", value_parser = parse_key_value)]
    params: Vec<(String, String)>,
    #[command(flatten)]
    strategy_flags: StrategyFlags,
    /// Roll back on its own when a step, a health gate or the deadline fails.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    auto_rollback: bool,
    /// Seconds without progress after which the deployment fails.
    #[arg(long, default_value_t = 600)]
    progress_deadline: u32,
}

impl SpecArgs {
    fn into_spec(self, app: String, name: Option<String>) -> DeploymentSpec {
        DeploymentSpec {
            app,
            name,
            image: self.image.unwrap_or_default(),
            variants: self.variants,
            replicas: self.replicas,
            strategy: self.strategy,
            port: self.port,
            container_port: self.container_port,
            health_check_path: self.health_check_path,
            health_check_port: self.health_check_port,
            health_check_timeout: self.health_check_timeout,
            params: self.params.into_iter().chain(self.strategy_flags.into_params()).collect::<BTreeMap<_, _>>(),
            env: self.env.into_iter().collect(),
            auto_rollback: self.auto_rollback,
            progress_deadline: self.progress_deadline,
        }
    }
}

/// The built-in strategies' flags. Each becomes a parameter of the same name, checked by
/// the strategy itself (so `--batch-size -2` reaches it and gets its message).
#[derive(Args, Default)]
#[command(next_help_heading = "Strategy options")]
struct StrategyFlags {
    /// rolling-update: extra replicas allowed during the update, a count or a percentage (rounds up).
    #[arg(long, allow_hyphen_values = true)]
    max_surge: Option<String>,
    /// rolling-update: replicas that may be unavailable, a count or a percentage (rounds down).
    #[arg(long, allow_hyphen_values = true)]
    max_unavailable: Option<String>,
    /// rolling-update: seconds a new replica must stay healthy before it counts as ready.
    #[arg(long, allow_hyphen_values = true)]
    min_ready: Option<String>,
    /// zero-downtime: replicas replaced per batch.
    #[arg(long, allow_hyphen_values = true)]
    batch_size: Option<String>,
    /// zero-downtime: seconds between batches.
    #[arg(long, allow_hyphen_values = true)]
    batch_delay: Option<String>,
    /// zero-downtime, rolling-update: seconds old replicas get to finish their requests.
    #[arg(long, allow_hyphen_values = true)]
    drain_timeout: Option<String>,
    /// zero-downtime: the router service's name (the app's by default).
    #[arg(long)]
    service: Option<String>,
    /// blue-green: seconds green is verified before the switch.
    #[arg(long, allow_hyphen_values = true)]
    verification_timeout: Option<String>,
    /// blue-green: switch on its own after verification (false: wait for `deployment promote`).
    #[arg(long)]
    auto_promote: Option<String>,
    /// blue-green: seconds blue stays, idle, after the switch, for an instant rollback.
    #[arg(long, allow_hyphen_values = true)]
    scale_down_delay: Option<String>,
    /// canary: the first share of traffic for the new version, in percent.
    #[arg(long, allow_hyphen_values = true)]
    percentage: Option<String>,
    /// canary: the shares to walk through, for example 20,50,100.
    #[arg(long, allow_hyphen_values = true)]
    steps: Option<String>,
    /// canary: seconds of analysis at each step.
    #[arg(long, allow_hyphen_values = true)]
    interval: Option<String>,
    /// canary: the highest error rate the canary may have (0.01 = 1%), when it is also
    /// significantly worse than stable.
    #[arg(long, allow_hyphen_values = true)]
    max_error_rate: Option<String>,
    /// canary: the highest p99 latency the canary may have, when it is also significantly
    /// slower than stable.
    #[arg(long, allow_hyphen_values = true)]
    max_p99_latency_ms: Option<String>,
    /// canary: requests each side needs in a window before a verdict; fewer is inconclusive.
    #[arg(long, allow_hyphen_values = true)]
    min_requests: Option<String>,
    /// canary, ab-testing: where replicas expose their own Prometheus counters.
    #[arg(long)]
    metrics_endpoint: Option<String>,
    /// ab-testing: seconds to collect figures before a winner is chosen.
    #[arg(long, allow_hyphen_values = true)]
    duration: Option<String>,
    /// ab-testing: the conversion goal, header:NAME (a response header) or counter:NAME
    /// (a counter on the metrics endpoint).
    #[arg(long)]
    goal: Option<String>,
    /// ab-testing: pick the winner on its own by error-rate, p99-latency or goal, when the
    /// difference is significant.
    #[arg(long)]
    winner_metric: Option<String>,
}

impl StrategyFlags {
    fn into_params(self) -> Vec<(String, String)> {
        [
            ("max-surge", self.max_surge),
            ("max-unavailable", self.max_unavailable),
            ("min-ready", self.min_ready),
            ("batch-size", self.batch_size),
            ("batch-delay", self.batch_delay),
            ("drain-timeout", self.drain_timeout),
            ("service", self.service),
            ("verification-timeout", self.verification_timeout),
            ("auto-promote", self.auto_promote),
            ("scale-down-delay", self.scale_down_delay),
            ("percentage", self.percentage),
            ("steps", self.steps),
            ("interval", self.interval),
            ("max-error-rate", self.max_error_rate),
            ("max-p99-latency-ms", self.max_p99_latency_ms),
            ("min-requests", self.min_requests),
            ("metrics-endpoint", self.metrics_endpoint),
            ("duration", self.duration),
            ("goal", self.goal),
            ("winner-metric", self.winner_metric),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect()
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.output;
    let result = match cli.command {
        Command::Serve(args) => {
            let options = ServeOptions {
                data_dir: args.data_dir,
                api_addr: args.api_addr,
                runtime: args.runtime,
                router_ip: args.router_addr,
                history_limit: args.history_limit.max(1),
                max_replicas: args.max_replicas,
                limits: crate::plugins::Limits {
                    timeout: std::time::Duration::from_secs(args.plugin_timeout.max(1)),
                    memory_bytes: args.plugin_memory_mib.max(1) << 20,
                    ..Default::default()
                },
            };
            server::serve(options).await.map(|()| ExitCode::SUCCESS).map_err(CliError::Other)
        }
        command => {
            let client = Client::new(&cli.server);
            run_client(&client, command, format).await
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

async fn run_client(client: &Client, command: Command, format: output::Format) -> Result<ExitCode, CliError> {
    match command {
        Command::Serve(_) => unreachable!("handled above"),
        Command::App(AppCommand::Deploy { spec, name, detach }) => {
            let d = client.deploy(&spec.into_spec(name, None)).await?;
            if detach {
                output::deployment(&d, format);
                return Ok(ExitCode::SUCCESS);
            }
            output::follow(client, &d.deployment.id, format).await
        }
        Command::App(AppCommand::ZeroDowntimeDeploy { spec, name, detach }) => {
            let mut spec = spec.into_spec(name, None);
            spec.strategy = "zero-downtime".into();
            let d = client.zero_downtime(&spec).await?;
            if detach {
                output::deployment(&d, format);
                return Ok(ExitCode::SUCCESS);
            }
            output::follow(client, &d.deployment.id, format).await
        }
        Command::App(AppCommand::List) => {
            output::apps(&client.apps().await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::App(AppCommand::DeploymentStatus { id }) | Command::Deployment(DeploymentCommand::Status { id }) => {
            output::status(&client.status(&id).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::App(AppCommand::RollbackDeployment { id, detach })
        | Command::Deployment(DeploymentCommand::Rollback { id, detach }) => {
            let d = client.action(&id, "rollback").await?;
            if detach {
                output::deployment(&d, format);
                return Ok(ExitCode::SUCCESS);
            }
            output::follow(client, &d.deployment.id, format).await
        }
        Command::Deployment(DeploymentCommand::Pause { id }) => {
            output::deployment(&client.action(&id, "pause").await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Deployment(DeploymentCommand::Resume { id }) => {
            output::deployment(&client.action(&id, "resume").await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Deployment(DeploymentCommand::Promote { id }) => {
            output::deployment(&client.action(&id, "promote").await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Deployment(DeploymentCommand::SelectWinner { id, variant }) => {
            output::deployment(&client.select_winner(&id, &variant).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Metrics(MetricsCommand::Get { deployment_id, variant }) => {
            output::metrics(&client.metrics(&deployment_id, variant.as_deref()).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Deployment(DeploymentCommand::Abort { id }) => {
            output::deployment(&client.action(&id, "abort").await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Deployment(DeploymentCommand::Diagnose { id, verbose }) => {
            output::diagnosis(&client.diagnose(&id, verbose).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::App(AppCommand::Get { name }) => {
            output::app(&client.app(&name).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Deployment(DeploymentCommand::Create { spec, name, app_name }) => {
            let d = client.create(&spec.into_spec(app_name, name)).await?;
            output::deployment(&d, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Deployment(DeploymentCommand::Execute { id, detach }) => {
            let d = client.execute(&id).await?;
            if detach {
                output::deployment(&d, format);
                return Ok(ExitCode::SUCCESS);
            }
            output::follow(client, &id, format).await
        }
        Command::Deployment(DeploymentCommand::List { app, limit }) => {
            output::deployments(&client.deployments(app.as_deref(), limit).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Deployment(DeploymentCommand::Get { id }) => {
            output::deployment(&client.deployment(&id).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Deployment(DeploymentCommand::Events { id }) => {
            output::events(&client.events(&id, 0).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Install { file }) => {
            let bytes =
                std::fs::read(&file).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            output::plugin(&client.install_plugin(bytes).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::List) => {
            output::plugins(&client.plugins().await?, format);
            Ok(ExitCode::SUCCESS)
        }
    }
}
