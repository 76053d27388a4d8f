//! The other records every layer shares: apps, their replicas, the event log, and what
//! kind of plugin a component is and where it came from.

use super::{AppName, DeploymentId, Release};
use serde::{Deserialize, Serialize};

/// One line of a deployment's event log.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Event {
    pub id: i64,
    pub deployment_id: DeploymentId,
    pub at_ms: i64,
    pub level: Level,
    pub message: String,
}

/// One line of an app's own event log: what kept its release running between
/// deployments (a replica replaced, a crash loop, a scale by request).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct AppEvent {
    pub id: i64,
    pub app: AppName,
    pub at_ms: i64,
    pub level: Level,
    pub message: String,
}

/// How much an event matters. `debug` lines (each step's outcome) show with `--verbose`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        })
    }
}

/// Where a plugin came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Builtin,
    Installed,
}

/// Which world a plugin component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Strategy,
    Hook,
}

impl Kind {
    /// What people call it: "strategy", "hook".
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Strategy => "strategy",
            Kind::Hook => "hook",
        }
    }

    pub fn world(self) -> &'static str {
        match self {
            Kind::Strategy => "hivemind:plugin/strategy",
            Kind::Hook => "hivemind:plugin/hook",
        }
    }
}

/// An app as stored.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct App {
    pub name: AppName,
    pub port: u16,
    pub release: Option<Release>,
    pub split: crate::model::Split,
    pub sticky: bool,
    /// Set when the app is not as any deployment meant it to be (a rollback that failed
    /// and could not be repaired): why, and what serves. Cleared by the next release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
    /// The app's own replica quota (`--replica-quota`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_quota: Option<u32>,
    /// Host names the app answers to on the server's entrypoints (`--host`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The path prefix it is bound to under them (`--path-prefix`).
    #[serde(default = "root_path")]
    pub path_prefix: String,
    /// Where its hosts' certificates come from (`--tls`).
    #[serde(default)]
    pub tls: crate::model::TlsMode,
    /// Plain HTTP to its hosts is redirected to HTTPS (`--redirect-https`).
    #[serde(default)]
    pub redirect_https: bool,
    /// What its replicas speak (`--backend-protocol`).
    #[serde(default)]
    pub backend_protocol: crate::model::BackendProtocol,
    /// The key that lets a request choose a version by name (`x-hivemind-variant` with
    /// `x-hivemind-preview: KEY`): never in an answer but `app preview-key`'s.
    #[serde(skip)]
    #[schemars(skip)]
    pub preview_key: String,
    pub release_counter: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A replica the host started, as recorded so that a restart can adopt it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct ReplicaRecord {
    pub id: String,
    pub app: AppName,
    pub version: String,
    pub deployment_id: DeploymentId,
    pub driver: String,
    /// The driver's handle: a process id, or a container id.
    pub handle: String,
    pub address: String,
    pub health_address: String,
    pub started_at_ms: i64,
}

fn root_path() -> String {
    "/".to_string()
}

/// How an app is reached on the server's entrypoints: what a deployment's `--host`,
/// `--path-prefix`, `--tls` and `--redirect-https` set.
#[derive(Debug, Clone, PartialEq)]
pub struct AppBinding {
    pub hosts: Vec<String>,
    pub path_prefix: String,
    pub tls: crate::model::TlsMode,
    pub redirect_https: bool,
    pub backend_protocol: crate::model::BackendProtocol,
}

impl AppBinding {
    pub fn of(app: &App) -> AppBinding {
        AppBinding {
            hosts: app.hosts.clone(),
            path_prefix: app.path_prefix.clone(),
            tls: app.tls,
            redirect_https: app.redirect_https,
            backend_protocol: app.backend_protocol,
        }
    }

    /// What the router needs of it.
    pub fn route(&self) -> Binding {
        Binding {
            hosts: self.hosts.clone(),
            path_prefix: self.path_prefix.clone(),
            redirect_https: self.redirect_https,
            h2c: self.backend_protocol == crate::model::BackendProtocol::H2c,
        }
    }
}

/// One app's binding to the entrypoints, as the router takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub hosts: Vec<String>,
    pub path_prefix: String,
    pub redirect_https: bool,
    /// The app's replicas speak h2c (`--backend-protocol h2c`), on its port and behind
    /// the entrypoints.
    pub h2c: bool,
}

impl Default for Binding {
    fn default() -> Binding {
        Binding { hosts: Vec::new(), path_prefix: "/".to_string(), redirect_https: false, h2c: false }
    }
}

/// Credentials stored with `hivemind registry login`, as answers show them: never the
/// password.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegistryLogin {
    /// The registry host (`registry.example.com`, `127.0.0.1:5000`, `docker.io`).
    pub registry: String,
    pub username: String,
    pub updated_at_ms: i64,
}
