//! The handles the engine and the plugins' capabilities share: the fleet, the router, the
//! prober and the store, and the allowlist hooks send HTTP through. A bag of the layers
//! below both, so that neither depends on the other to reach them.

use crate::health::{HttpCheck, ProbeResult, Prober};
use crate::model::ReplicaRecord;
use crate::router::{BackendSpec, Router};
use crate::runtime::Fleet;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct Services {
    pub fleet: Arc<Fleet>,
    pub router: Arc<Router>,
    pub prober: Prober,
    pub store: Store,
    /// Where hooks may send HTTP requests.
    pub hook_hosts: HookHosts,
    /// What the probes said of each replica lately: for `diagnose`, and for the healer's
    /// liveness check.
    health: Mutex<HashMap<String, ReplicaHealth>>,
    /// Each deployment's figures over time and per traffic split, for the dashboard.
    pub series: crate::series::Series,
}

/// What the probes said of one replica.
#[derive(Debug, Clone, Default)]
pub struct ReplicaHealth {
    pub last: Option<ProbeResult>,
    /// Probes failed since the last that passed.
    pub failures_in_a_row: u32,
    /// Since when it passes its probes, if it does now (ms since the epoch).
    pub healthy_since_ms: Option<i64>,
    /// Whether it ever passed one: a replica that never did is still starting.
    pub ever_healthy: bool,
}

impl Services {
    pub fn new(fleet: Arc<Fleet>, router: Arc<Router>, store: Store, hook_allowed_hosts: Vec<String>) -> Services {
        Services {
            fleet,
            router,
            prober: Prober::new(),
            store,
            hook_hosts: HookHosts::new(hook_allowed_hosts),
            health: Default::default(),
            series: Default::default(),
        }
    }

    /// The latest probe of a replica, if it was probed.
    pub fn last_probe(&self, replica: &str) -> Option<ProbeResult> {
        self.health.lock().unwrap().get(replica).and_then(|h| h.last.clone())
    }

    /// What the probes said of a replica lately.
    pub fn health_of(&self, replica: &str) -> ReplicaHealth {
        self.health.lock().unwrap().get(replica).cloned().unwrap_or_default()
    }

    /// Forgets a replica that is gone.
    pub fn forget(&self, replica: &str) {
        self.health.lock().unwrap().remove(replica);
    }

    /// Tells the router the app's current replicas, and returns once it serves them.
    pub async fn sync_router(&self, app: &str) {
        let specs: Vec<BackendSpec> = self
            .fleet
            .list(app)
            .await
            .into_iter()
            .map(|r| BackendSpec { id: r.id, version: r.version, address: r.address })
            .collect();
        self.router.set_backends(app, &specs);
        self.router.flush().await;
    }

    /// Probes one replica and tells the router the verdict.
    pub async fn probe(&self, replica: &ReplicaRecord, check: &HttpCheck) -> ProbeResult {
        let result = self.prober.probe(&replica.health_address, check).await;
        self.router.set_healthy(&replica.app, &replica.id, result.healthy);
        let mut all = self.health.lock().unwrap();
        // A safety net: replicas are forgotten as they go, but never let the map grow.
        if all.len() > 4096 {
            all.clear();
        }
        let health = all.entry(replica.id.clone()).or_default();
        if result.healthy {
            health.failures_in_a_row = 0;
            health.healthy_since_ms.get_or_insert_with(crate::model::now_ms);
            health.ever_healthy = true;
        } else {
            health.failures_in_a_row += 1;
            health.healthy_since_ms = None;
        }
        health.last = Some(result.clone());
        result
    }
}

/// The hosts hooks may send HTTP requests to (`--hook-allowed-hosts`), and the client
/// they go out through: no redirects and no proxy, so the allowlist cannot be stepped
/// around. Admission checks a webhook's URL here, and so does the `http` capability on
/// every request, whichever hook makes it.
pub struct HookHosts {
    allowed: Vec<String>,
    pub client: reqwest::Client,
}

impl HookHosts {
    fn new(allowed: Vec<String>) -> HookHosts {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("building an HTTP client");
        HookHosts { allowed, client }
    }

    /// `url` if it is an http:// URL whose host (or host:port) is allowed; otherwise why
    /// not, and how to allow it.
    pub fn check(&self, url: &str) -> Result<reqwest::Url, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if parsed.scheme() != "http" {
            return Err(format!("only http:// URLs are supported; got `{url}`"));
        }
        let host = parsed.host_str().unwrap_or_default();
        let with_port = format!("{host}:{}", parsed.port_or_known_default().unwrap_or(80));
        if self.allowed.iter().any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(&with_port)) {
            return Ok(parsed);
        }
        Err(format!(
            "host `{host}` is not on the server's hook allowlist (allowed: {}); start the server with `--hook-allowed-hosts {host}` (or set HIVEMIND_HOOK_ALLOWED_HOSTS, or hook_allowed_hosts in server.toml)",
            if self.allowed.is_empty() { "none".to_string() } else { self.allowed.join(", ") }
        ))
    }
}
