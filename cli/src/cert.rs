//! `hivemind cert`: the TLS certificates the HTTPS entrypoint serves, by host.

use super::client::{CliError, Client};
use super::output::{self, Format};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum CertCommand {
    /// Serve a certificate for a host on the HTTPS entrypoint (replacing the one it had).
    /// Refused, with nothing changed, if the certificate is not for the host, has expired,
    /// or the key is not its key.
    #[command(
        after_help = "Example:\n  hivemind cert add --host shop.example.com --cert fullchain.pem --key privkey.pem"
    )]
    Add {
        #[arg(long)]
        host: String,
        /// The certificate chain, PEM, the host's certificate first.
        #[arg(long)]
        cert: PathBuf,
        /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
        #[arg(long)]
        key: PathBuf,
    },
    /// The certificates served, with their names and expiry.
    #[command(after_help = "Example:\n  hivemind cert list")]
    List,
    /// Stop serving a host's certificate.
    #[command(after_help = "Example:\n  hivemind cert remove --host shop.example.com")]
    Remove {
        #[arg(long)]
        host: String,
    },
}

pub async fn run(client: &Client, command: CertCommand, format: Format) -> Result<ExitCode, CliError> {
    match command {
        CertCommand::Add { host, cert, key } => {
            let read = |path: &PathBuf, what: &str| {
                std::fs::read_to_string(path)
                    .map_err(|e| CliError::Usage(format!("cannot read the {what} file {}: {e}", path.display())))
            };
            let info = client.add_cert(&host, &read(&cert, "certificate")?, &read(&key, "key")?).await?;
            output::certs(std::slice::from_ref(&info), format);
        }
        CertCommand::List => output::certs(&client.certs().await?, format),
        CertCommand::Remove { host } => {
            client.remove_cert(&host).await?;
            println!("removed the certificate for {host}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
