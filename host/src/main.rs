//! `hivemind`: a deployment server (API, traffic router, engine) and the CLI that talks
//! to it. Modules, in the order data flows: cli → api → engine → plugins, runtime,
//! router, health → store.

mod api;
mod cli;
mod engine;
mod error;
mod health;
mod model;
mod plugins;
mod router;
mod runtime;
mod server;
mod store;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HIVEMIND_LOG").unwrap_or_else(|_| "hivemind=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    cli::run().await
}
