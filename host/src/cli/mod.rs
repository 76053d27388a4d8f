//! The `hivemind` command line. Every command but `serve` talks to a server over the
//! REST API (found through `--server` or `HIVEMIND_URL`), never to the store.

mod client;
pub mod config;
mod oci;
mod output;

use crate::model::DeploymentSpec;
use crate::server::{self, RuntimeChoice, ServeOptions};
use clap::{Args, Parser, Subcommand};
use client::{CliError, Client};
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
    /// The server's URL [default: http://127.0.0.1:7070, or `server` in the config file].
    #[arg(long, global = true, env = "HIVEMIND_URL")]
    server: Option<String>,
    /// The API token [default: `token` in the config file; the server keeps it in DATA_DIR/token].
    #[arg(long, global = true, env = "HIVEMIND_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The CLI's config file [default: $XDG_CONFIG_HOME/hivemind/config.toml].
    #[arg(long, global = true, env = "HIVEMIND_CLI_CONFIG")]
    cli_config: Option<PathBuf>,
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
    /// Deployment profiles for CI pipelines.
    #[command(subcommand)]
    Cicd(CicdCommand),
    /// The API token.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print shell completions: hivemind completions bash > /etc/bash_completion.d/hivemind
    #[command(
        after_help = "Examples:\n  hivemind completions bash > ~/.local/share/bash-completion/completions/hivemind\n  hivemind completions zsh > ~/.zfunc/_hivemind\n  hivemind completions fish > ~/.config/fish/completions/hivemind.fish"
    )]
    Completions { shell: clap_complete::Shell },
}

#[derive(Args)]
struct ServeArgs {
    /// A TOML config file [default: $XDG_CONFIG_HOME/hivemind/server.toml, if it exists].
    #[arg(long, env = "HIVEMIND_CONFIG")]
    config: Option<PathBuf>,
    /// Where the database, token, plugins and logs live. [default: ./hivemind-data]
    #[arg(long, env = "HIVEMIND_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where the API listens. [default: 127.0.0.1:7070]
    #[arg(long, env = "HIVEMIND_API_ADDR")]
    api_addr: Option<SocketAddr>,
    /// How replicas run. [default: auto]
    #[arg(long, value_enum, env = "HIVEMIND_RUNTIME")]
    runtime: Option<RuntimeChoice>,
    /// The address the apps' routers bind to. [default: 127.0.0.1]
    #[arg(long, env = "HIVEMIND_ROUTER_ADDR")]
    router_addr: Option<IpAddr>,
    /// The most replicas this host runs at once, across all apps. [default: 64]
    #[arg(long, env = "HIVEMIND_MAX_REPLICAS")]
    max_replicas: Option<u32>,
    /// The most replicas one app runs at once, unless its deployment gives it a
    /// --replica-quota of its own. [default: half of --max-replicas]
    #[arg(long, env = "HIVEMIND_APP_REPLICA_QUOTA")]
    app_replica_quota: Option<u32>,
    /// Finished deployments kept per app; older ones are deleted with their events. [default: 100]
    #[arg(long, env = "HIVEMIND_HISTORY_LIMIT")]
    history_limit: Option<u32>,
    /// Wall-clock limit of one plugin call, in seconds. [default: 60]
    #[arg(long, env = "HIVEMIND_PLUGIN_TIMEOUT")]
    plugin_timeout: Option<u64>,
    /// Linear memory limit of one plugin instance, in MiB. [default: 64]
    #[arg(long, env = "HIVEMIND_PLUGIN_MEMORY_MIB")]
    plugin_memory_mib: Option<usize>,
    /// Hosts that hooks (webhook:URL) may send HTTP requests to, as HOST or HOST:PORT,
    /// comma-separated. [default: none]
    #[arg(long, env = "HIVEMIND_HOOK_ALLOWED_HOSTS", value_delimiter = ',')]
    hook_allowed_hosts: Option<Vec<String>>,
}

impl ServeArgs {
    /// Flags (and their environment variables) over the config file over the defaults.
    fn resolve(self) -> anyhow::Result<ServeOptions> {
        let file: config::ServerFile = config::load(self.config.as_deref(), "server.toml")?;
        let parse = |what: &str, v: Option<String>| -> anyhow::Result<Option<String>> {
            Ok(v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).or(None))
                .map_err(|e: anyhow::Error| e.context(what.to_string()))
        };
        let api_addr = match (self.api_addr, parse("api_addr", file.api_addr)?) {
            (Some(a), _) => a,
            (None, Some(a)) => a.parse().map_err(|e| anyhow::anyhow!("api_addr `{a}` in the config file: {e}"))?,
            (None, None) => "127.0.0.1:7070".parse().unwrap(),
        };
        let router_ip = match (self.router_addr, file.router_addr) {
            (Some(a), _) => a,
            (None, Some(a)) => a.parse().map_err(|e| anyhow::anyhow!("router_addr `{a}` in the config file: {e}"))?,
            (None, None) => IpAddr::from([127, 0, 0, 1]),
        };
        let runtime = match (self.runtime, file.runtime) {
            (Some(r), _) => r,
            (None, Some(r)) => <RuntimeChoice as clap::ValueEnum>::from_str(&r, true)
                .map_err(|_| anyhow::anyhow!("runtime `{r}` in the config file must be auto, docker or process"))?,
            (None, None) => RuntimeChoice::Auto,
        };
        let max_replicas = self.max_replicas.or(file.max_replicas).unwrap_or(64);
        Ok(ServeOptions {
            data_dir: self.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./hivemind-data")),
            api_addr,
            runtime,
            router_ip,
            history_limit: self.history_limit.or(file.history_limit).unwrap_or(100).max(1),
            max_replicas,
            app_replica_quota: self.app_replica_quota.or(file.app_replica_quota).unwrap_or(max_replicas.div_ceil(2)),
            targets: file.targets.iter().map(|(name, t)| (name.clone(), t.docker_host.clone())).collect(),
            hook_allowed_hosts: self
                .hook_allowed_hosts
                .or(file.hook_allowed_hosts)
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect(),
            limits: crate::plugins::Limits {
                timeout: std::time::Duration::from_secs(
                    self.plugin_timeout.or(file.plugin_timeout).unwrap_or(60).max(1),
                ),
                memory_bytes: self.plugin_memory_mib.or(file.plugin_memory_mib).unwrap_or(64).max(1) << 20,
                ..Default::default()
            },
        })
    }
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

// Parsed once per run: the size of a variant does not matter, and boxing would hide the flags.
#[allow(clippy::large_enum_variant)]
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

// Parsed once per run: the size of a variant does not matter, and boxing would hide the flags.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum CicdCommand {
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

#[derive(Subcommand)]
enum TokenCommand {
    /// Replace the API token; the old one stops working at once. Prints the new one.
    #[command(after_help = "Example:\n  export HIVEMIND_TOKEN=$(hivemind token rotate)")]
    Rotate,
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
    /// Install a strategy or hook component (.wasm) on the running server.
    #[command(
        after_help = "Examples:\n  hivemind plugin install target/wasm32-wasip2/release/my_strategy.wasm\n  hivemind plugin install --replace my_canary.wasm    # takes the built-in canary's name for new deployments"
    )]
    Install {
        /// A component file, or an OCI reference: oci://HOST[:PORT]/REPOSITORY:TAG (or @sha256:DIGEST).
        file: PathBuf,
        /// Take the name of a built-in plugin: new deployments use this one instead.
        #[arg(long)]
        replace: bool,
    },
    /// Push a component to an OCI registry, in the Wasm OCI artifact layout (as wkg does).
    #[command(
        after_help = "Example:\n  hivemind plugin publish target/wasm32-wasip2/release/linear.wasm oci://127.0.0.1:5000/team/linear:0.1.0\n  hivemind plugin install oci://127.0.0.1:5000/team/linear:0.1.0"
    )]
    Publish { file: PathBuf, reference: String },
    /// List the loaded plugins.
    #[command(after_help = "Example:\n  hivemind plugin list")]
    List,
    /// Show a plugin: world, API version, imports, exports, size, sha256, origin.
    #[command(after_help = "Example:\n  hivemind plugin inspect canary")]
    Inspect { name: String },
    /// Unload an installed plugin (refused while a deployment under way uses it).
    #[command(after_help = "Example:\n  hivemind plugin remove linear")]
    Remove { name: String },
    /// Let new deployments use a plugin again.
    #[command(after_help = "Example:\n  hivemind plugin enable linear")]
    Enable { name: String },
    /// Stop new deployments from using a plugin; running ones keep it.
    #[command(after_help = "Example:\n  hivemind plugin disable linear")]
    Disable { name: String },
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
    /// [default: simple]
    #[arg(long)]
    strategy: Option<String>,
    /// How many replicas. [default: 1]
    #[arg(long)]
    replicas: Option<u32>,
    /// The app's router port, when the app is new (default: a free port).
    #[arg(long)]
    port: Option<u16>,
    /// The port the app listens on inside its container.
    /// [default: 8080]
    #[arg(long)]
    container_port: Option<u16>,
    /// The HTTP path health probes GET; a 2xx or 3xx is healthy.
    /// [default: /]
    #[arg(long)]
    health_check_path: Option<String>,
    /// The port health probes go to inside the container (docker runtime).
    #[arg(long)]
    health_check_port: Option<u16>,
    /// Seconds a new replica may take to pass its health check. [default: 60]
    #[arg(long)]
    health_check_timeout: Option<u32>,
    /// An environment variable for the replicas, KEY=VALUE (repeatable).
    #[arg(long = "env", value_parser = crate::model::parse_key_value)]
    env: Vec<(String, String)>,
    /// A strategy parameter, KEY=VALUE (repeatable), for strategies of your own.
    #[arg(long = "param", value_parser = crate::model::parse_key_value)]
    params: Vec<(String, String)>,
    #[command(flatten)]
    strategy_flags: StrategyFlags,
    /// Roll back on its own when a step, a health gate or the deadline fails.
    /// [default: true]
    #[arg(long)]
    auto_rollback: Option<bool>,
    /// A named volume for each replica, NAME:/path (repeatable; docker).
    #[arg(long = "volume", value_parser = check_volume)]
    volumes: Vec<String>,
    /// CPUs per replica, for example 0.5 (docker).
    #[arg(long)]
    cpu: Option<f64>,
    /// Memory per replica, for example 512M or 1G.
    #[arg(long, value_parser = check_memory)]
    memory: Option<String>,
    /// The traffic router; `builtin` is Hivemind's own proxy, and the only one.
    #[arg(long)]
    traffic_router: Option<String>,
    /// A deployment target named in the server's config file.
    #[arg(long)]
    cloud_provider: Option<String>,
    /// Seconds without progress after which the deployment fails.
    /// [default: 600]
    #[arg(long)]
    progress_deadline: Option<u32>,
    /// The most replicas the app may run at once, all versions together (kept for its
    /// later deployments). [default: the server's --app-replica-quota]
    #[arg(long)]
    replica_quota: Option<u32>,
    #[command(flatten)]
    hooks: HookFlags,
}

/// `--pre-hook` and friends. Each hook is COMMAND (run in a one-off replica of the new
/// release), webhook:URL, or plugin:NAME[@VERSION] [ARGUMENT].
#[derive(Args, Default)]
#[command(next_help_heading = "Hooks")]
struct HookFlags {
    /// Runs before anything changes; a failure stops the deployment untouched (repeatable).
    #[arg(long = "pre-hook", value_name = "HOOK", value_parser = check_hook)]
    pre: Vec<String>,
    /// Runs while the new release is on its preview route, before traffic moves; a
    /// failure rolls back (blue-green, canary; repeatable).
    #[arg(long = "verify-hook", value_name = "HOOK", value_parser = check_hook)]
    verify: Vec<String>,
    /// Runs after the new release serves (repeatable).
    #[arg(long = "post-hook", value_name = "HOOK", value_parser = check_hook)]
    post: Vec<String>,
    /// Runs when the deployment rolls back, on its own or by request (repeatable).
    #[arg(long = "rollback-hook", value_name = "HOOK", value_parser = check_hook)]
    rollback: Vec<String>,
    /// Seconds each hook may run before it is stopped and fails. [default: 300]
    #[arg(long)]
    hook_timeout: Option<u32>,
    /// How many more times a failed hook is tried. [default: 0]
    #[arg(long)]
    hook_retries: Option<u32>,
    /// What a failed post hook does. [default: record]
    #[arg(long, value_enum)]
    post_hook_failure: Option<crate::model::PostHookFailure>,
}

impl HookFlags {
    /// Applies the flags on the command line to `hooks` (a pipeline's, or the defaults).
    fn apply(self, hooks: &mut crate::model::Hooks) {
        for (flags, stage) in [
            (self.pre, &mut hooks.pre),
            (self.verify, &mut hooks.verify),
            (self.post, &mut hooks.post),
            (self.rollback, &mut hooks.rollback),
        ] {
            if !flags.is_empty() {
                *stage = flags;
            }
        }
        hooks.timeout = self.hook_timeout.unwrap_or(hooks.timeout);
        hooks.retries = self.hook_retries.unwrap_or(hooks.retries);
        hooks.post_failure = self.post_hook_failure.unwrap_or(hooks.post_failure);
    }
}

fn check_hook(text: &str) -> Result<String, String> {
    crate::model::HookRef::parse(text).map(|_| text.to_string())
}

impl SpecArgs {
    /// The spec these flags describe, on top of `base` (a CI pipeline's profile) when
    /// given: only the flags on the command line override it.
    fn into_spec(self, app: String, name: Option<String>, base: Option<DeploymentSpec>) -> DeploymentSpec {
        let mut spec = base.unwrap_or_else(|| DeploymentSpec::new(&app, ""));
        spec.app = app;
        spec.name = name.or(spec.name);
        if let Some(image) = self.image {
            spec.image = image;
        }
        if !self.variants.is_empty() {
            spec.variants = self.variants;
        }
        macro_rules! set {
            ($($field:ident),*) => {$(if let Some(v) = self.$field { spec.$field = v; })*};
        }
        set!(
            strategy,
            replicas,
            container_port,
            health_check_path,
            health_check_timeout,
            auto_rollback,
            progress_deadline
        );
        spec.port = self.port.or(spec.port);
        spec.replica_quota = self.replica_quota.or(spec.replica_quota);
        spec.health_check_port = self.health_check_port.or(spec.health_check_port);
        if self.cpu.is_some() {
            spec.resources.cpu = self.cpu;
        }
        if self.memory.is_some() {
            spec.resources.memory = self.memory;
        }
        if !self.volumes.is_empty() {
            spec.resources.volumes = self.volumes;
        }
        spec.traffic_router = self.traffic_router.or(spec.traffic_router);
        spec.cloud_provider = self.cloud_provider.or(spec.cloud_provider);
        spec.params.extend(self.params.into_iter().chain(self.strategy_flags.into_params()));
        spec.env.extend(self.env);
        self.hooks.apply(&mut spec.hooks);
        spec
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
    /// blue-green: the most seconds verification may take once green is healthy (a soak
    /// may not be longer). Not a wait: traffic switches as soon as green is verified.
    /// [default: 30]
    #[arg(long, allow_hyphen_values = true)]
    verification_timeout: Option<String>,
    /// blue-green: seconds green must stay healthy and error-free on its preview route
    /// after it is verified, before the switch. [default: 0]
    #[arg(long, allow_hyphen_values = true)]
    verification_soak: Option<String>,
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
            ("verification-soak", self.verification_soak),
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

fn check_volume(s: &str) -> Result<String, String> {
    crate::model::parse_volume(s).map(|_| s.to_string())
}

fn check_memory(s: &str) -> Result<String, String> {
    crate::model::parse_memory(s).map(|_| s.trim().to_string())
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.output;
    let _ = output::FORMAT.set(format);
    let result = match cli.command {
        Command::Serve(args) => match args.resolve() {
            Ok(options) => server::serve(options).await.map(|()| ExitCode::SUCCESS).map_err(CliError::Other),
            Err(e) => Err(CliError::Usage(format!("{e:#}"))),
        },
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "hivemind", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        command => match config::load::<config::ClientFile>(cli.cli_config.as_deref(), "config.toml") {
            Err(e) => Err(CliError::Usage(format!("{e:#}"))),
            Ok(file) => {
                let server = cli.server.or(file.server).unwrap_or_else(|| "http://127.0.0.1:7070".into());
                let client = Client::new(&server, cli.token.or(file.token));
                run_client(&client, command, format).await
            }
        },
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
        Command::Serve(_) | Command::Completions { .. } => unreachable!("handled above"),
        Command::App(AppCommand::Deploy { spec, name, pipeline, detach }) => {
            let base = match pipeline {
                None => None,
                Some(p) => Some(client.pipelines().await?.into_iter().find(|x| x.name == p).map(|x| x.spec).ok_or_else(|| {
                    CliError::Usage(format!("no pipeline named `{p}`; `hivemind cicd list` shows them, `hivemind cicd configure-deployment` makes one"))
                })?),
            };
            let d = client.deploy(&spec.into_spec(name, None, base)).await?;
            if detach {
                output::deployment(&d, format);
                return Ok(ExitCode::SUCCESS);
            }
            output::follow(client, &d.deployment.id, format).await
        }
        Command::App(AppCommand::ZeroDowntimeDeploy { spec, name, detach }) => {
            let mut spec = spec.into_spec(name, None, None);
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
        Command::App(AppCommand::Remove { name, force }) => {
            client.remove_app(&name, force).await?;
            if format == output::Format::Table {
                println!("removed app {name}: its replicas are stopped and its port is free");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cicd(CicdCommand::ConfigureDeployment { pipeline, spec }) => {
            let stored = client.put_pipeline(&pipeline, &spec.into_spec(String::new(), None, None)).await?;
            output::pipelines(&[stored], format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Cicd(CicdCommand::List) => {
            output::pipelines(&client.pipelines().await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(TokenCommand::Rotate) => {
            println!("{}", client.rotate_token().await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::App(AppCommand::Get { name }) => {
            output::app(&client.app(&name).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Deployment(DeploymentCommand::Create { spec, name, app_name }) => {
            let d = client.create(&spec.into_spec(app_name, name, None)).await?;
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
        Command::Deployment(DeploymentCommand::List { app, status, strategy, limit, offset }) => {
            let list =
                client.deployments(app.as_deref(), status.as_deref(), strategy.as_deref(), limit, offset).await?;
            output::deployments(&list, format);
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
        Command::Plugin(PluginCommand::Install { file, replace }) => {
            let text = file.to_string_lossy();
            let (bytes, source) = if text.starts_with("oci://") {
                let reference = oci::Reference::parse(&text).map_err(|e| CliError::Usage(format!("{e:#}")))?;
                let pulled = oci::pull(&reqwest::Client::new(), &reference).await.map_err(CliError::Other)?;
                eprintln!(
                    "pulled {reference}: manifest {}, component {} (digest verified)",
                    pulled.manifest_digest, pulled.layer_digest
                );
                let pinned =
                    format!("oci://{}/{}@{}", reference.registry, reference.repository, pulled.manifest_digest);
                (
                    pulled.component,
                    if reference.to_string() == pinned { pinned } else { format!("{reference} ({pinned})") },
                )
            } else {
                let bytes = std::fs::read(&file)
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
                let path = std::fs::canonicalize(&file).unwrap_or(file.clone());
                (bytes, format!("file {}", path.display()))
            };
            output::plugin(&client.install_plugin(bytes, replace, &source).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Publish { file, reference }) => {
            let reference = oci::Reference::parse(&reference).map_err(|e| CliError::Usage(format!("{e:#}")))?;
            let bytes =
                std::fs::read(&file).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let digest = oci::push(&reqwest::Client::new(), &reference, &bytes).await.map_err(CliError::Other)?;
            println!("published {reference} (manifest {digest}, component {})", oci::digest_of(&bytes));
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Inspect { name }) => {
            output::plugin_details(&client.inspect_plugin(&name).await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Remove { name }) => {
            client.remove_plugin(&name).await?;
            if format == output::Format::Table {
                println!("removed plugin {name}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Enable { name }) => {
            output::plugin(&client.plugin_action(&name, "enable").await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Disable { name }) => {
            output::plugin(&client.plugin_action(&name, "disable").await?, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::List) => {
            output::plugins(&client.plugins().await?, format);
            Ok(ExitCode::SUCCESS)
        }
    }
}
