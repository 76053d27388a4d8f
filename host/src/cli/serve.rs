//! `hivemind serve`: the server's flags, resolved over its environment variables, its
//! config file and the defaults, then the server itself.

use super::client::CliError;
use super::config;
use crate::plugins::trust::{TrustMode, TrustPolicy, TrustedKey};
use crate::server::{self, RouterMode, RuntimeChoice, ServeOptions};
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

pub async fn run(args: ServeArgs) -> Result<ExitCode, CliError> {
    let options = args.resolve().map_err(|e| CliError::Usage(format!("{e:#}")))?;
    server::serve(options).await.map(|()| ExitCode::SUCCESS).map_err(CliError::Other)
}

#[derive(Args)]
pub struct ServeArgs {
    /// A TOML config file [default: $XDG_CONFIG_HOME/hivemind/server.toml, if it exists].
    #[arg(long, env = "HIVEMIND_CONFIG")]
    config: Option<PathBuf>,
    /// Where the database, token, plugins and logs live. [default: ./hivemind-data]
    #[arg(long, env = "HIVEMIND_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A Postgres database that several servers share, such as
    /// postgres://hivemind:PASSWORD@db:5432/hivemind: one server leads (drives deployments),
    /// the others answer the API and take over when it goes. [default: SQLite in the data dir]
    #[arg(long, env = "HIVEMIND_DATABASE_URL")]
    database_url: Option<String>,
    /// How long the leader's lease lasts without renewal: a dead leader is replaced after
    /// at most this long. [default: 10s]
    #[arg(long, env = "HIVEMIND_LEASE")]
    lease: Option<String>,
    /// How often the leader renews its lease. [default: 3s]
    #[arg(long, env = "HIVEMIND_LEASE_RENEW")]
    lease_renew: Option<String>,
    /// This server's name in `hivemind cluster status`. [default: HOSTNAME:API_PORT]
    #[arg(long, env = "HIVEMIND_SERVER_NAME")]
    server_name: Option<String>,
    /// The URL the other servers reach this one's API at, when the API's address is not
    /// it (0.0.0.0, a NAT). [default: http://API_ADDR]
    #[arg(long, env = "HIVEMIND_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// Where the API listens. [default: 127.0.0.1:7070]
    #[arg(long, env = "HIVEMIND_API_ADDR")]
    api_addr: Option<SocketAddr>,
    /// Where the app routers run: `process`, a `hivemind router` process that outlives
    /// `serve` (started, and restarted if it dies, by `serve`); `external`, the same run by
    /// a supervisor such as systemd; `embedded`, inside `serve`. [default: process]
    #[arg(long, value_enum, env = "HIVEMIND_ROUTER_MODE")]
    router_mode: Option<RouterMode>,
    /// The HTTP entrypoint: one address for every app, each found by the host names it
    /// was deployed with (`app deploy --host`), such as 0.0.0.0:80. [default: off]
    #[arg(long, env = "HIVEMIND_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// The HTTPS entrypoint: every app by host name as on --http-addr, over TLS with the
    /// certificate of the host the client asks for (`hivemind cert add`), in HTTP/2 or
    /// HTTP/1.1, such as 0.0.0.0:443. [default: off]
    #[arg(long, env = "HIVEMIND_HTTPS_ADDR")]
    https_addr: Option<SocketAddr>,
    /// An ACME directory that issues certificates for `--tls acme` apps (HTTP-01, answered
    /// on --http-addr), such as https://acme-v02.api.letsencrypt.org/directory. [default: none]
    #[arg(long, env = "HIVEMIND_ACME_DIRECTORY")]
    acme_directory: Option<String>,
    /// The contact address given to the ACME directory.
    #[arg(long, env = "HIVEMIND_ACME_EMAIL")]
    acme_email: Option<String>,
    /// A PEM root certificate to trust for the ACME directory itself (a private or test
    /// CA), instead of the system's.
    #[arg(long, env = "HIVEMIND_ACME_CA_ROOT")]
    acme_ca_root: Option<PathBuf>,
    /// Renew an ACME certificate this long before it expires. [default: 30d]
    #[arg(long, env = "HIVEMIND_ACME_RENEW_BEFORE")]
    acme_renew_before: Option<String>,
    /// How replicas run. [default: auto]
    #[arg(long, value_enum, env = "HIVEMIND_RUNTIME")]
    runtime: Option<RuntimeChoice>,
    /// The address the apps' routers bind to. [default: 127.0.0.1]
    #[arg(long, env = "HIVEMIND_ROUTER_ADDR")]
    router_addr: Option<IpAddr>,
    /// Seconds between two health probes of every replica; the healer looks at every app
    /// as often. [default: 1]
    #[arg(long, env = "HIVEMIND_PROBE_INTERVAL")]
    probe_interval: Option<f64>,
    /// The most replicas this host runs at once, across all apps. [default: 64]
    #[arg(long, env = "HIVEMIND_MAX_REPLICAS")]
    max_replicas: Option<u32>,
    /// The most replicas one app runs at once, unless its deployment gives it a
    /// --replica-quota of its own. [default: half of --max-replicas]
    #[arg(long, env = "HIVEMIND_APP_REPLICA_QUOTA")]
    app_replica_quota: Option<u32>,
    /// Finished deployments kept per app; older ones are deleted with their events. [default: 100]
    #[arg(long, env = "HIVEMIND_HISTORY_LIMIT")]
    history_limit: Option<u32>,
    /// Wall-clock limit of one plugin call, in seconds. [default: 60]
    #[arg(long, env = "HIVEMIND_PLUGIN_TIMEOUT")]
    plugin_timeout: Option<u64>,
    /// Linear memory limit of one plugin instance, in MiB. [default: 64]
    #[arg(long, env = "HIVEMIND_PLUGIN_MEMORY_MIB")]
    plugin_memory_mib: Option<usize>,
    /// Hosts that hooks (webhook:URL) may send HTTP requests to, as HOST or HOST:PORT,
    /// comma-separated. [default: none]
    #[arg(long, env = "HIVEMIND_HOOK_ALLOWED_HOSTS", value_delimiter = ',')]
    hook_allowed_hosts: Option<Vec<String>>,
    /// Which plugins may be installed: `permissive` takes unsigned ones too (and shows them
    /// as unsigned); `require-signed` only those signed by a --trusted-key. A signature
    /// that does not match its component is refused under both. [default: permissive]
    #[arg(long, value_enum, env = "HIVEMIND_PLUGIN_TRUST")]
    plugin_trust: Option<TrustMode>,
    /// A minisign public key file (`minisign -G` makes one) of a plugin signer to trust;
    /// repeat it for several signers.
    #[arg(long = "trusted-key", value_name = "FILE")]
    trusted_keys: Vec<PathBuf>,
}

impl ServeArgs {
    /// Flags (and their environment variables) over the config file over the defaults.
    fn resolve(self) -> anyhow::Result<ServeOptions> {
        let file: config::ServerFile = config::load(self.config.as_deref(), "server.toml")?;
        let api_addr = address_setting(self.api_addr, file.api_addr, "api_addr", "127.0.0.1:7070")?
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7070)));
        let router_ip = match (self.router_addr, file.router_addr) {
            (Some(a), _) => a,
            (None, Some(a)) => a.parse().map_err(|e| anyhow::anyhow!("router_addr `{a}` in the config file: {e}"))?,
            (None, None) => IpAddr::from([127, 0, 0, 1]),
        };
        let runtime = match (self.runtime, file.runtime) {
            (Some(r), _) => r,
            (None, Some(r)) => <RuntimeChoice as clap::ValueEnum>::from_str(&r, true).map_err(|_| {
                anyhow::anyhow!("runtime `{r}` in the config file must be auto, docker, process or swarm")
            })?,
            (None, None) => RuntimeChoice::Auto,
        };
        let max_replicas = self.max_replicas.or(file.max_replicas).unwrap_or(64);
        let router_mode = match (self.router_mode, file.router_mode) {
            (Some(m), _) => m,
            (None, Some(m)) => <RouterMode as clap::ValueEnum>::from_str(&m, true).map_err(|_| {
                anyhow::anyhow!("router_mode `{m}` in the config file must be process, external or embedded")
            })?,
            (None, None) => RouterMode::Process,
        };
        let http_addr = address_setting(self.http_addr, file.http_addr, "http_addr", "0.0.0.0:80")?;
        let https_addr = address_setting(self.https_addr, file.https_addr, "https_addr", "0.0.0.0:443")?;
        let acme = match self.acme_directory.or(file.acme_directory).filter(|d| !d.trim().is_empty()) {
            None => None,
            Some(directory) => {
                if !directory.starts_with("https://") {
                    anyhow::bail!("--acme-directory `{directory}` must be an https:// URL");
                }
                let renew = self.acme_renew_before.or(file.acme_renew_before).unwrap_or_else(|| "30d".into());
                let renew_before = humantime::parse_duration(&renew).map_err(|e| {
                    anyhow::anyhow!("--acme-renew-before `{renew}`: {e} (a duration, such as 30d or 12h)")
                })?;
                Some(crate::acme::AcmeConfig {
                    directory,
                    email: self.acme_email.or(file.acme_email),
                    ca_root: self.acme_ca_root.or(file.acme_ca_root),
                    renew_before,
                })
            }
        };
        let duration = |value: Option<String>, flag: &str, default: &str| -> anyhow::Result<std::time::Duration> {
            let text = value.unwrap_or_else(|| default.into());
            humantime::parse_duration(&text)
                .map_err(|e| anyhow::anyhow!("{flag} `{text}`: {e} (a duration, such as {default})"))
        };
        let lease = duration(self.lease.or(file.lease), "--lease", "10s")?;
        let lease_renew = duration(self.lease_renew.or(file.lease_renew), "--lease-renew", "3s")?;
        if lease < std::time::Duration::from_millis(500) || lease_renew.is_zero() || lease_renew * 2 > lease {
            anyhow::bail!(
                "--lease {lease:?} and --lease-renew {lease_renew:?}: the lease must be at least 500ms and at least twice the renewal interval, so that one late renewal does not cost the lease"
            );
        }
        let advertise_url = self.advertise_url.or(file.advertise_url);
        if let Some(url) = &advertise_url
            && !url.starts_with("http://")
        {
            anyhow::bail!("--advertise-url `{url}` must be an http:// URL the other servers reach this one's API at");
        }
        if acme.is_some() && http_addr.is_none() {
            anyhow::bail!("--acme-directory needs --http-addr: the ACME server checks each host on plain HTTP");
        }
        let plugin_trust = {
            let mode = match (self.plugin_trust, file.plugin_trust) {
                (Some(m), _) => m,
                (None, Some(m)) => <TrustMode as clap::ValueEnum>::from_str(&m, true).map_err(|_| {
                    anyhow::anyhow!("plugin_trust `{m}` in the config file must be permissive or require-signed")
                })?,
                (None, None) => TrustMode::Permissive,
            };
            let files =
                if self.trusted_keys.is_empty() { file.trusted_keys.unwrap_or_default() } else { self.trusted_keys };
            let keys = files.iter().map(|f| TrustedKey::from_file(f)).collect::<anyhow::Result<Vec<_>>>()?;
            if mode == TrustMode::RequireSigned && keys.is_empty() {
                anyhow::bail!(
                    "--plugin-trust require-signed needs at least one --trusted-key FILE (a minisign public key): without one, no plugin could be installed"
                );
            }
            TrustPolicy { mode, keys }
        };
        Ok(ServeOptions {
            plugin_trust,
            database_url: self.database_url.or(file.database_url).filter(|u| !u.trim().is_empty()),
            lease,
            lease_renew,
            server_name: self.server_name.or(file.server_name),
            advertise_url,
            acme,
            router_mode,
            http_addr,
            https_addr,
            data_dir: self.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./hivemind-data")),
            api_addr,
            runtime,
            router_ip,
            history_limit: self.history_limit.or(file.history_limit).unwrap_or(100).max(1),
            max_replicas,
            app_replica_quota: self.app_replica_quota.or(file.app_replica_quota).unwrap_or(max_replicas.div_ceil(2)),
            targets: file
                .targets
                .into_iter()
                .map(|(name, t)| t.resolve(&name).map(|t| (name, t)))
                .collect::<anyhow::Result<_>>()?,
            probe_interval: {
                let seconds = self.probe_interval.or(file.probe_interval).unwrap_or(1.0);
                if !(0.1..=60.0).contains(&seconds) {
                    anyhow::bail!("--probe-interval {seconds} must be from 0.1 to 60 seconds");
                }
                std::time::Duration::from_secs_f64(seconds)
            },
            hook_allowed_hosts: self
                .hook_allowed_hosts
                .or(file.hook_allowed_hosts)
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect(),
            limits: crate::plugins::Limits {
                timeout: std::time::Duration::from_secs(
                    self.plugin_timeout.or(file.plugin_timeout).unwrap_or(60).max(1),
                ),
                memory_bytes: self.plugin_memory_mib.or(file.plugin_memory_mib).unwrap_or(64).max(1) << 20,
                ..Default::default()
            },
        })
    }
}

/// An address setting: the flag's, or the config file's, or none.
fn address_setting(
    flag: Option<SocketAddr>,
    file: Option<String>,
    key: &str,
    example: &str,
) -> anyhow::Result<Option<SocketAddr>> {
    match (flag, file.map(|a| a.trim().to_string()).filter(|a| !a.is_empty())) {
        (Some(a), _) => Ok(Some(a)),
        (None, Some(a)) => a.parse().map(Some).map_err(|e| {
            anyhow::anyhow!("{key} `{a}` in the config file: {e} (an address and a port, such as {example})")
        }),
        (None, None) => Ok(None),
    }
}
