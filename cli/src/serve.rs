//! `hivemind serve`'s flags. What they mean, over the config file and the defaults, is
//! the server's (`hivemind::local::serve`): this crate only parses them.

use clap::Args;
use hivemind_model::settings::{RouterMode, RuntimeChoice, TrustMode};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

#[derive(Args)]
pub struct ServeArgs {
    /// A TOML config file [default: $XDG_CONFIG_HOME/hivemind/server.toml, if it exists].
    #[arg(long, env = "HIVEMIND_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the database, token, plugins and logs live. [default: ./hivemind-data]
    #[arg(long, env = "HIVEMIND_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A Postgres database that several servers share, such as
    /// postgres://hivemind:PASSWORD@db:5432/hivemind: one server leads (drives deployments),
    /// the others answer the API and take over when it goes. [default: SQLite in the data dir]
    #[arg(long, env = "HIVEMIND_DATABASE_URL")]
    pub database_url: Option<String>,
    /// How long the leader's lease lasts without renewal: a dead leader is replaced after
    /// at most this long. [default: 10s]
    #[arg(long, env = "HIVEMIND_LEASE")]
    pub lease: Option<String>,
    /// How often the leader renews its lease. [default: 3s]
    #[arg(long, env = "HIVEMIND_LEASE_RENEW")]
    pub lease_renew: Option<String>,
    /// This server's name in `hivemind cluster status`. [default: HOSTNAME:API_PORT]
    #[arg(long, env = "HIVEMIND_SERVER_NAME")]
    pub server_name: Option<String>,
    /// The URL the other servers reach this one's API at, when the API's address is not
    /// it (0.0.0.0, a NAT). [default: http://API_ADDR]
    #[arg(long, env = "HIVEMIND_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// Where the API listens. [default: 127.0.0.1:7070]
    #[arg(long, env = "HIVEMIND_API_ADDR")]
    pub api_addr: Option<SocketAddr>,
    /// A PEM certificate (chain) for the API: it serves HTTPS only, so that the token never
    /// crosses a network in clear. With --api-tls-key. [default: plain HTTP]
    #[arg(long, value_name = "FILE", env = "HIVEMIND_API_TLS_CERT", requires = "api_tls_key")]
    pub api_tls_cert: Option<PathBuf>,
    /// The PEM private key of --api-tls-cert.
    #[arg(long, value_name = "FILE", env = "HIVEMIND_API_TLS_KEY", requires = "api_tls_cert")]
    pub api_tls_key: Option<PathBuf>,
    /// Where the app routers run: `process`, a `hivemind router` process that outlives
    /// `serve` (started, and restarted if it dies, by `serve`); `external`, the same run by
    /// a supervisor such as systemd; `embedded`, inside `serve`. [default: process]
    #[arg(long, value_enum, env = "HIVEMIND_ROUTER_MODE")]
    pub router_mode: Option<RouterMode>,
    /// The HTTP entrypoint: one address for every app, each found by the host names it
    /// was deployed with (`app deploy --host`), such as 0.0.0.0:80. [default: off]
    #[arg(long, env = "HIVEMIND_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// The HTTPS entrypoint: every app by host name as on --http-addr, over TLS with the
    /// certificate of the host the client asks for (`hivemind cert add`), in HTTP/2 or
    /// HTTP/1.1, such as 0.0.0.0:443. [default: off]
    #[arg(long, env = "HIVEMIND_HTTPS_ADDR")]
    pub https_addr: Option<SocketAddr>,
    /// An ACME directory that issues certificates for `--tls acme` apps (HTTP-01, answered
    /// on --http-addr), such as https://acme-v02.api.letsencrypt.org/directory. [default: none]
    #[arg(long, env = "HIVEMIND_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,
    /// The contact address given to the ACME directory.
    #[arg(long, env = "HIVEMIND_ACME_EMAIL")]
    pub acme_email: Option<String>,
    /// A PEM root certificate to trust for the ACME directory itself (a private or test
    /// CA), instead of the system's.
    #[arg(long, env = "HIVEMIND_ACME_CA_ROOT")]
    pub acme_ca_root: Option<PathBuf>,
    /// Renew an ACME certificate this long before it expires. [default: 30d]
    #[arg(long, env = "HIVEMIND_ACME_RENEW_BEFORE")]
    pub acme_renew_before: Option<String>,
    /// How replicas run. [default: auto]
    #[arg(long, value_enum, env = "HIVEMIND_RUNTIME")]
    pub runtime: Option<RuntimeChoice>,
    /// Run the process runtime's replicas and jobs as this user (such as `nobody`), so that
    /// an app cannot read the data dir nor signal the server. Needs a server run as root,
    /// or with CAP_SETUID and CAP_SETGID. [default: the server's own user]
    #[arg(long, value_name = "USER", env = "HIVEMIND_RUN_AS")]
    pub run_as: Option<String>,
    /// The address the apps' routers bind to. [default: 127.0.0.1]
    #[arg(long, env = "HIVEMIND_ROUTER_ADDR")]
    pub router_addr: Option<IpAddr>,
    /// Seconds between two health probes of every replica; the healer looks at every app
    /// as often. [default: 1]
    #[arg(long, env = "HIVEMIND_PROBE_INTERVAL")]
    pub probe_interval: Option<f64>,
    /// The most replicas this host runs at once, across all apps. [default: 64]
    #[arg(long, env = "HIVEMIND_MAX_REPLICAS")]
    pub max_replicas: Option<u32>,
    /// The most replicas one app runs at once, unless its deployment gives it a
    /// --replica-quota of its own. [default: half of --max-replicas]
    #[arg(long, env = "HIVEMIND_APP_REPLICA_QUOTA")]
    pub app_replica_quota: Option<u32>,
    /// Finished deployments kept per app; older ones are deleted with their events. [default: 100]
    #[arg(long, env = "HIVEMIND_HISTORY_LIMIT")]
    pub history_limit: Option<u32>,
    /// Wall-clock limit of one plugin call, in seconds. [default: 60]
    #[arg(long, env = "HIVEMIND_PLUGIN_TIMEOUT")]
    pub plugin_timeout: Option<u64>,
    /// Linear memory limit of one plugin instance, in MiB. [default: 64]
    #[arg(long, env = "HIVEMIND_PLUGIN_MEMORY_MIB")]
    pub plugin_memory_mib: Option<usize>,
    /// Where hooks (webhook:URL) may send HTTP requests, comma-separated: HOST:PORT (or
    /// http://HOST:PORT); a bare HOST means its port 80 only, HOST:* every port of it.
    /// [default: none]
    #[arg(long, env = "HIVEMIND_HOOK_ALLOWED_HOSTS", value_delimiter = ',')]
    pub hook_allowed_hosts: Option<Vec<String>>,
    /// Which plugins may be installed: `permissive` takes unsigned ones too (and shows them
    /// as unsigned); `require-signed` only those signed by a --trusted-key. A signature
    /// that does not match its component is refused under both. [default: permissive]
    #[arg(long, value_enum, env = "HIVEMIND_PLUGIN_TRUST")]
    pub plugin_trust: Option<TrustMode>,
    /// A minisign public key file (`minisign -G` makes one) of a plugin signer to trust;
    /// repeat it for several signers.
    #[arg(long = "trusted-key", value_name = "FILE")]
    pub trusted_keys: Vec<PathBuf>,
}
