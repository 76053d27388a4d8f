//! `hivemind token`: the API token.

use super::client::{CliError, Client};
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Replace the API token; the old one stops working at once. Prints the new one.
    #[command(after_help = "Example:\n  export HIVEMIND_TOKEN=$(hivemind token rotate)")]
    Rotate,
}

pub async fn run(client: &Client, command: TokenCommand) -> Result<ExitCode, CliError> {
    match command {
        TokenCommand::Rotate => println!("{}", client.rotate_token().await?),
    }
    Ok(ExitCode::SUCCESS)
}
