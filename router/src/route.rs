//! One app's route: the table the proxies read (swapped whole), and the configuration
//! it is rebuilt from whenever the split, the backends or the binding change.

use super::stats::VersionStats;
use super::table::{Backend, Pool, RouteTable};
use super::{Binding, RouterEvent};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// One app's routing: its table, and what the table is built from.
pub struct AppRoute {
    pub name: String,
    pub(crate) table: ArcSwap<RouteTable>,
    /// Requests seen, to step through the table's weighted schedule.
    pub(crate) counter: AtomicU64,
    /// What tables are built from. Writers hold the lock; readers only load `table`.
    pub(crate) config: Mutex<RouteConfig>,
    /// Requests answered 503 because no backend was usable.
    pub unroutable: AtomicU64,
    /// The accept loops, one per router thread, stopped when the app is removed.
    pub(crate) listeners: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Where it listens (in the control plane's mirror: where the router process does).
    pub(crate) addr: Mutex<Option<SocketAddr>>,
    /// A copy of each listening socket, to hand to a new router process that takes over.
    pub(crate) sockets: Mutex<Vec<std::net::TcpListener>>,
    pub(crate) events: Option<tokio::sync::mpsc::UnboundedSender<RouterEvent>>,
}

#[derive(Default)]
pub(crate) struct RouteConfig {
    pub(crate) split: crate::model::Split,
    pub(crate) sticky: bool,
    pub(crate) goal_header: Option<http::HeaderName>,
    /// The key that lets a request choose a version (`x-hivemind-variant`).
    pub(crate) preview_key: Option<Arc<str>>,
    pub(crate) backends: Vec<Arc<Backend>>,
    pub(crate) stats: HashMap<String, Arc<VersionStats>>,
    /// The host names the app answers to on the entrypoints, and how.
    pub(crate) binding: Binding,
}

impl AppRoute {
    pub(crate) fn new(name: &str, events: Option<tokio::sync::mpsc::UnboundedSender<RouterEvent>>) -> AppRoute {
        AppRoute {
            name: name.to_string(),
            table: ArcSwap::from_pointee(RouteTable::new(Vec::new(), false)),
            counter: AtomicU64::new(0),
            config: Mutex::new(RouteConfig::default()),
            unroutable: AtomicU64::new(0),
            listeners: Mutex::new(Vec::new()),
            addr: Mutex::new(None),
            sockets: Mutex::new(Vec::new()),
            events,
        }
    }

    /// Tells the engine, if it listens.
    pub(crate) fn notify(&self, event: RouterEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    pub(crate) fn rebuild(&self, config: &mut RouteConfig) {
        let mut pools = Vec::new();
        for (version, weight) in &config.split {
            let stats = config.stats.entry(version.clone()).or_default().clone();
            let backends = config.backends.iter().filter(|b| &b.version == version).cloned().collect();
            pools.push(Pool::new(version.clone(), *weight, backends, stats));
        }
        let mut table = RouteTable::new(pools, config.sticky);
        table.goal_header = config.goal_header.clone();
        table.preview_key = config.preview_key.clone();
        table.h2c = config.binding.h2c;
        self.table.store(Arc::new(table));
    }

    pub(crate) fn backend(&self, id: &str) -> Option<Arc<Backend>> {
        self.config.lock().unwrap().backends.iter().find(|b| b.id == id).cloned()
    }
}
