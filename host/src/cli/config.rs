//! Configuration files. The server reads `server.toml`, the CLI `config.toml`, both in
//! the XDG config directory (`$XDG_CONFIG_HOME/hivemind`, else `~/.config/hivemind`).
//! Flags win over environment variables, which win over the file, which wins over the
//! defaults.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The XDG config directory of Hivemind.
pub fn config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("hivemind"))
}

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
    /// Deployment targets for `--cloud-provider NAME`: `[targets.NAME] docker_host = "..."`,
    /// `runtime = "swarm"`, `advertise_addr = "10.0.0.5"`.
    #[serde(default)]
    pub targets: BTreeMap<String, Target>,
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

/// `config.toml` of the CLI.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    pub server: Option<String>,
    pub token: Option<String>,
}

/// Reads a TOML file: `explicit` must exist; the default path may be missing.
pub fn load<T: for<'de> Deserialize<'de> + Default>(explicit: Option<&Path>, default_name: &str) -> anyhow::Result<T> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match config_dir().map(|d| d.join(default_name)) {
            Some(p) if p.exists() => p,
            _ => return Ok(T::default()),
        },
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read the config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("the config file {} is not valid: {e}", path.display()))
}
