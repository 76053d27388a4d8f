//! The traffic router: an HTTP/1.1 reverse proxy in front of each app, on the app's port.
//!
//! Strategies change where traffic goes through the routing capability; the engine keeps
//! the backends and their health current. Every change builds a new [`RouteTable`] and
//! swaps it in atomically; requests in flight keep the backend they started on.
//!
//! A crate of its own, over the model, the store (the leader's fence, which it asks
//! before each push to the router process) and the ports: the compiler keeps the engine,
//! the plugins and the API out of the data plane.

pub mod control;
mod entrypoint;
mod hosts;
pub mod link;
pub mod process;
mod proxy;
mod route;
pub mod stats;
mod sync;
mod table;
pub mod tls;

pub use entrypoint::{HTTP as HTTP_ENTRYPOINT, HTTPS as HTTPS_ENTRYPOINT};
pub use hosts::{Binding, check_host, check_path_prefix};
pub use route::AppRoute;
pub use stats::StatsSnapshot;
use table::Backend;
pub use table::{EJECT_AFTER_FAILURES, EJECT_FOR_MS};

use anyhow::{Context, Result};
use hivemind_model::{api_types, model};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A listening socket on `addr` that other router threads may bind too (SO_REUSEPORT).
fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    // Registered with the caller's runtime for a moment; each router thread takes it over.
    socket.listen(1024)?.into_std()
}

/// A replica the router may send traffic to.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendSpec {
    pub id: String,
    pub version: String,
    pub address: String,
}

/// Something the router noticed that the engine should know.
#[derive(Debug, Clone, PartialEq)]
pub enum RouterEvent {
    /// A backend failed `EJECT_AFTER_FAILURES` exchanges in a row and gets no traffic for
    /// `EJECT_FOR_MS`.
    Ejected { app: String, replica: String, version: String },
    /// The router process died, and a new one served again this long after.
    ProcessRestarted { after: Duration },
}

/// Where the drain of a backend stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainState {
    Draining(u64),
    Drained,
    TimedOut,
}

/// The router of every app. It runs the proxies itself (in `hivemind router`, or inside
/// `serve` with `--router-mode embedded`), or, in `serve` by default, it is the control
/// plane's mirror of the router process's: changes are made here and pushed there as
/// whole tables (`link`), and the counts read here are pulled from there.
#[derive(Default)]
pub struct Router {
    apps: std::sync::RwLock<HashMap<String, Arc<AppRoute>>>,
    events: Option<tokio::sync::mpsc::UnboundedSender<RouterEvent>>,
    /// Started by the first `listen`.
    workers: std::sync::OnceLock<Workers>,
    /// Set when this router is the mirror of a router process.
    link: std::sync::OnceLock<Arc<link::Link>>,
    /// Counts pulled from the router process so far (a drain is over only by a pull that
    /// came after it).
    pulls: AtomicU64,
    /// The counts last pulled, and what came before the router process last restarted:
    /// the mirror's counters never go backwards.
    bases: Mutex<sync::Bases>,
    /// Whether this router hands its listeners over and winds down (a router process that
    /// a new one replaces), and the connections it still has open.
    retirement: Arc<Retirement>,
    /// Which app serves which host on the entrypoints.
    front: Arc<hosts::Front>,
    /// The shared listeners (`--http-addr`, `--https-addr`), by name.
    entrypoints: Mutex<HashMap<String, Listeners>>,
    /// The certificates the HTTPS entrypoint serves, and the data dir's store of them.
    certs: Arc<tls::Certs>,
    cert_store: std::sync::OnceLock<tls::CertStore>,
}

/// The sockets of one listening address, and the accept loops that serve them.
struct Listeners {
    addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// A copy of each socket, to hand to a new router process that takes over.
    sockets: Vec<std::net::TcpListener>,
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// How a router process that is replaced lets go of its clients without failing one.
#[derive(Default)]
pub(crate) struct Retirement {
    now: AtomicBool,
    signal: tokio::sync::watch::Sender<bool>,
    open_connections: AtomicU64,
}

impl Retirement {
    pub(crate) fn retiring(&self) -> bool {
        self.now.load(Relaxed)
    }

    /// Resolves once the router retires (at once if it has).
    pub(crate) fn retired(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut signal = self.signal.subscribe();
        async move {
            let _ = signal.wait_for(|retired| *retired).await;
        }
    }

    /// Counts a client connection while the guard lives.
    pub(crate) fn open(self: &Arc<Self>) -> OpenConnection {
        self.open_connections.fetch_add(1, Relaxed);
        OpenConnection(self.clone())
    }
}

pub(crate) struct OpenConnection(Arc<Retirement>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Relaxed);
    }
}

/// The threads the proxies run on, as nginx runs a worker per core: one single-threaded
/// runtime per core, each accepting on every app port through a socket of its own
/// (SO_REUSEPORT, so the kernel spreads connections) and keeping its own backend pool. A
/// request and its backend exchange stay on one thread: no cross-thread wake-ups and no
/// work stealing on the hot path, which is where a work-stealing runtime spent its time.
struct Workers {
    handles: Vec<tokio::runtime::Handle>,
}

impl Workers {
    fn start() -> Workers {
        let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let handles = (0..n)
            .map(|i| {
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::Builder::new()
                    .name(format!("router-{i}"))
                    .spawn(move || {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("building a router runtime");
                        let _ = tx.send(runtime.handle().clone());
                        runtime.block_on(std::future::pending::<()>());
                    })
                    .expect("starting a router thread");
                rx.recv().expect("a router thread started")
            })
            .collect();
        Workers { handles }
    }
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// A router that reports what it notices (ejections) on a channel.
    pub fn with_events() -> (Router, tokio::sync::mpsc::UnboundedReceiver<RouterEvent>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Router { events: Some(tx), ..Router::default() }, rx)
    }

    /// Makes this router the mirror of the router process at the other end of `link`.
    pub fn mirror(&self, link: Arc<link::Link>) {
        let _ = self.link.set(link);
    }

    /// Tells the engine that the router process died and serves again.
    fn notify_restart(&self, after: Duration) {
        if let Some(events) = &self.events {
            let _ = events.send(RouterEvent::ProcessRestarted { after });
        }
    }

    /// Tells the router process, if there is one, that the table changed.
    fn changed(&self) {
        if let Some(link) = self.link.get() {
            link.changed();
        }
    }

    /// Pulls the router process's counts now (if there is one), for a reader that wants
    /// them as of this moment rather than of the last pull (every 100 ms).
    pub async fn refresh(&self) {
        if let Some(link) = self.link.get() {
            link.pull(self).await;
        }
    }

    /// Returns once the router process (if there is one) serves the table as it is now:
    /// after a change a deployment relies on (a split, new backends, a drain).
    pub async fn flush(&self) {
        if let Some(link) = self.link.get() {
            link.flush(self).await;
        }
    }

    /// The app's route, if it has one.
    fn existing(&self, app: &str) -> Option<Arc<AppRoute>> {
        self.apps.read().unwrap().get(app).cloned()
    }

    fn app(&self, app: &str) -> Arc<AppRoute> {
        if let Some(route) = self.apps.read().unwrap().get(app) {
            return route.clone();
        }
        let mut apps = self.apps.write().unwrap();
        apps.entry(app.to_string()).or_insert_with(|| Arc::new(AppRoute::new(app, self.events.clone()))).clone()
    }

    /// Starts serving `app` on `addr`. Returns once the port is bound (by the router
    /// process, for a mirror).
    pub async fn listen(&self, app: &str, addr: SocketAddr) -> Result<()> {
        if let Some(link) = self.link.get() {
            link.listen(app, addr).await?;
            *self.app(app).addr.lock().unwrap() = Some(addr);
            return Ok(());
        }
        if *self.app(app).addr.lock().unwrap() == Some(addr) {
            return Ok(());
        }
        let sockets = self.bind(addr).with_context(|| format!("binding the router for app {app} to {addr}"))?;
        self.serve_on(app, addr, sockets)
    }

    /// A listening socket on `addr` for each router thread (SO_REUSEPORT).
    fn bind(&self, addr: SocketAddr) -> std::io::Result<Vec<std::net::TcpListener>> {
        let workers = self.workers.get_or_init(Workers::start);
        workers.handles.iter().map(|_| reuseport_listener(addr)).collect()
    }

    /// Starts an accept loop on each socket, spread over the router threads, serving
    /// `target`; returns the loops and a copy of each socket (for a handover).
    fn spawn_accept_loops(
        &self,
        sockets: Vec<std::net::TcpListener>,
        target: proxy::Target,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Result<(Vec<tokio::task::JoinHandle<()>>, Vec<std::net::TcpListener>)> {
        let workers = self.workers.get_or_init(Workers::start);
        let copies = sockets.iter().map(|s| s.try_clone()).collect::<std::io::Result<Vec<_>>>()?;
        let tasks = sockets
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                let (target, retirement, tls) = (target.clone(), self.retirement.clone(), tls.clone());
                workers.handles[i % workers.handles.len()].spawn(async move {
                    match socket.set_nonblocking(true).and_then(|()| tokio::net::TcpListener::from_std(socket)) {
                        Ok(listener) => proxy::serve(listener, target, retirement, tls).await,
                        Err(e) => tracing::error!("router socket: {e}"),
                    }
                })
            })
            .collect();
        Ok((tasks, copies))
    }

    /// Serves `app` on sockets already listening on `addr` (bound here, or handed over by
    /// the router process this one replaces), spread over the router threads.
    pub fn serve_on(&self, app: &str, addr: SocketAddr, sockets: Vec<std::net::TcpListener>) -> Result<()> {
        let route = self.app(app);
        let (tasks, copies) = self.spawn_accept_loops(sockets, proxy::Target::App(route.clone()), None)?;
        for old in std::mem::replace(&mut *route.listeners.lock().unwrap(), tasks) {
            old.abort();
        }
        *route.addr.lock().unwrap() = Some(addr);
        *route.sockets.lock().unwrap() = copies;
        Ok(())
    }

    /// Starts serving `app` on a port of its own on `ip`, picked by the host; returns
    /// the port once it is bound.
    pub async fn listen_any(&self, app: &str, ip: std::net::IpAddr) -> Result<u16> {
        if let Some(link) = self.link.get() {
            let port = link.listen_any(app, ip).await?;
            *self.app(app).addr.lock().unwrap() = Some(SocketAddr::new(ip, port));
            return Ok(port);
        }
        loop {
            let reserved = hivemind_ports::reserve(ip).with_context(|| format!("picking a port for app {app}"))?;
            match self.listen(app, SocketAddr::new(ip, reserved.port())).await {
                Ok(()) => return Ok(reserved.port()),
                // Another program took it since it was picked: pick again.
                Err(e) if hivemind_ports::in_use(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Stops serving an app and forgets it: its port is free again, and its hosts too.
    pub fn remove(&self, app: &str) {
        if let Some(route) = self.apps.write().unwrap().remove(app) {
            for task in route.listeners.lock().unwrap().drain(..) {
                task.abort();
            }
            // Open connections keep the route alive a while: the port must not wait for them.
            route.sockets.lock().unwrap().clear();
        }
        self.rebuild_hosts();
        self.changed();
    }

    /// Replaces the app's split. Versions with weight 0 get no traffic unless a request
    /// asks for them by header (a preview). With `sticky`, each client keeps its version
    /// through a cookie.
    pub fn set_split(&self, app: &str, split: crate::model::Split, sticky: bool) {
        let route = self.app(app);
        let mut config = route.config.lock().unwrap();
        config.split = split;
        config.sticky = sticky;
        route.rebuild(&mut config);
        drop(config);
        self.changed();
    }

    /// Counts responses that carry `header` as goals (conversions), per version.
    pub fn set_goal_header(&self, app: &str, header: Option<&str>) {
        let header = header.and_then(|h| http::HeaderName::from_bytes(h.trim().as_bytes()).ok());
        let route = self.app(app);
        let mut config = route.config.lock().unwrap();
        if config.goal_header != header {
            config.goal_header = header;
            route.rebuild(&mut config);
            drop(config);
            self.changed();
        }
    }

    /// The key a request must show (header `x-hivemind-preview`, or cookie
    /// `hivemind_preview`) for its `x-hivemind-variant` to choose a version: without it,
    /// nobody reaches a version the split gives no traffic. No key: nobody may choose.
    pub fn set_preview_key(&self, app: &str, key: Option<&str>) {
        let key: Option<Arc<str>> = key.filter(|k| !k.is_empty()).map(Arc::from);
        let route = self.app(app);
        let mut config = route.config.lock().unwrap();
        if config.preview_key != key {
            config.preview_key = key;
            route.rebuild(&mut config);
            drop(config);
            self.changed();
        }
    }

    /// The split in force, and whether it is sticky.
    pub fn split(&self, app: &str) -> (crate::model::Split, bool) {
        let route = self.app(app);
        let config = route.config.lock().unwrap();
        (config.split.clone(), config.sticky)
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
        drop(config);
        self.changed();
    }

    /// Records a probe's verdict for one backend.
    pub fn set_healthy(&self, app: &str, id: &str, healthy: bool) {
        if let Some(b) = self.app(app).backend(id)
            && b.healthy.swap(healthy, Relaxed) != healthy
        {
            self.changed();
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
            // A mirror's in-flight counts are the router process's as of a pull: the
            // drain is over only by a pull that came after the router knew of it.
            b.drained_by_pull.store(self.pulls.load(Relaxed) + 2, Relaxed);
        }
        b.draining.store(true, Relaxed);
        drop(deadline);
        self.changed();
        true
    }

    pub fn drain_state(&self, app: &str, id: &str) -> Option<DrainState> {
        let b = self.app(app).backend(id)?;
        let mut in_flight = b.in_flight.load(Relaxed);
        if self.link.get().is_some() && self.pulls.load(Relaxed) < b.drained_by_pull.load(Relaxed) {
            in_flight = in_flight.max(1);
        }
        let deadline = *b.drain_deadline.lock().unwrap();
        Some(match deadline {
            _ if in_flight == 0 => DrainState::Drained,
            Some(d) if Instant::now() >= d => DrainState::TimedOut,
            _ => DrainState::Draining(in_flight),
        })
    }

    /// The counts of one version of the app, if it ever was in a split.
    pub fn stats(&self, app: &str, version: &str) -> Option<StatsSnapshot> {
        self.app(app).config.lock().unwrap().stats.get(version).map(|s| s.snapshot())
    }

    /// Every app's counts in the Prometheus text format.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write;
        let apps: Vec<Arc<AppRoute>> = self.apps.read().unwrap().values().cloned().collect();
        let mut out = String::new();
        let mut series: Vec<(String, String, StatsSnapshot)> = Vec::new();
        for route in &apps {
            let config = route.config.lock().unwrap();
            for (version, stats) in &config.stats {
                series.push((route.name.clone(), version.clone(), stats.snapshot()));
            }
        }
        series.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let _ = writeln!(
            out,
            "# HELP hivemind_router_requests_total Requests the router sent to a version, by status class."
        );
        let _ = writeln!(out, "# TYPE hivemind_router_requests_total counter");
        for (app, version, s) in &series {
            for (class, n) in
                [("2xx", s.status_2xx), ("3xx", s.status_3xx), ("4xx", s.status_4xx), ("5xx", s.status_5xx)]
            {
                let _ = writeln!(
                    out,
                    "hivemind_router_requests_total{{app=\"{app}\",version=\"{version}\",class=\"{class}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP hivemind_router_connection_errors_total Exchanges that got no answer from a backend."
        );
        let _ = writeln!(out, "# TYPE hivemind_router_connection_errors_total counter");
        for (app, version, s) in &series {
            let _ = writeln!(
                out,
                "hivemind_router_connection_errors_total{{app=\"{app}\",version=\"{version}\"}} {}",
                s.connection_errors
            );
        }
        let _ = writeln!(out, "# HELP hivemind_router_in_flight Requests in flight.");
        let _ = writeln!(out, "# TYPE hivemind_router_in_flight gauge");
        for (app, version, s) in &series {
            let _ = writeln!(out, "hivemind_router_in_flight{{app=\"{app}\",version=\"{version}\"}} {}", s.in_flight);
        }
        let _ =
            writeln!(out, "# HELP hivemind_router_latency_ms Time to the backend's response headers, in milliseconds.");
        let _ = writeln!(out, "# TYPE hivemind_router_latency_ms histogram");
        for (app, version, s) in &series {
            let mut cumulative = 0;
            for (bound, count) in &s.latency_buckets {
                cumulative += count;
                let le = if bound.is_infinite() { "+Inf".to_string() } else { bound.to_string() };
                let _ = writeln!(
                    out,
                    "hivemind_router_latency_ms_bucket{{app=\"{app}\",version=\"{version}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ =
                writeln!(out, "hivemind_router_latency_ms_count{{app=\"{app}\",version=\"{version}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "# HELP hivemind_router_unroutable_total Requests answered 503 because no backend was usable."
        );
        let _ = writeln!(out, "# TYPE hivemind_router_unroutable_total counter");
        let mut names: Vec<_> = apps.iter().map(|r| (r.name.clone(), r.unroutable.load(Relaxed))).collect();
        names.sort();
        for (app, n) in names {
            let _ = writeln!(out, "hivemind_router_unroutable_total{{app=\"{app}\"}} {n}");
        }
        if let Some(link) = self.link.get() {
            link.prometheus(&mut out);
        }
        out
    }
}
