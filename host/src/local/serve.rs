//! `hivemind serve`: the server's flags, resolved over its environment variables, its
//! config file and the defaults, then the server itself.

use super::config::{self, ServerFile};
use crate::plugins::trust::{TrustMode, TrustPolicy, TrustedKey};
use crate::server::{self, RouterMode, RuntimeChoice, ServeOptions};
use hivemind_cli::{CliError, ServeArgs};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

pub async fn run(args: ServeArgs) -> Result<ExitCode, CliError> {
    let options = resolve(args).map_err(|e| CliError::Usage(format!("{e:#}")))?;
    super::private::data_dir(&options.data_dir).map_err(CliError::Other)?;
    server::serve(options).await.map(|()| ExitCode::SUCCESS).map_err(CliError::Other)
}

/// Flags (and their environment variables) over the config file over the defaults.
fn resolve(flags: ServeArgs) -> anyhow::Result<ServeOptions> {
    let file: ServerFile = config::load(flags.config.as_deref(), "server.toml")?;
    let api_addr = address_setting(flags.api_addr, file.api_addr, "api_addr", "127.0.0.1:7070")?
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7070)));
    let router_ip = match (flags.router_addr, file.router_addr) {
        (Some(a), _) => a,
        (None, Some(a)) => a.parse().map_err(|e| anyhow::anyhow!("router_addr `{a}` in the config file: {e}"))?,
        (None, None) => IpAddr::from([127, 0, 0, 1]),
    };
    let runtime = match (flags.runtime, file.runtime) {
        (Some(r), _) => r,
        (None, Some(r)) => <RuntimeChoice as clap::ValueEnum>::from_str(&r, true)
            .map_err(|_| anyhow::anyhow!("runtime `{r}` in the config file must be auto, docker, process or swarm"))?,
        (None, None) => RuntimeChoice::Auto,
    };
    let max_replicas = flags.max_replicas.or(file.max_replicas).unwrap_or(64);
    let router_mode = match (flags.router_mode, file.router_mode) {
        (Some(m), _) => m,
        (None, Some(m)) => <RouterMode as clap::ValueEnum>::from_str(&m, true).map_err(|_| {
            anyhow::anyhow!("router_mode `{m}` in the config file must be process, external or embedded")
        })?,
        (None, None) => RouterMode::Process,
    };
    let http_addr = address_setting(flags.http_addr, file.http_addr, "http_addr", "0.0.0.0:80")?;
    let https_addr = address_setting(flags.https_addr, file.https_addr, "https_addr", "0.0.0.0:443")?;
    let acme = match flags.acme_directory.or(file.acme_directory).filter(|d| !d.trim().is_empty()) {
        None => None,
        Some(directory) => {
            if !directory.starts_with("https://") {
                anyhow::bail!("--acme-directory `{directory}` must be an https:// URL");
            }
            let renew = flags.acme_renew_before.or(file.acme_renew_before).unwrap_or_else(|| "30d".into());
            let renew_before = humantime::parse_duration(&renew)
                .map_err(|e| anyhow::anyhow!("--acme-renew-before `{renew}`: {e} (a duration, such as 30d or 12h)"))?;
            Some(crate::acme::AcmeConfig {
                directory,
                email: flags.acme_email.or(file.acme_email),
                ca_root: flags.acme_ca_root.or(file.acme_ca_root),
                renew_before,
            })
        }
    };
    let duration = |value: Option<String>, flag: &str, default: &str| -> anyhow::Result<std::time::Duration> {
        let text = value.unwrap_or_else(|| default.into());
        humantime::parse_duration(&text)
            .map_err(|e| anyhow::anyhow!("{flag} `{text}`: {e} (a duration, such as {default})"))
    };
    let lease = duration(flags.lease.or(file.lease), "--lease", "10s")?;
    let lease_renew = duration(flags.lease_renew.or(file.lease_renew), "--lease-renew", "3s")?;
    if lease < std::time::Duration::from_millis(500) || lease_renew.is_zero() || lease_renew * 2 > lease {
        anyhow::bail!(
            "--lease {lease:?} and --lease-renew {lease_renew:?}: the lease must be at least 500ms and at least twice the renewal interval, so that one late renewal does not cost the lease"
        );
    }
    let advertise_url = flags.advertise_url.or(file.advertise_url);
    if let Some(url) = &advertise_url
        && !url.starts_with("http://")
    {
        anyhow::bail!("--advertise-url `{url}` must be an http:// URL the other servers reach this one's API at");
    }
    if acme.is_some() && http_addr.is_none() {
        anyhow::bail!("--acme-directory needs --http-addr: the ACME server checks each host on plain HTTP");
    }
    let plugin_trust = {
        let mode = match (flags.plugin_trust, file.plugin_trust) {
            (Some(m), _) => m,
            (None, Some(m)) => <TrustMode as clap::ValueEnum>::from_str(&m, true).map_err(|_| {
                anyhow::anyhow!("plugin_trust `{m}` in the config file must be permissive or require-signed")
            })?,
            (None, None) => TrustMode::Permissive,
        };
        let files =
            if flags.trusted_keys.is_empty() { file.trusted_keys.unwrap_or_default() } else { flags.trusted_keys };
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
        database_url: flags.database_url.or(file.database_url).filter(|u| !u.trim().is_empty()),
        lease,
        lease_renew,
        server_name: flags.server_name.or(file.server_name),
        advertise_url,
        acme,
        router_mode,
        http_addr,
        https_addr,
        data_dir: flags.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./hivemind-data")),
        api_addr,
        api_limits: file.api.resolve()?,
        api_tls: match (flags.api_tls_cert.or(file.api.tls_cert), flags.api_tls_key.or(file.api.tls_key)) {
            (Some(cert), Some(key)) => Some(crate::api::listen::Tls::load(&cert, &key)?),
            (None, None) => None,
            _ => anyhow::bail!("the API's certificate needs its key: give both --api-tls-cert and --api-tls-key"),
        },
        runtime,
        run_as: flags
            .run_as
            .or(file.run_as)
            .filter(|u| !u.trim().is_empty())
            .map(|u| crate::runtime::RunAs::lookup(u.trim()))
            .transpose()?,
        router_ip,
        history_limit: flags.history_limit.or(file.history_limit).unwrap_or(100).max(1),
        max_replicas,
        app_replica_quota: flags.app_replica_quota.or(file.app_replica_quota).unwrap_or(max_replicas.div_ceil(2)),
        pull: file.images.pull.unwrap_or_default(),
        registries: file
            .registries
            .into_iter()
            .map(|(name, r)| {
                let host = hivemind_registry::normalize_registry(&name).ok_or_else(|| {
                    anyhow::anyhow!(
                        "[registries.\"{name}\"] is not a registry host, such as registry.example.com or 127.0.0.1:5000"
                    )
                })?;
                r.resolve(&name).map(|c| (host, c))
            })
            .collect::<anyhow::Result<_>>()?,
        targets: file
            .targets
            .into_iter()
            .map(|(name, t)| t.resolve(&name).map(|t| (name, t)))
            .collect::<anyhow::Result<_>>()?,
        probe_interval: {
            let seconds = flags.probe_interval.or(file.probe_interval).unwrap_or(1.0);
            if !(0.1..=60.0).contains(&seconds) {
                anyhow::bail!("--probe-interval {seconds} must be from 0.1 to 60 seconds");
            }
            std::time::Duration::from_secs_f64(seconds)
        },
        hook_allowed_hosts: {
            let entries: Vec<String> = flags
                .hook_allowed_hosts
                .or(file.hook_allowed_hosts)
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect();
            crate::plugins::HookHosts::new(entries.clone())
                .map_err(|why| anyhow::anyhow!("--hook-allowed-hosts: {why}"))?;
            entries
        },
        limits: crate::plugins::Limits {
            timeout: std::time::Duration::from_secs(flags.plugin_timeout.or(file.plugin_timeout).unwrap_or(60).max(1)),
            memory_bytes: flags.plugin_memory_mib.or(file.plugin_memory_mib).unwrap_or(64).max(1) << 20,
            ..Default::default()
        },
    })
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
