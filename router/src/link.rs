//! The control plane's end of the control channel. `serve` adopts the router process of
//! its data dir (or starts one), pushes its mirror's table whenever it changes, pulls the
//! counts every 100 ms, and starts the router again within a second if it dies. Nothing
//! is pushed before the engine has restored every app (`ready`), so a control plane that
//! restarts never blanks a route: the router keeps serving its last table meanwhile.

use super::Router;
use super::control::{Connection, Paths, Request, Response};
use anyhow::{Context, Result, bail};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often counts are pulled (and a dead router noticed).
const PULL_EVERY: Duration = Duration::from_millis(100);
/// How long one request may take before the router counts as gone.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Link {
    paths: Paths,
    data_dir: PathBuf,
    /// One request at a time, on one connection (none while the router is away).
    connection: tokio::sync::Mutex<Option<Connection>>,
    /// Bumped by every change of the mirror, and the version the router last took.
    version: AtomicU64,
    pushed: AtomicU64,
    pushing: tokio::sync::Mutex<()>,
    pulling: tokio::sync::Mutex<()>,
    changed: Notify,
    /// The engine restored every app: the mirror is whole, and may be pushed.
    ready: AtomicBool,
    /// Whether the router answered the last request.
    up: AtomicBool,
    /// Router processes started again after one died.
    restarts: AtomicU64,
    /// Another program (systemd) runs the router: `serve` waits for it, never starts one.
    supervised: bool,
    /// With several servers, only the leader's tables reach the router: a server that lost
    /// the lease (paused past it, say) pushes nothing more.
    fence: std::sync::OnceLock<hivemind_store::Fence>,
}

impl Link {
    /// Pushes only while `fence` says this server leads.
    pub fn fence_with(&self, fence: hivemind_store::Fence) {
        let _ = self.fence.set(fence);
    }

    fn may_act(&self) -> bool {
        self.fence.get().is_none_or(|f| f.may_act())
    }

    /// The link to the router of `data_dir`: the one that runs, or a new one started now
    /// (unless `supervised`: another program, such as systemd, runs the router).
    pub async fn connect_or_start(data_dir: &Path, supervised: bool) -> Result<Arc<Link>> {
        let data_dir = data_dir.to_path_buf();
        let link = Arc::new(Link {
            paths: Paths::of(&data_dir),
            data_dir,
            connection: tokio::sync::Mutex::new(None),
            version: AtomicU64::new(1),
            pushed: AtomicU64::new(0),
            pushing: tokio::sync::Mutex::new(()),
            pulling: tokio::sync::Mutex::new(()),
            changed: Notify::new(),
            ready: AtomicBool::new(false),
            up: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
            supervised,
            fence: std::sync::OnceLock::new(),
        });
        match Connection::connect(&link.paths.socket).await {
            Ok(connection) => {
                link.connected(&mut *link.connection.lock().await, connection);
                tracing::info!("adopted the router process of {}", link.data_dir.display());
            }
            Err(_) if supervised => {
                link.await_router(Duration::from_secs(30)).await?;
                tracing::info!("connected to the router process of {}", link.data_dir.display());
            }
            Err(_) => {
                link.start_router().await?;
                tracing::info!("started a router process for {}", link.data_dir.display());
            }
        }
        link.up.store(true, Relaxed);
        Ok(link)
    }

    /// Starts `hivemind router` for the data dir (this binary, in its own process group so
    /// that a signal to `serve`'s terminal does not reach it) and waits until it answers.
    async fn start_router(&self) -> Result<()> {
        let exe = std::env::current_exe().context("finding this binary to start the router")?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.paths.log)?;
        let mut child = std::process::Command::new(exe)
            .arg("router")
            .arg("--data-dir")
            .arg(&self.data_dir)
            // Not serve's voice to a service manager: the router is its own service, or none.
            .env_remove("NOTIFY_SOCKET")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting the router process")?;
        // Reaped when it ends, so that it never lingers as a zombie of `serve`.
        std::thread::spawn(move || child.wait());
        self.await_router(Duration::from_secs(10))
            .await
            .with_context(|| format!("the router process it started did not answer; see {}", self.paths.log.display()))
    }

    /// Waits until a router answers on the control socket.
    async fn await_router(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(connection) = Connection::connect(&self.paths.socket).await {
                self.connected(&mut *self.connection.lock().await, connection);
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "no router answers at {} after {timeout:?}; start it with `hivemind router --data-dir {}` (or its systemd unit), or run serve with --router-mode process",
                    self.paths.socket.display(),
                    self.data_dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asks the router; a failed exchange drops the connection (the sync loop mends it).
    /// A connection closed under the request (the router process was handed over to a new
    /// one, which closes its control connections) is made again and the request asked
    /// once more: every request is idempotent.
    async fn ask(&self, request: &Request) -> Result<Response> {
        let mut guard = self.connection.lock().await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            if guard.is_none()
                && let Ok(connection) = Connection::connect(&self.paths.socket).await
            {
                self.connected(&mut guard, connection);
            }
            let Some(connection) = guard.as_mut() else { bail!("the router process does not answer") };
            match tokio::time::timeout(REQUEST_TIMEOUT, connection.exchange(request)).await {
                // The router refused: the connection is fine.
                Ok(Ok(Response::Error { message })) => bail!("{message}"),
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) => {
                    *guard = None;
                    if attempts >= 3 {
                        return Err(e);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(_) => {
                    *guard = None;
                    bail!("the router process did not answer within {REQUEST_TIMEOUT:?}")
                }
            }
        }
    }

    pub async fn listen(&self, app: &str, addr: SocketAddr) -> Result<()> {
        self.ask(&Request::Listen { app: app.to_string(), addr }).await?;
        Ok(())
    }

    pub async fn listen_entrypoint(&self, name: &str, addr: SocketAddr) -> Result<()> {
        self.ask(&Request::ListenEntrypoint { name: name.to_string(), addr }).await?;
        Ok(())
    }

    pub async fn set_challenges(&self, answers: std::collections::HashMap<String, String>) -> Result<()> {
        self.ask(&Request::Challenges { answers }).await?;
        Ok(())
    }

    pub async fn reload_certs(&self) -> Result<()> {
        self.ask(&Request::ReloadCerts).await?;
        Ok(())
    }

    pub async fn listen_any(&self, app: &str, ip: IpAddr) -> Result<u16> {
        match self.ask(&Request::ListenAny { app: app.to_string(), ip }).await? {
            Response::Listening { port } => Ok(port),
            other => bail!("the router answered {other:?} to listen-any"),
        }
    }

    /// The mirror takes the router's table: its addresses, splits, backends and their
    /// health, so that what the control plane pushes first is what already serves.
    pub async fn adopt(&self, router: &Router) -> Result<()> {
        let Response::Table { table } = self.ask(&Request::GetTable).await? else {
            bail!("the router did not answer with its table");
        };
        router.apply(&table).await?;
        // And its counts, before any deployment resumes: a canary whose analysis window
        // began before this server took charge must not read zeros for it.
        self.pull(router).await;
        Ok(())
    }

    /// A new connection may reach another router process (one that took over, or was
    /// started again): it gets the whole table again.
    fn connected(&self, slot: &mut Option<Connection>, connection: Connection) {
        *slot = Some(connection);
        self.pushed.store(0, Relaxed);
        self.changed();
    }

    pub(super) fn changed(&self) {
        self.version.fetch_add(1, Relaxed);
        self.changed.notify_one();
    }

    /// The mirror is whole: pushing may begin.
    pub fn ready(&self) {
        self.ready.store(true, Relaxed);
        self.changed();
    }

    /// Pushes the mirror's table unless the router has it already. Concurrent callers
    /// queue, and one push serves every change made before it.
    pub(super) async fn flush(&self, router: &Router) {
        if !self.ready.load(Relaxed) || !self.may_act() {
            return;
        }
        let _one_at_a_time = self.pushing.lock().await;
        let version = self.version.load(Relaxed);
        if self.pushed.load(Relaxed) >= version {
            return;
        }
        let leader_epoch = self.fence.get().map(|f| f.epoch()).unwrap_or(0);
        match self.ask(&Request::Apply { table: router.table(), leader_epoch }).await {
            Ok(_) => {
                self.pushed.fetch_max(version, Relaxed);
            }
            Err(e) => tracing::warn!("pushing the table to the router: {e:#}"),
        }
    }

    /// Pulls the counts into the mirror; false when the router did not answer.
    pub(super) async fn pull(&self, router: &Router) -> bool {
        // One pull at a time, absorbed in the order asked: counts never go backwards.
        let _in_order = self.pulling.lock().await;
        match self.ask(&Request::Counts).await {
            Ok(Response::Counts { counts }) => {
                router.absorb(counts);
                true
            }
            Ok(_) => true,
            Err(_) => false,
        }
    }

    /// Keeps the router in step with the mirror, in the background, for as long as `serve`
    /// runs: pushes on change, pulls counts, and starts a router again when one died.
    pub fn spawn_sync(self: &Arc<Self>, router: Arc<Router>) {
        let link = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = link.changed.notified() => {}
                    () = tokio::time::sleep(PULL_EVERY) => {}
                }
                link.flush(&router).await;
                if !link.pull(&router).await {
                    link.mend(&router).await;
                }
            }
        });
    }

    /// The router did not answer: it died, or a new one is taking over (an upgrade). While
    /// the process of the pid file lives (the old one draining, or the new one), waits for
    /// one to answer. Once none lives, starts one at once, unless a supervisor (systemd)
    /// runs the router: then waits for the one it starts.
    async fn mend(&self, router: &Router) {
        self.up.store(false, Relaxed);
        let lost = Instant::now();
        let mut died = false;
        loop {
            if let Ok(connection) = Connection::connect(&self.paths.socket).await {
                self.connected(&mut *self.connection.lock().await, connection);
                break;
            }
            died |= !self.router_lives();
            if died && !self.supervised && self.may_act() {
                if let Err(e) = self.start_router().await {
                    tracing::error!("starting the router again: {e:#}");
                    return;
                }
                break;
            }
            if !died && !self.supervised && lost.elapsed() > Duration::from_secs(5) {
                tracing::error!("the router process {} lives but does not answer", self.paths.pid.display());
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if died {
            self.restarts.fetch_add(1, Relaxed);
        }
        self.flush(router).await;
        self.up.store(true, Relaxed);
        if died {
            router.notify_restart(lost.elapsed());
        }
    }

    /// Whether the process of the router's pid file runs (a zombie, that no parent reaped
    /// yet, does not).
    fn router_lives(&self) -> bool {
        let Some(pid) = std::fs::read_to_string(&self.paths.pid).ok().and_then(|p| p.trim().parse::<u32>().ok()) else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
        // The state is the first field after the command name in parentheses.
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
        !matches!(state, None | Some('Z' | 'X'))
    }

    /// The link's figures for /metrics.
    pub(super) fn prometheus(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP hivemind_router_process_up Whether the router process answers.");
        let _ = writeln!(out, "# TYPE hivemind_router_process_up gauge");
        let _ = writeln!(out, "hivemind_router_process_up {}", self.up.load(Relaxed) as u8);
        let _ = writeln!(
            out,
            "# HELP hivemind_router_process_restarts_total Router processes started again after one died."
        );
        let _ = writeln!(out, "# TYPE hivemind_router_process_restarts_total counter");
        let _ = writeln!(out, "hivemind_router_process_restarts_total {}", self.restarts.load(Relaxed));
    }
}
