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
