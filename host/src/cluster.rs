//! Several servers on one Postgres: every server answers the API, one — the leader —
//! drives deployments, hooks, the healer and the routers. Leadership is a lease row in
//! the database with a fencing epoch (`store/cluster.rs`, `store/fence.rs`):
//!
//! - a follower tries to take the lease every renewal interval, and at once when the
//!   leader gives it up (LISTEN/NOTIFY on shutdown);
//! - the leader renews it every `renew`; when a renewal fails past the lease's length
//!   (the database went away, or the process was paused), or another server holds it, the
//!   leader stops writing at once and restarts itself as a follower (`Role::Deposed`),
//!   the way Kubernetes controllers exit when they lose their lease: nothing of the old
//!   engine's tasks survives to act on a world it no longer owns.
//!
//! With SQLite there is one server, which leads from the start.

use crate::api_types::{ClusterServerView, ClusterView};
use crate::model::{now_ms, rfc3339};
use crate::store::Store;
use anyhow::Result;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long the lease lasts and how often the leader renews it.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub lease: Duration,
    pub renew: Duration,
    /// This server's name in `cluster status` (default: HOST:API_PORT).
    pub name: String,
    /// Where the other servers reach this one's API.
    pub api_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    Leader,
    /// Held the lease and lost it: the server restarts as a follower.
    Deposed,
}

pub struct Cluster {
    store: Option<Store>,
    options: ClusterOptions,
    /// This process's id in the lease (a restarted server is a new instance).
    instance: String,
    started_at_ms: i64,
    role: watch::Sender<Role>,
    /// When the last renewal that worked was sent: the lease holds until then + lease.
    renewed_at: Mutex<Instant>,
    /// The epoch of the lease this server holds (or held last).
    held: Mutex<Option<i64>>,
    /// Times this server took the lease over from one that had not given it up.
    takeovers: AtomicU64,
}

impl Cluster {
    /// The only server, on SQLite: it leads.
    pub fn single(options: ClusterOptions) -> Cluster {
        let (role, _) = watch::channel(Role::Leader);
        Cluster::with(None, options, role)
    }

    /// A member of the cluster on `store` (Postgres), a follower until it wins the lease.
    pub fn member(store: Store, options: ClusterOptions) -> Cluster {
        let (role, _) = watch::channel(Role::Follower);
        Cluster::with(Some(store), options, role)
    }

    fn with(store: Option<Store>, options: ClusterOptions, role: watch::Sender<Role>) -> Cluster {
        Cluster {
            store,
            options,
            instance: format!("{:016x}", fastrand::u64(..)),
            started_at_ms: now_ms(),
            role,
            held: Mutex::new(None),
            renewed_at: Mutex::new(Instant::now()),
            takeovers: AtomicU64::new(0),
        }
    }

    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    pub fn name(&self) -> &str {
        &self.options.name
    }

    /// Resolves once the role is `wanted` (at once if it is).
    pub async fn until(&self, wanted: Role) {
        let mut role = self.role.subscribe();
        let _ = role.wait_for(|r| *r == wanted).await;
    }

    /// Resolves when this server holds the lease no more.
    pub async fn deposed(&self) {
        let mut role = self.role.subscribe();
        let _ = role.wait_for(|r| *r == Role::Deposed).await;
    }

    /// Takes part in the election until the server stops or is deposed.
    pub async fn run(&self) {
        let Some(store) = &self.store else { return };
        let mut listener = match store.listen_lease().await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!("cluster: no LISTEN on the lease channel ({e:#}); polling only");
                None
            }
        };
        loop {
            self.round().await;
            let pause = match self.role() {
                Role::Deposed => return,
                Role::Leader => self.options.renew,
                // A follower asks often enough to take over within a fraction of a lease.
                Role::Follower => self.options.renew.min(Duration::from_millis(500)),
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = store.fence().lost_lease(), if self.role() == Role::Leader => {
                    tracing::error!("cluster: a write found the lease gone: this server steps down");
                    return self.step_down(store);
                }
                notified = recv(&mut listener), if self.role() == Role::Follower => {
                    if notified.is_err() {
                        listener = None;
                    }
                }
            }
        }
    }

    /// One round of the election: a heartbeat, then take the lease if it is free (as a
    /// follower) or renew it (as the leader). `serve` runs one before it answers, so that
    /// a server that can lead at once does.
    pub async fn round(&self) {
        let Some(store) = &self.store else { return };
        let lease_ms = self.options.lease.as_millis() as i64;
        let _ = store.heartbeat(&self.instance, &self.options.name, &self.options.api_url, self.started_at_ms).await;
        match self.role() {
            Role::Follower => {
                // Ask for the lease only when it is free: a live leader's row is left
                // alone (no write per follower per interval).
                let current = match store.lease().await {
                    Ok(lease) => lease,
                    Err(e) => {
                        tracing::warn!("cluster: the lease cannot be read: {e:#}");
                        return;
                    }
                };
                // Free: expired, given up, or held under this server's own name (by the
                // process this one replaces: the API address it had is ours now).
                let held_by_another =
                    current.as_ref().is_some_and(|l| l.expires_at_ms > l.now_ms && l.holder_name != self.options.name);
                if held_by_another {
                    return;
                }
                let attempt = Instant::now();
                match store.try_acquire(&self.instance, &self.options.name, &self.options.api_url, lease_ms).await {
                    Ok(Some(lease)) => {
                        *self.renewed_at.lock().unwrap() = attempt;
                        store.fence().lead(&self.instance, lease.epoch, self.valid_until(attempt));
                        *self.held.lock().unwrap() = Some(lease.epoch);
                        // A lease that expired rather than being given up: a failover.
                        if current.is_some_and(|l| l.expires_at_ms > 0) {
                            self.takeovers.fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::info!(
                            "cluster: {} leads (lease epoch {}, {lease_ms} ms)",
                            self.options.name,
                            lease.epoch
                        );
                        self.role.send_replace(Role::Leader);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!("cluster: taking the lease failed: {e:#}"),
                }
            }
            Role::Leader => {
                let epoch = self.held.lock().unwrap().expect("a leader holds an epoch");
                let sent = Instant::now();
                let renewed_at = *self.renewed_at.lock().unwrap();
                match store.renew(&self.instance, epoch, lease_ms).await {
                    Ok(true) => {
                        *self.renewed_at.lock().unwrap() = sent;
                        store.fence().lead(&self.instance, epoch, self.valid_until(sent));
                    }
                    Ok(false) => {
                        tracing::error!(
                            "cluster: the lease (epoch {epoch}) is another server's now: this server steps down"
                        );
                        self.step_down(store);
                    }
                    Err(e) if self.valid_until(renewed_at) <= Instant::now() => {
                        tracing::error!(
                            "cluster: the lease (epoch {epoch}) could not be renewed for {:?} ({e:#}): this server steps down; the routers keep serving",
                            renewed_at.elapsed()
                        );
                        self.step_down(store);
                    }
                    Err(e) => tracing::warn!("cluster: renewing the lease failed, trying again: {e:#}"),
                }
            }
            Role::Deposed => {}
        }
    }

    /// Until when this server may act on a lease renewed at `sent`: its length less a
    /// margin, so that it stops before any other server can take it.
    fn valid_until(&self, sent: Instant) -> Instant {
        let margin = (self.options.lease / 5).min(Duration::from_secs(1));
        sent + self.options.lease.saturating_sub(margin)
    }

    fn step_down(&self, store: &Store) {
        store.fence().step_down();
        self.role.send_replace(Role::Deposed);
    }

    /// Gives the lease up on shutdown, so a follower takes over at once.
    pub async fn resign(&self) {
        let (Some(store), Some(epoch)) = (&self.store, *self.held.lock().unwrap()) else { return };
        if self.role() == Role::Leader {
            store.fence().step_down();
            if let Err(e) = store.resign(&self.instance, epoch).await {
                tracing::warn!("cluster: giving the lease up failed ({e:#}); it expires on its own");
            }
        }
        let _ = store.leave(&self.instance).await;
    }

    /// Where the leader's API answers, if a leader holds a lease that has not expired.
    pub async fn leader_url(&self) -> Result<Option<String>> {
        let Some(store) = &self.store else { return Ok(Some(self.options.api_url.clone())) };
        Ok(store.lease().await?.filter(|l| l.expires_at_ms > l.now_ms).map(|l| l.api_url))
    }

    /// The servers, which leads, since when, and the lease epoch.
    pub async fn view(&self) -> Result<ClusterView> {
        let Some(store) = &self.store else {
            return Ok(ClusterView {
                database: "sqlite".into(),
                leader: Some(self.options.name.clone()),
                epoch: 0,
                leader_since: Some(rfc3339(self.started_at_ms)),
                lease_expires_in_ms: None,
                failovers: 0,
                lease_ms: self.options.lease.as_millis() as u64,
                this_server: self.options.name.clone(),
                servers: vec![ClusterServerView {
                    name: self.options.name.clone(),
                    api_url: self.options.api_url.clone(),
                    role: "leader".into(),
                    started_at: rfc3339(self.started_at_ms),
                    seen_ms_ago: 0,
                }],
            });
        };
        let lease = store.lease().await?;
        // A member that missed three renewals' worth of heartbeats is gone.
        let recent = (self.options.lease.as_millis() as i64).max(3 * self.options.renew.as_millis() as i64);
        let members = store.members(recent).await?;
        let live = lease.as_ref().filter(|l| l.expires_at_ms > l.now_ms);
        let leader = live.and_then(|l| members.iter().find(|m| m.id == l.holder));
        Ok(ClusterView {
            database: "postgres".into(),
            leader: leader.map(|m| m.name.clone()),
            epoch: lease.as_ref().map(|l| l.epoch).unwrap_or(0),
            leader_since: live.map(|l| rfc3339(l.acquired_at_ms)),
            lease_expires_in_ms: live.map(|l| (l.expires_at_ms - l.now_ms).max(0) as u64),
            failovers: lease.as_ref().map(|l| l.failovers as u64).unwrap_or(0),
            lease_ms: self.options.lease.as_millis() as u64,
            this_server: self.options.name.clone(),
            servers: members
                .iter()
                .map(|m| ClusterServerView {
                    name: m.name.clone(),
                    api_url: m.api_url.clone(),
                    role: if live.is_some_and(|l| l.holder == m.id) { "leader" } else { "follower" }.into(),
                    started_at: rfc3339(m.started_at_ms),
                    seen_ms_ago: (m.now_ms - m.seen_at_ms).max(0) as u64,
                })
                .collect(),
        })
    }

    /// `hivemind_leader` and the takeovers, in the Prometheus text format.
    pub fn prometheus(&self, out: &mut String) {
        use std::fmt::Write;
        let leader = u8::from(self.role() == Role::Leader);
        let epoch = self.held.lock().unwrap().unwrap_or(0);
        let _ = writeln!(out, "# HELP hivemind_leader Whether this server leads the cluster (drives deployments).");
        let _ = writeln!(out, "# TYPE hivemind_leader gauge");
        let _ = writeln!(out, "hivemind_leader{{server=\"{}\"}} {leader}", self.options.name);
        let _ = writeln!(out, "# HELP hivemind_leader_epoch The lease epoch this server leads under (0: it does not).");
        let _ = writeln!(out, "# TYPE hivemind_leader_epoch gauge");
        let _ = writeln!(out, "hivemind_leader_epoch {}", if leader == 1 { epoch } else { 0 });
        let _ = writeln!(
            out,
            "# HELP hivemind_failovers_total Times this server took the lease over from a leader that had not given it up."
        );
        let _ = writeln!(out, "# TYPE hivemind_failovers_total counter");
        let _ = writeln!(out, "hivemind_failovers_total {}", self.takeovers.load(Ordering::Relaxed));
    }
}

/// The next notification on the lease channel; pending forever without a listener.
async fn recv(listener: &mut Option<sqlx::postgres::PgListener>) -> Result<()> {
    match listener {
        Some(listener) => {
            listener.recv().await?;
            Ok(())
        }
        None => std::future::pending().await,
    }
}
