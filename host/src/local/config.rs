//! `server.toml`: the server's config file, read as the CLI's `config.toml` is (found in
//! the same directory, `hivemind_cli::config`); flags win over it.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub use hivemind_cli::config::load;

/// `server.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub data_dir: Option<PathBuf>,
    /// postgres://... shared by several servers; SQLite in the data dir when absent.
    pub database_url: Option<String>,
    pub lease: Option<String>,
    pub lease_renew: Option<String>,
    pub server_name: Option<String>,
    pub advertise_url: Option<String>,
    pub api_addr: Option<String>,
    pub runtime: Option<String>,
    /// The user the process runtime's replicas and jobs run as.
    pub run_as: Option<String>,
    pub router_mode: Option<String>,
    pub http_addr: Option<String>,
    pub https_addr: Option<String>,
    pub acme_directory: Option<String>,
    pub acme_email: Option<String>,
    pub acme_ca_root: Option<PathBuf>,
    pub acme_renew_before: Option<String>,
    pub router_addr: Option<String>,
    pub max_replicas: Option<u32>,
    pub app_replica_quota: Option<u32>,
    pub probe_interval: Option<f64>,
    pub history_limit: Option<u32>,
    pub plugin_timeout: Option<u64>,
    pub plugin_memory_mib: Option<usize>,
    /// Hosts that webhook hooks may reach, as HOST or HOST:PORT.
    pub hook_allowed_hosts: Option<Vec<String>>,
    /// `permissive` or `require-signed`.
    pub plugin_trust: Option<String>,
    /// minisign public key files of the plugin signers this server trusts.
    pub trusted_keys: Option<Vec<PathBuf>>,
    /// The API port's limits: `[api] header_timeout = "10s"`, `body_timeout = "60s"`,
    /// `connections_per_address = 256`, `connections = 4096`.
    #[serde(default)]
    pub api: ApiFile,
    /// Image pulls: `[images] pull = "missing"` (or `always`, `never`).
    #[serde(default)]
    pub images: ImagesFile,
    /// Registry credentials for image pulls: `[registries."registry.example.com"]
    /// username = "ci"`, `password_file = "/etc/hivemind/registry-password"`.
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryFile>,
    /// Deployment targets for `--cloud-provider NAME`: `[targets.NAME] docker_host = "..."`,
    /// `runtime = "swarm"`, `advertise_addr = "10.0.0.5"`.
    #[serde(default)]
    pub targets: BTreeMap<String, Target>,
}

/// `[api]` in `server.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFile {
    /// The API's certificate and key (PEM): it serves HTTPS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub header_timeout: Option<String>,
    pub body_timeout: Option<String>,
    pub connections_per_address: Option<usize>,
    pub connections: Option<usize>,
}

impl ApiFile {
    /// The API port's limits: these settings over the defaults.
    pub fn resolve(&self) -> anyhow::Result<crate::api::listen::Limits> {
        let defaults = crate::api::listen::Limits::default();
        let duration = |key: &str, text: Option<String>, default| -> anyhow::Result<std::time::Duration> {
            let Some(text) = text else { return Ok(default) };
            let d = humantime::parse_duration(text.trim())
                .map_err(|e| anyhow::anyhow!("[api] {key} `{text}` is not a duration such as \"10s\": {e}"))?;
            if d.is_zero() {
                anyhow::bail!("[api] {key} must be more than 0");
            }
            Ok(d)
        };
        let count = |key: &str, n: Option<usize>, default| -> anyhow::Result<usize> {
            match n {
                Some(0) => anyhow::bail!("[api] {key} must be at least 1"),
                Some(n) => Ok(n),
                None => Ok(default),
            }
        };
        Ok(crate::api::listen::Limits {
            header_timeout: duration("header_timeout", self.header_timeout.clone(), defaults.header_timeout)?,
            body_timeout: duration("body_timeout", self.body_timeout.clone(), defaults.body_timeout)?,
            per_address: count("connections_per_address", self.connections_per_address, defaults.per_address)?,
            total: count("connections", self.connections, defaults.total)?,
        })
    }
}

/// `[images]` in `server.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesFile {
    pub pull: Option<crate::model::PullPolicy>,
}

/// `[registries."HOST"]` in `server.toml`: the password in a file of its own, never in
/// the config file itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    pub username: String,
    pub password_file: PathBuf,
}

impl RegistryFile {
    pub fn resolve(self, registry: &str) -> anyhow::Result<hivemind_registry::Credentials> {
        let password = std::fs::read_to_string(&self.password_file).map_err(|e| {
            anyhow::anyhow!(
                "[registries.\"{registry}\"] password_file {}: {e}; it holds the password on one line",
                self.password_file.display()
            )
        })?;
        let password = password.trim_end_matches(['\n', '\r']).to_string();
        if self.username.is_empty() || password.is_empty() {
            anyhow::bail!("[registries.\"{registry}\"] needs a username and a non-empty password_file");
        }
        Ok(hivemind_registry::Credentials { username: self.username, password })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The Docker endpoint, for example unix:///var/run/docker.sock.
    pub docker_host: Option<String>,
    /// `docker` (containers of that engine) or `swarm` (services of the Swarm it manages).
    pub runtime: Option<String>,
    /// The address of the engine's host that the router reaches its replicas at.
    pub advertise_addr: Option<String>,
}

impl Target {
    /// Checks a `[targets.NAME]` table.
    pub fn resolve(self, name: &str) -> anyhow::Result<crate::runtime::Target> {
        let swarm = match self.runtime.as_deref() {
            None | Some("docker") => false,
            Some("swarm") => true,
            Some(other) => anyhow::bail!("[targets.{name}] runtime `{other}` must be docker or swarm"),
        };
        let advertise_addr = self
            .advertise_addr
            .map(|a| {
                a.parse().map_err(|e| {
                    anyhow::anyhow!(
                        "[targets.{name}] advertise_addr `{a}` must be an IP address of the target's host: {e}"
                    )
                })
            })
            .transpose()?;
        if advertise_addr.is_some() && (swarm || self.docker_host.is_none()) {
            anyhow::bail!(
                "[targets.{name}] advertise_addr applies to a Docker endpoint (docker_host, runtime docker); \
                 Swarm replicas are reached at their node's own address"
            );
        }
        Ok(crate::runtime::Target { docker_host: self.docker_host, swarm, advertise_addr })
    }
}
