//! `hivemind plugin`: install (from a file or an OCI registry), publish, inspect and
//! switch strategy and hook components on the running server.

use super::client::{CliError, Client};
use super::oci;
use super::output::{self, Format};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum PluginCommand {
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

pub async fn run(client: &Client, command: PluginCommand, format: Format) -> Result<ExitCode, CliError> {
    match command {
        PluginCommand::Install { file, replace } => {
            let (bytes, source) = read_component(&file).await?;
            output::plugin(&client.install_plugin(bytes, replace, &source).await?, format);
        }
        PluginCommand::Publish { file, reference } => {
            let reference = oci::Reference::parse(&reference).map_err(|e| CliError::Usage(format!("{e:#}")))?;
            let bytes =
                std::fs::read(&file).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let digest = oci::push(&reqwest::Client::new(), &reference, &bytes).await.map_err(CliError::Other)?;
            println!("published {reference} (manifest {digest}, component {})", oci::digest_of(&bytes));
        }
        PluginCommand::Inspect { name } => output::plugin_details(&client.inspect_plugin(&name).await?, format),
        PluginCommand::Remove { name } => {
            client.remove_plugin(&name).await?;
            if format == Format::Table {
                println!("removed plugin {name}");
            }
        }
        PluginCommand::Enable { name } => output::plugin(&client.plugin_action(&name, "enable").await?, format),
        PluginCommand::Disable { name } => output::plugin(&client.plugin_action(&name, "disable").await?, format),
        PluginCommand::List => output::plugins(&client.plugins().await?, format),
    }
    Ok(ExitCode::SUCCESS)
}

/// A component's bytes, from a file or pulled from an OCI registry (digests verified),
/// and where it came from, for `plugin inspect`.
async fn read_component(file: &std::path::Path) -> Result<(Vec<u8>, String), CliError> {
    let text = file.to_string_lossy();
    if !text.starts_with("oci://") {
        let bytes = std::fs::read(file).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
        let path = std::fs::canonicalize(file).unwrap_or(file.to_path_buf());
        return Ok((bytes, format!("file {}", path.display())));
    }
    let reference = oci::Reference::parse(&text).map_err(|e| CliError::Usage(format!("{e:#}")))?;
    let pulled = oci::pull(&reqwest::Client::new(), &reference).await.map_err(CliError::Other)?;
    eprintln!(
        "pulled {reference}: manifest {}, component {} (digest verified)",
        pulled.manifest_digest, pulled.layer_digest
    );
    let pinned = format!("oci://{}/{}@{}", reference.registry, reference.repository, pulled.manifest_digest);
    let source = if reference.to_string() == pinned { pinned } else { format!("{reference} ({pinned})") };
    Ok((pulled.component, source))
}
