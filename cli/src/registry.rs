//! `hivemind registry`: the credentials the server pulls images with.

use super::client::{CliError, Client};
use super::escape::say;
use super::output::{self, Format};
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum RegistryCommand {
    /// Give the server credentials for a registry, which it pulls images with. The
    /// password is read from standard input, kept by the server (owner-only, or in the
    /// cluster's database) and never shown again. Without a login, the server uses
    /// `[registries]` of its server.toml, then Docker's own credentials of its user
    /// (~/.docker/config.json and its credential helpers).
    #[command(
        after_help = "Examples:\n  echo \"$TOKEN\" | hivemind registry login ghcr.io --username acme --password-stdin\n  hivemind registry login registry.example.com:5000 --username ci --password-stdin < password.txt"
    )]
    Login {
        /// The registry's host, as images name it (registry.example.com, 127.0.0.1:5000, docker.io).
        #[arg(value_name = "SERVER")]
        registry: String,
        #[arg(long)]
        username: String,
        /// Read the password (or token) from standard input; it is never taken as a flag.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Forget the credentials `registry login` gave for a registry.
    #[command(after_help = "Example:\n  hivemind registry logout ghcr.io")]
    Logout {
        #[arg(value_name = "SERVER")]
        registry: String,
    },
    /// The registries the server has credentials for, with their user names.
    #[command(after_help = "Example:\n  hivemind registry list")]
    List,
}

pub async fn run(client: &Client, command: RegistryCommand, format: Format) -> Result<ExitCode, CliError> {
    match command {
        RegistryCommand::Login { registry, username, password_stdin: _ } => {
            let password = super::plugin::read_stdin_line("the registry password")?;
            let login = client.registry_login(&registry, &username, &password).await?;
            match format {
                Format::Table => say!("the server pulls from {} as {}", login.registry, login.username),
                _ => output::json(&login, format),
            }
        }
        RegistryCommand::Logout { registry } => {
            client.registry_logout(&registry).await?;
            say!("the server forgot its login for {registry}");
        }
        RegistryCommand::List => output::registries(&client.registries().await?, format),
    }
    Ok(ExitCode::SUCCESS)
}
