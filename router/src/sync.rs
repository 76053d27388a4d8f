//! What crosses the control channel, from the router's side: its table as data, a table
//! applied (in the router process), its counts as data, and counts absorbed (in the
//! control plane's mirror).

use super::control::{AppTable, BackendState, Counts, Table};
use super::stats::RawCounts;
use super::{BackendSpec, Router, RouterEvent};
use anyhow::Result;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// The mirror's record of the router process's counters: the run they belong to, and per
/// (app, version) the counts last pulled and what earlier runs counted.
#[derive(Default)]
pub(super) struct Bases {
    epoch: Option<u64>,
    versions: HashMap<(String, String), (RawCounts, RawCounts)>,
}

/// How long a drain the control plane asked for may hold a backend in the router process:
/// the control plane stops the replica well before.
const DRAIN_IN_PROCESS: Duration = Duration::from_secs(3600);

impl Router {
    /// Every app as data: what the control plane pushes, and the router process keeps on
    /// disk. Apps without an address (not listening yet) are left out.
    pub fn table(&self) -> Table {
        let routes: Vec<_> = self.apps.read().unwrap().values().cloned().collect();
        let mut apps: Vec<AppTable> = routes
            .iter()
            .filter_map(|route| {
                let addr = (*route.addr.lock().unwrap())?;
                let config = route.config.lock().unwrap();
                Some(AppTable {
                    name: route.name.clone(),
                    addr,
                    split: config.split.clone(),
                    sticky: config.sticky,
                    goal_header: config.goal_header.as_ref().map(|h| h.to_string()),
                    preview_key: config.preview_key.as_deref().map(str::to_string),
                    hosts: config.binding.hosts.clone(),
                    path_prefix: config.binding.path_prefix.clone(),
                    redirect_https: config.binding.redirect_https,
                    h2c: config.binding.h2c,
                    backends: config
                        .backends
                        .iter()
                        .map(|b| BackendState {
                            id: b.id.clone(),
                            version: b.version.clone(),
                            address: b.address.clone(),
                            healthy: b.healthy.load(Relaxed),
                            draining: b.draining.load(Relaxed),
                        })
                        .collect(),
                })
            })
            .collect();
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        let mut entrypoints: Vec<(String, std::net::SocketAddr)> =
            self.entrypoints.lock().unwrap().iter().map(|(name, l)| (name.clone(), l.addr)).collect();
        entrypoints.sort();
        Table { apps, entrypoints }
    }

    /// Makes the router serve `table`: listens where it says, takes its splits and
    /// backends, and stops serving apps it does not name.
    pub async fn apply(&self, table: &Table) -> Result<()> {
        let current = self.table();
        for app in &table.apps {
            if current.apps.iter().any(|served| served == app) {
                continue;
            }
            // The route before the door: the first request accepted finds its backends.
            self.set_route(app);
            self.listen(&app.name, app.addr).await?;
        }
        for (name, addr) in &table.entrypoints {
            self.listen_entrypoint(name, *addr).await?;
        }
        let kept: Vec<&str> = table.entrypoints.iter().map(|(name, _)| name.as_str()).collect();
        let unlisted: Vec<String> =
            self.entrypoints.lock().unwrap().keys().filter(|k| !kept.contains(&k.as_str())).cloned().collect();
        for name in unlisted {
            self.stop_entrypoint(&name);
        }
        let named: Vec<&str> = table.apps.iter().map(|a| a.name.as_str()).collect();
        let gone: Vec<String> =
            self.apps.read().unwrap().keys().filter(|k| !named.contains(&k.as_str())).cloned().collect();
        for app in gone {
            self.remove(&app);
        }
        Ok(())
    }

    /// Sets one app's split, backends and their health as the table says, without
    /// touching its listeners: a router that takes over sets every route before it
    /// accepts on the sockets handed to it, so that no request meets an empty table.
    pub fn set_route(&self, app: &AppTable) {
        self.set_split(&app.name, app.split.clone(), app.sticky);
        self.set_goal_header(&app.name, app.goal_header.as_deref());
        self.set_preview_key(&app.name, app.preview_key.as_deref());
        let binding = super::Binding {
            hosts: app.hosts.clone(),
            path_prefix: app.path_prefix.clone(),
            redirect_https: app.redirect_https,
            h2c: app.h2c,
        };
        self.set_binding(&app.name, &binding);
        let specs: Vec<BackendSpec> = app
            .backends
            .iter()
            .map(|b| BackendSpec { id: b.id.clone(), version: b.version.clone(), address: b.address.clone() })
            .collect();
        self.set_backends(&app.name, &specs);
        for b in &app.backends {
            self.set_healthy(&app.name, &b.id, b.healthy);
            if b.draining {
                self.drain(&app.name, &b.id, DRAIN_IN_PROCESS);
            }
        }
    }

    /// The counts as data, with the ejections noticed since the last call.
    pub fn counts(&self, ejected: Vec<(String, String, String)>) -> Counts {
        let routes: Vec<_> = self.apps.read().unwrap().values().cloned().collect();
        let mut counts = Counts { ejected, ..Counts::default() };
        for route in routes {
            let config = route.config.lock().unwrap();
            for (version, stats) in &config.stats {
                counts.versions.push((route.name.clone(), version.clone(), stats.raw()));
            }
            for b in &config.backends {
                counts.in_flight.push((route.name.clone(), b.id.clone(), b.in_flight.load(Relaxed)));
            }
            counts.unroutable.push((route.name.clone(), route.unroutable.load(Relaxed)));
        }
        counts
    }

    /// Takes the counts of a router process this one replaces.
    pub fn seed(&self, counts: &Counts) {
        for (app, version, raw) in &counts.versions {
            let route = self.app(app);
            let stats = route.config.lock().unwrap().stats.entry(version.clone()).or_default().clone();
            stats.set(&RawCounts { in_flight: 0, ..*raw });
        }
        for (app, n) in &counts.unroutable {
            self.app(app).unroutable.store(*n, Relaxed);
        }
    }

    /// The control plane's mirror takes the router process's counts. A new epoch means a
    /// router process that started from zero (after a crash): what was counted before is
    /// kept as a base under the new counts, so that the mirror's counters never go
    /// backwards (canary analysis reads windows of them).
    pub fn absorb(&self, counts: Counts) {
        let mut bases = self.bases.lock().unwrap();
        if bases.epoch != Some(counts.epoch) {
            if bases.epoch.is_some() {
                for (last, base) in bases.versions.values_mut() {
                    *base = last.after(base);
                    *last = RawCounts::default();
                }
            }
            bases.epoch = Some(counts.epoch);
        }
        for (app, version, raw) in counts.versions {
            let (last, base) = bases.versions.entry((app.clone(), version.clone())).or_default();
            *last = raw;
            let total = raw.after(base);
            // An app removed here, that the router process still serves until the next
            // push, is not brought back.
            if let Some(route) = self.existing(&app) {
                let stats = route.config.lock().unwrap().stats.entry(version).or_default().clone();
                stats.set(&total);
            }
        }
        drop(bases);
        for (app, id, n) in counts.in_flight {
            if let Some(b) = self.existing(&app).and_then(|route| route.backend(&id)) {
                b.in_flight.store(n, Relaxed);
            }
        }
        for (app, n) in counts.unroutable {
            if let Some(route) = self.existing(&app) {
                route.unroutable.store(n, Relaxed);
            }
        }
        for (app, replica, version) in counts.ejected {
            if let Some(events) = &self.events {
                let _ = events.send(RouterEvent::Ejected { app, replica, version });
            }
        }
        self.pulls.fetch_add(1, Relaxed);
    }

    /// Retires this router for the router process that takes over: it stops accepting,
    /// answers each open connection's next request with `Connection: close` (the client
    /// comes back to the new process), and hands over a copy of each listening socket.
    pub fn retire(&self) -> Vec<(String, Vec<std::net::TcpListener>)> {
        self.retirement.now.store(true, Relaxed);
        self.retirement.signal.send_replace(true);
        let routes: Vec<_> = self.apps.read().unwrap().values().cloned().collect();
        let mut sockets: Vec<(String, Vec<std::net::TcpListener>)> = routes
            .into_iter()
            .map(|route| (route.name.clone(), std::mem::take(&mut *route.sockets.lock().unwrap())))
            .collect();
        for (name, listeners) in self.entrypoints.lock().unwrap().iter_mut() {
            sockets.push((name.clone(), std::mem::take(&mut listeners.sockets)));
        }
        sockets
    }

    /// Whether this router was handed over to a new router process.
    pub fn retiring(&self) -> bool {
        self.retirement.retiring()
    }

    /// Client connections still open.
    pub fn open_connections(&self) -> u64 {
        self.retirement.open_connections.load(Relaxed)
    }

    /// Requests in flight across every app.
    pub fn in_flight(&self) -> u64 {
        let routes: Vec<_> = self.apps.read().unwrap().values().cloned().collect();
        routes
            .iter()
            .map(|r| r.config.lock().unwrap().backends.iter().map(|b| b.in_flight.load(Relaxed)).sum::<u64>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(epoch: u64, requests: u64, errors: u64) -> Counts {
        let raw = RawCounts { requests, status_2xx: requests - errors, status_5xx: errors, ..RawCounts::default() };
        Counts { epoch, versions: vec![("web".into(), "r1".into(), raw)], ..Counts::default() }
    }

    /// A router process that restarts counts from zero: the mirror's counters carry on
    /// from where they were, so a window read across the restart sees what happened in it,
    /// not a drop (which an analysis could take for a verdict).
    #[test]
    fn counts_of_a_restarted_router_process_carry_on_in_the_mirror() {
        let mirror = Router::new();
        mirror.set_split("web", crate::model::Split::all("r1"), false);
        mirror.absorb(counts(7, 100, 2));
        let before = mirror.stats("web", "r1").unwrap();
        assert_eq!((before.requests, before.status_5xx), (100, 2));

        // The process died; the new one counted 10 requests, 1 failed, under a new epoch.
        mirror.absorb(counts(8, 10, 1));
        let after = mirror.stats("web", "r1").unwrap();
        assert_eq!((after.requests, after.status_2xx, after.status_5xx), (110, 107, 3));
        // The window between the two reads is what the new process counted.
        assert_eq!((after.requests - before.requests, after.status_5xx - before.status_5xx), (10, 1));

        // Later pulls of the same epoch move on from there.
        mirror.absorb(counts(8, 50, 1));
        assert_eq!(mirror.stats("web", "r1").unwrap().requests, 150);
        // A router process that took over keeps the epoch and the counts: nothing changes.
        mirror.absorb(counts(8, 50, 1));
        assert_eq!(mirror.stats("web", "r1").unwrap().requests, 150);
    }

    #[tokio::test]
    async fn a_table_applied_is_the_table_served() {
        let router = Router::new();
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (port, http) = (free(), free());
        let table = Table {
            apps: vec![AppTable {
                name: "web".into(),
                addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                split: crate::model::Split::new(vec![("r1".into(), 80), ("r2".into(), 20)]).unwrap(),
                sticky: true,
                goal_header: Some("x-goal".into()),
                preview_key: Some("0123456789abcdef".into()),
                backends: vec![
                    BackendState {
                        id: "a".into(),
                        version: "r1".into(),
                        address: "127.0.0.1:1".into(),
                        healthy: true,
                        draining: false,
                    },
                    BackendState {
                        id: "b".into(),
                        version: "r2".into(),
                        address: "127.0.0.1:2".into(),
                        healthy: false,
                        draining: true,
                    },
                ],
                hosts: vec!["web.example.test".into()],
                path_prefix: "/web".into(),
                redirect_https: true,
                h2c: true,
            }],
            entrypoints: vec![(
                super::super::HTTP_ENTRYPOINT.into(),
                std::net::SocketAddr::from(([127, 0, 0, 1], http)),
            )],
        };
        router.apply(&table).await.unwrap();
        assert_eq!(router.table(), table);
        // Applying it again changes nothing; an empty table stops serving the app.
        router.apply(&table).await.unwrap();
        assert_eq!(router.table(), table);
        router.apply(&Table::default()).await.unwrap();
        assert_eq!(router.table(), Table::default());
        // The accept loops end on their threads a moment later: then the port is free.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
            || std::net::TcpListener::bind(("127.0.0.1", http)).is_err()
        {
            assert!(std::time::Instant::now() < deadline, "port {port} or {http} is still bound");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
