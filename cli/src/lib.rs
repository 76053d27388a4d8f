//! The `hivemind` command line: every command, its flags and its help. The commands
//! that manage apps talk to a server over the REST API (found through `--server` or
//! `HIVEMIND_URL`) with the API's own types (`hivemind-model`). The few that run in this
//! process instead (`serve`, `router`, `store`, `plugin test`) are parsed here and carried
//! out by the binary, which links the server in and hands them over as `Local`. So this
//! crate depends on the model and an HTTP client only: the compiler keeps the engine,
//! the store and the router out of it. One file per command group, each with its own `run`.

mod app;
mod cert;
mod cicd;
mod client;
mod cluster;
pub mod config;
mod deployment;
mod escape;
mod follow;
mod metrics;
mod oci;
mod output;
mod plugin;
mod registry;
mod router;
mod scaffold;
mod serve;
mod spec;
mod store;
mod tls;
mod token;
mod yaml;

use clap::{Parser, Subcommand};
use client::Client;
use output::Format;
use std::path::PathBuf;
use std::process::ExitCode;

pub(crate) use hivemind_model::{api_types, error, model};

pub use client::CliError;
pub use router::{RouterArgs, RouterCommand};
pub use serve::ServeArgs;
pub use store::StoreCommand;

/// The commands that run in this process rather than on a server, carried out by the
/// binary that links the server in.
#[allow(async_fn_in_trait)] // Awaited in place by `run`, never sent to another thread.
pub trait Local {
    /// `hivemind serve`: runs until the server stops.
    async fn serve(&self, args: ServeArgs) -> Result<ExitCode, CliError>;
    /// `hivemind router` and `router upgrade`.
    async fn router(&self, args: RouterArgs) -> Result<ExitCode, CliError>;
    /// `hivemind store ...`, on a database that no server has open.
    async fn store(&self, command: StoreCommand) -> Result<ExitCode, CliError>;
    /// `hivemind plugin test`: a component through the simulator's scenarios.
    async fn simulate(
        &self,
        component: &[u8],
        settings: &hivemind_model::simulation::Settings,
    ) -> anyhow::Result<hivemind_model::simulation::Report>;
}

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
    /// A PEM file of the CA (or the self-signed certificate) that signed the server's API
    /// certificate (`serve --api-tls-cert`), when the system does not trust it
    /// [default: `server_ca_cert` in the config file].
    #[arg(long, global = true, value_name = "FILE", env = "HIVEMIND_SERVER_CA_CERT")]
    server_ca_cert: Option<PathBuf>,
    /// The CLI's config file [default: $XDG_CONFIG_HOME/hivemind/config.toml].
    #[arg(long, global = true, env = "HIVEMIND_CLI_CONFIG")]
    cli_config: Option<PathBuf>,
    /// How to print results.
    #[arg(long, global = true, value_enum, default_value = "table")]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: API, engine, and (unless one runs) the router process.
    #[command(after_help = "Example:\n  hivemind serve --data-dir ./data --api-addr 127.0.0.1:7070 --runtime process")]
    Serve(serve::ServeArgs),
    /// Run a data dir's router (the data plane) as a process of its own, or upgrade it.
    #[command(
        after_help = "Examples:\n  hivemind router --data-dir ./data      # serve starts one for you when none runs\n  hivemind router upgrade --data-dir ./data"
    )]
    Router(router::RouterArgs),
    /// Deploy and inspect apps.
    #[command(subcommand)]
    App(app::AppCommand),
    /// Create, run and inspect deployments.
    #[command(subcommand)]
    Deployment(deployment::DeploymentCommand),
    /// Install and list strategy plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Live traffic figures of a deployment's versions or variants, with their comparison.
    #[command(subcommand)]
    Metrics(metrics::MetricsCommand),
    /// Deployment profiles for CI pipelines.
    #[command(subcommand)]
    Cicd(cicd::CicdCommand),
    /// The API token.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// TLS certificates for the HTTPS entrypoint (serve --https-addr).
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// The servers sharing one Postgres database, and which one leads.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Credentials for the registries the server pulls images from.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// The server's database, offline: copy a SQLite install into Postgres.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Print shell completions: hivemind completions bash > /etc/bash_completion.d/hivemind
    #[command(
        after_help = "Examples:\n  hivemind completions bash > ~/.local/share/bash-completion/completions/hivemind\n  hivemind completions zsh > ~/.zfunc/_hivemind\n  hivemind completions fish > ~/.config/fish/completions/hivemind.fish"
    )]
    Completions { shell: clap_complete::Shell },
}

/// Parses the command line and runs its command.
pub async fn run(local: impl Local) -> ExitCode {
    let cli = Cli::parse();
    let format = cli.output;
    if !matches!(cli.command, Command::Serve(_) | Command::Router(_)) {
        // A command whose output is cut short (`| head`) ends quietly, as Unix tools do,
        // instead of panicking on a write to a closed pipe (Rust ignores SIGPIPE). The
        // server and the router keep ignoring it: a client gone is not their end.
        // SAFETY: setting a signal's disposition to its default, before any thread writes.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let result = match cli.command {
        Command::Serve(args) => local.serve(args).await,
        Command::Router(args) => local.router(args).await,
        Command::Store(c) => local.store(c).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "hivemind", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        command => match connect(cli.server, cli.token, cli.server_ca_cert, cli.cli_config.as_deref()) {
            Ok(client) => match command {
                Command::App(c) => app::run(&client, c, format).await,
                Command::Deployment(c) => deployment::run(&client, c, format).await,
                Command::Plugin(c) => plugin::run(&client, c, format, &local).await,
                Command::Metrics(c) => metrics::run(&client, c, format).await,
                Command::Cicd(c) => cicd::run(&client, c, format).await,
                Command::Token(c) => token::run(&client, c).await,
                Command::Cert(c) => cert::run(&client, c, format).await,
                Command::Cluster(c) => cluster::run(&client, c, format).await,
                Command::Registry(c) => registry::run(&client, c, format).await,
                Command::Serve(_) | Command::Router(_) | Command::Store(_) | Command::Completions { .. } => {
                    unreachable!("handled above")
                }
            },
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", escape::escaped(&e.to_string()));
            e.exit_code()
        }
    }
}

/// A client of the server the flags, the environment or the config file name.
fn connect(
    server: Option<String>,
    token: Option<String>,
    ca_cert: Option<PathBuf>,
    config: Option<&std::path::Path>,
) -> Result<Client, CliError> {
    let file =
        config::load::<config::ClientFile>(config, "config.toml").map_err(|e| CliError::Usage(format!("{e:#}")))?;
    let server = server.or(file.server).unwrap_or_else(|| "http://127.0.0.1:7070".into());
    let tls = tls::client_config(ca_cert.or(file.server_ca_cert).as_deref(), "--server-ca-cert")
        .map_err(|e| CliError::Usage(format!("{e:#}")))?;
    Client::new(&server, token.or(file.token), tls)
}
