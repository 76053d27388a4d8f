//! The traffic router: an HTTP/1.1 reverse proxy in front of each app, on the app's port.
//!
//! Strategies change where traffic goes through the routing capability; the engine keeps
//! the backends and their health current. Every change builds a new [`RouteTable`] and
//! swaps it in atomically; requests in flight keep the backend they started on.

mod proxy;
pub mod stats;
mod table;

pub use stats::StatsSnapshot;
use stats::VersionStats;
use table::{Backend, Pool, RouteTable};

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A replica the router may send traffic to.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendSpec {
    pub id: String,
    pub version: String,
    pub address: String,
}

/// Where the drain of a backend stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainState {
    Draining(u64),
    Drained,
    TimedOut,
}

/// One app's routing: its table, and what the table is built from.
pub struct AppRoute {
    pub name: String,
    table: ArcSwap<RouteTable>,
    /// Requests seen, to step through the table's weighted schedule.
    counter: AtomicU64,
    /// What tables are built from. Writers hold the lock; readers only load `table`.
    config: Mutex<RouteConfig>,
    pub unroutable: AtomicU64,
}

#[derive(Default)]
struct RouteConfig {
    split: Vec<(String, u32)>,
    backends: Vec<Arc<Backend>>,
    stats: HashMap<String, Arc<VersionStats>>,
}

impl AppRoute {
    fn new(name: &str) -> AppRoute {
        AppRoute {
            name: name.to_string(),
            table: ArcSwap::from_pointee(RouteTable::new(Vec::new())),
            counter: AtomicU64::new(0),
            config: Mutex::new(RouteConfig::default()),
            unroutable: AtomicU64::new(0),
        }
    }

    fn rebuild(&self, config: &mut RouteConfig) {
        let mut pools = Vec::new();
        for (version, weight) in &config.split {
            let stats = config.stats.entry(version.clone()).or_default().clone();
            let backends = config.backends.iter().filter(|b| &b.version == version).cloned().collect();
            pools.push(Pool { weight: *weight, backends, stats });
        }
        self.table.store(Arc::new(RouteTable::new(pools)));
    }

    fn backend(&self, id: &str) -> Option<Arc<Backend>> {
        self.config.lock().unwrap().backends.iter().find(|b| b.id == id).cloned()
    }
}

#[derive(Default)]
pub struct Router {
    apps: std::sync::RwLock<HashMap<String, Arc<AppRoute>>>,
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    fn app(&self, app: &str) -> Arc<AppRoute> {
        if let Some(route) = self.apps.read().unwrap().get(app) {
            return route.clone();
        }
        self.apps.write().unwrap().entry(app.to_string()).or_insert_with(|| Arc::new(AppRoute::new(app))).clone()
    }

    /// Starts serving `app` on `addr`. Returns once the port is bound.
    pub async fn listen(&self, app: &str, addr: SocketAddr) -> Result<()> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the router for app {app} to {addr}"))?;
        tokio::spawn(proxy::serve(listener, self.app(app)));
        Ok(())
    }

    /// Replaces the app's split. Versions with weight 0 get no traffic.
    pub fn set_split(&self, app: &str, split: Vec<(String, u32)>) {
        let route = self.app(app);
        let mut config = route.config.lock().unwrap();
        config.split = split;
        route.rebuild(&mut config);
    }

    pub fn split(&self, app: &str) -> Vec<(String, u32)> {
        self.app(app).config.lock().unwrap().split.clone()
    }

    /// Makes the app's backends exactly `specs`, keeping the state (health, in-flight,
    /// drain) of those it already had.
    pub fn set_backends(&self, app: &str, specs: &[BackendSpec]) {
        let route = self.app(app);
        let mut config = route.config.lock().unwrap();
        let old: HashMap<String, Arc<Backend>> = config.backends.drain(..).map(|b| (b.id.clone(), b)).collect();
        config.backends = specs
            .iter()
            .map(|s| match old.get(&s.id) {
                Some(b) if b.address == s.address => b.clone(),
                _ => Arc::new(Backend::new(s.id.clone(), s.version.clone(), s.address.clone())),
            })
            .collect();
        route.rebuild(&mut config);
    }

    /// Records a probe's verdict for one backend.
    pub fn set_healthy(&self, app: &str, id: &str, healthy: bool) {
        if let Some(b) = self.app(app).backend(id) {
            b.healthy.store(healthy, Relaxed);
        }
    }

    pub fn is_healthy(&self, app: &str, id: &str) -> bool {
        self.app(app).backend(id).is_some_and(|b| b.healthy.load(Relaxed))
    }

    /// Stops sending new requests to a backend; its in-flight requests finish. A
    /// second drain keeps the first deadline.
    pub fn drain(&self, app: &str, id: &str, timeout: Duration) -> bool {
        let Some(b) = self.app(app).backend(id) else { return false };
        let mut deadline = b.drain_deadline.lock().unwrap();
        if deadline.is_none() {
            *deadline = Some(Instant::now() + timeout);
        }
        b.draining.store(true, Relaxed);
        true
    }

    pub fn drain_state(&self, app: &str, id: &str) -> Option<DrainState> {
        let b = self.app(app).backend(id)?;
        let in_flight = b.in_flight.load(Relaxed);
        let deadline = *b.drain_deadline.lock().unwrap();
        Some(match deadline {
            _ if in_flight == 0 => DrainState::Drained,
            Some(d) if Instant::now() >= d => DrainState::TimedOut,
            _ => DrainState::Draining(in_flight),
        })
    }

    /// The counts of one version of the app, if it ever had weight.
    pub fn stats(&self, app: &str, version: &str) -> Option<StatsSnapshot> {
        self.app(app).config.lock().unwrap().stats.get(version).map(|s| s.snapshot())
    }
}
