//! `hivemind plugin`: install (from a file or an OCI registry), publish, sign, inspect
//! and switch strategy and hook components on the running server.

use super::client::{CliError, Client};
use super::oci;
use super::output::{self, Format};
use super::scaffold;
use clap::Subcommand;
use hivemind_model::simulation;
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
        /// The component's minisign signature [default: FILE.minisig, if it exists; over
        /// OCI, the one published with it].
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
        /// A power the plugin (a hook) may use (repeatable): `jobs` (run commands in a replica
        /// of the release, with its environment and secrets), `http` (POST to every host on
        /// the server's hook allowlist) or `http:HOST:PORT` (to that one). Nothing else is
        /// granted; `plugin inspect` shows what a plugin asks for.
        #[arg(long = "allow", value_name = "GRANT", value_parser = hivemind_model::grants::Grant::parse)]
        allow: Vec<hivemind_model::grants::Grant>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Push a component (and its signature, FILE.minisig, if there is one) to an OCI
    /// registry, in the Wasm OCI artifact layout (as wkg does).
    #[command(
        after_help = "Examples:\n  hivemind plugin publish target/wasm32-wasip2/release/linear.wasm oci://127.0.0.1:5000/team/linear:0.1.0\n  hivemind plugin install oci://127.0.0.1:5000/team/linear:0.1.0\n  echo \"$TOKEN\" | hivemind plugin publish linear.wasm oci://ghcr.io/acme/linear:0.1.0 --username acme --password-stdin"
    )]
    Publish {
        file: PathBuf,
        reference: String,
        /// The component's minisign signature, published with it [default: FILE.minisig, if it exists].
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Start a plugin project: a strategy (or a hook) in Rust or Python that builds as it
    /// stands, with a README, a test, and the SDK (or the WIT contract) of this version.
    #[command(
        after_help = "Examples:\n  hivemind plugin new ramp                       # a Rust strategy in ./ramp\n  hivemind plugin new migrate --hook             # a Rust hook\n  hivemind plugin new ramp --lang python         # a Python strategy (componentize-py)"
    )]
    New {
        /// The plugin's name: what deployments use (--strategy NAME, plugin:NAME).
        name: String,
        /// A hook instead of a strategy.
        #[arg(long)]
        hook: bool,
        #[arg(long, value_enum, default_value = "rust")]
        lang: scaffold::Lang,
        /// Where to write it [default: ./NAME].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run a strategy against a simulated host, in simulated time: a healthy release, one
    /// that never gets healthy, an error spike at 50% of the traffic and a server crash
    /// between two steps. Prints what the strategy did and whether each scenario ended as
    /// it should; exits 1 if one did not. No server, no Docker, no real waiting.
    #[command(
        after_help = "Examples:\n  hivemind plugin test target/wasm32-wasip2/release/ramp.wasm\n  hivemind plugin test ramp.wasm --param steps=4 --start-time 10s --probe-fail-rate 0.05"
    )]
    Test {
        file: PathBuf,
        /// A strategy parameter, KEY=VALUE (repeatable), as deployments give them.
        #[arg(long = "param", value_parser = crate::model::parse_key_value)]
        params: Vec<(String, String)>,
        /// Replicas of each release.
        #[arg(long, default_value_t = 3)]
        replicas: u32,
        /// How long a new replica takes to become healthy.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        start_time: std::time::Duration,
        /// The chance (0 to 1) that a probe of a started replica fails anyway.
        #[arg(long, default_value_t = 0.0)]
        probe_fail_rate: f64,
        /// Requests per second to the app.
        #[arg(long, default_value_t = 50.0)]
        rps: f64,
        /// The share (0 to 1) of requests every version answers with a 5xx.
        #[arg(long, default_value_t = 0.001)]
        error_rate: f64,
        /// Print only the verdicts, not what happened.
        #[arg(long)]
        brief: bool,
    },
    /// Sign a component with a minisign secret key: writes FILE.minisig, which `plugin
    /// install` and `plugin publish` take along. Keys from `minisign -G` work.
    #[command(
        after_help = "Examples:\n  minisign -G -p team.pub -s team.key          # once: the key pair (give team.pub to the servers)\n  hivemind plugin sign linear.wasm --key team.key\n  hivemind serve --plugin-trust require-signed --trusted-key team.pub"
    )]
    Sign {
        file: PathBuf,
        /// The minisign secret key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Read the key's password from standard input (else it is asked for, if the key has one).
        #[arg(long)]
        password_stdin: bool,
        /// The comment the signature covers, which `plugin inspect` shows [default: the file's name and the time].
        #[arg(long)]
        comment: Option<String>,
    },
    /// List the loaded plugins.
    #[command(after_help = "Example:\n  hivemind plugin list")]
    List,
    /// Show a plugin: world, API version, imports, exports, size, sha256, origin, and what
    /// it was granted.
    #[command(alias = "get", after_help = "Example:\n  hivemind plugin inspect canary")]
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

/// How to reach an OCI registry.
#[derive(clap::Args)]
pub struct RegistryArgs {
    /// A PEM CA certificate to trust for the registry, besides the system's roots.
    #[arg(long, value_name = "FILE", env = "HIVEMIND_REGISTRY_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// The registry user [default: the credentials `docker login` stored in ~/.docker/config.json].
    #[arg(long, env = "HIVEMIND_REGISTRY_USERNAME")]
    username: Option<String>,
    /// Read the registry password (or token) from standard input.
    #[arg(long, requires = "username")]
    password_stdin: bool,
}

impl RegistryArgs {
    fn access(self) -> Result<oci::Access, CliError> {
        let password = if self.password_stdin {
            Some(read_stdin_line("the registry password")?)
        } else {
            std::env::var("HIVEMIND_REGISTRY_PASSWORD").ok()
        };
        Ok(oci::Access { ca_cert: self.ca_cert, username: self.username, password })
    }
}

/// One line of standard input, without its line end.
pub(crate) fn read_stdin_line(what: &str) -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(format!("cannot read {what} from standard input: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn run(
    client: &Client,
    command: PluginCommand,
    format: Format,
    local: &impl crate::Local,
) -> Result<ExitCode, CliError> {
    match command {
        PluginCommand::Install { file, replace, signature, allow, registry } => {
            let (bytes, source, pulled_signature) = read_component(&file, registry).await?;
            let signature = match signature {
                Some(path) => Some(read_signature(&path)?),
                None => match pulled_signature {
                    Some(pulled) => Some(pulled),
                    None => signature_beside(&file)?,
                },
            };
            let allow = hivemind_model::grants::Grants::new(allow);
            output::plugin(
                &client.install_plugin(bytes, signature.as_deref(), replace, &source, &allow).await?,
                format,
            );
        }
        PluginCommand::Publish { file, reference, signature, registry } => {
            let reference = oci::Reference::parse(&reference).map_err(|e| CliError::Usage(format!("{e:#}")))?;
            let bytes =
                std::fs::read(&file).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let signature = match signature {
                Some(path) => Some(read_signature(&path)?),
                None => signature_beside(&file)?,
            };
            let registry =
                oci::Registry::connect(&reference, &registry.access()?, true).await.map_err(CliError::Other)?;
            let digest = oci::push(&registry, &bytes, signature.as_deref()).await.map_err(CliError::Other)?;
            let signed = if signature.is_some() { ", with its signature" } else { ", unsigned" };
            println!("published {reference} (manifest {digest}, component {}){signed}", oci::digest_of(&bytes));
        }
        PluginCommand::New { name, hook, lang, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let files = scaffold::new_plugin(&name, hook, lang, &dir).map_err(|e| CliError::Usage(format!("{e:#}")))?;
            let kind = if hook { "hook" } else { "strategy" };
            println!(
                "wrote the {kind} {name} in {} ({} files); its README says how to build, test and install it",
                dir.display(),
                files.len()
            );
        }
        PluginCommand::Test { file, params, replicas, start_time, probe_fail_rate, rps, error_rate, brief } => {
            for (name, rate) in [("--probe-fail-rate", probe_fail_rate), ("--error-rate", error_rate)] {
                if !(0.0..=1.0).contains(&rate) {
                    return Err(CliError::Usage(format!("{name} {rate} must be from 0 to 1")));
                }
            }
            if !(1..=100).contains(&replicas) || rps <= 0.0 {
                return Err(CliError::Usage("--replicas must be from 1 to 100, and --rps above 0".into()));
            }
            let bytes =
                std::fs::read(&file).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let settings =
                simulation::Settings { params, replicas, start: start_time, probe_fail_rate, rps, error_rate };
            let report = local.simulate(&bytes, &settings).await.map_err(|e| CliError::Usage(format!("{e:#}")))?;
            output::simulation(&report, format, brief);
            return Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        PluginCommand::Sign { file, key, password_stdin, comment } => {
            let password = if password_stdin { Some(read_stdin_line("the key's password")?) } else { None };
            let written = sign(&file, &key, password, comment)?;
            println!("signed {} with key ID {}: {}", file.display(), written.1, written.0.display());
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
/// where it came from, for `plugin inspect`, and the signature published with it.
async fn read_component(
    file: &std::path::Path,
    registry: RegistryArgs,
) -> Result<(Vec<u8>, String, Option<String>), CliError> {
    let text = file.to_string_lossy();
    if !text.starts_with("oci://") {
        let bytes = std::fs::read(file).map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
        let path = std::fs::canonicalize(file).unwrap_or(file.to_path_buf());
        return Ok((bytes, format!("file {}", path.display()), None));
    }
    let reference = oci::Reference::parse(&text).map_err(|e| CliError::Usage(format!("{e:#}")))?;
    let registry = oci::Registry::connect(&reference, &registry.access()?, false).await.map_err(CliError::Other)?;
    let pulled = oci::pull(&registry).await.map_err(CliError::Other)?;
    eprintln!(
        "pulled {reference}: manifest {}, component {} (digest verified)",
        pulled.manifest_digest, pulled.layer_digest
    );
    let pinned = format!("oci://{}/{}@{}", reference.registry, reference.repository, pulled.manifest_digest);
    let source = if reference.to_string() == pinned { pinned } else { format!("{reference} ({pinned})") };
    Ok((pulled.component, source, pulled.signature))
}

/// A signature file's text.
fn read_signature(path: &std::path::Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read the signature {}: {e}", path.display())))
}

/// The signature minisign would have written for `file` (`FILE.minisig`), if there is one.
fn signature_beside(file: &std::path::Path) -> Result<Option<String>, CliError> {
    let path = hivemind_model::plugin::signature_path(file);
    if file.to_string_lossy().starts_with("oci://") || !path.exists() {
        return Ok(None);
    }
    read_signature(&path).map(Some)
}

/// A secret key stored without a password (`minisign -G -W`). The minisign tool writes
/// such a key with an empty checksum, which the minisign crate's loader refuses as
/// corrupted, so it is read here as the tool reads it: as it stands.
fn unencrypted_key(text: &str) -> Option<minisign::SecretKey> {
    use base64::Engine;
    let line = text.lines().nth(1)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(line.trim()).ok()?;
    // sig_alg "Ed", then kdf_alg: two zero bytes when the key is not encrypted.
    if bytes.len() != 158 || bytes[..2] != *b"Ed" || bytes[2..4] != [0, 0] {
        return None;
    }
    minisign::SecretKey::from_bytes(&bytes).ok()
}

/// Signs `file` with a minisign secret key; returns where the signature went and the key's ID.
fn sign(
    file: &std::path::Path,
    key: &std::path::Path,
    password: Option<String>,
    comment: Option<String>,
) -> Result<(PathBuf, String), CliError> {
    let usage = |m: String| CliError::Usage(m);
    let bytes = std::fs::read(file).map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
    let text =
        std::fs::read_to_string(key).map_err(|e| usage(format!("cannot read the key {}: {e}", key.display())))?;
    let boxed = minisign::SecretKeyBox::from_string(&text).map_err(|e| {
        usage(format!("{} is not a minisign secret key ({e}); `minisign -G` makes a key pair", key.display()))
    })?;
    let secret = match unencrypted_key(&text) {
        Some(secret) => secret,
        None => boxed.into_secret_key(password).map_err(|e| {
            usage(format!("cannot open the key {} ({e}); give its password (--password-stdin reads it)", key.display()))
        })?,
    };
    let public = minisign::PublicKey::from_secret_key(&secret).map_err(|e| CliError::Other(e.into()))?;
    let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let comment = comment.unwrap_or_else(|| {
        format!("file:{name} signed:{}", humantime::format_rfc3339_seconds(std::time::SystemTime::now()))
    });
    let signature = minisign::sign(Some(&public), &secret, std::io::Cursor::new(&bytes), Some(&comment), None)
        .map_err(|e| CliError::Other(anyhow::anyhow!("signing {}: {e}", file.display())))?;
    let path = hivemind_model::plugin::signature_path(file);
    std::fs::write(&path, signature.into_string())
        .map_err(|e| usage(format!("cannot write the signature {}: {e}", path.display())))?;
    let key_id = hivemind_model::plugin::key_id(public.keynum());
    Ok((path, key_id))
}

#[cfg(test)]
mod tests {
    use super::sign;

    #[test]
    fn a_password_protected_key_signs_once_opened_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let pair = minisign::KeyPair::generate_encrypted_keypair(Some("open sesame".into())).unwrap();
        let key = dir.path().join("team.key");
        std::fs::write(&key, pair.sk.to_box(None).unwrap().to_string()).unwrap();
        let file = dir.path().join("x.wasm");
        std::fs::write(&file, b"\0asm bytes").unwrap();
        let e = sign(&file, &key, Some("wrong".into()), None).err().unwrap().to_string();
        assert!(e.contains("cannot open the key"), "{e}");
        let Ok((path, id)) = sign(&file, &key, Some("open sesame".into()), Some("release 1".into())) else {
            panic!("the key did not open with its password")
        };
        // As minisign reads it (the server's trust policy checks it so, `plugins::trust`).
        assert_eq!(id, hivemind_model::plugin::key_id(pair.pk.keynum()));
        let signature = minisign::SignatureBox::from_string(&std::fs::read_to_string(path).unwrap()).unwrap();
        minisign::verify(&pair.pk, &signature, std::io::Cursor::new(b"\0asm bytes"), true, false, false).unwrap();
        assert_eq!(signature.trusted_comment().unwrap(), "release 1");
    }
}
