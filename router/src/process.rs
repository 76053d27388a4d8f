//! `hivemind router`: the data plane as a process of its own. It serves every app's
//! listeners with the table the control plane last pushed, keeps that table on disk
//! (so that after a reboot it serves the last known routes before any control plane is
//! up), answers the control channel, and hands its listening sockets, table and counts to
//! a new router process that takes over (an upgrade), then finishes its in-flight
//! requests and exits. Stopping or killing `serve` leaves it running.

use super::control::{Connection, Paths, Request, Response, Table};
use super::{Router, RouterEvent};
use crate::model::now_ms;
use anyhow::{Context, Result, bail};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::Notify;

/// How long an old router process may take to finish its in-flight requests after a
/// new one took its listeners over.
const DRAIN_AFTER_HANDOVER: Duration = Duration::from_secs(30);

struct State {
    router: Arc<Router>,
    paths: Paths,
    started_at_ms: i64,
    /// The run of counters this process carries on (see `Counts::epoch`).
    epoch: std::sync::atomic::AtomicU64,
    /// Ejections noticed since the control plane last pulled counts.
    ejected: Mutex<Vec<(String, String, String)>>,
    /// Set when a new router process took over: stop, once in-flight requests are done.
    retired: Notify,
    /// The highest lease epoch a table came under: older ones are refused.
    leader_epoch: std::sync::atomic::AtomicU64,
    /// Held by whatever changes the table, and by the handover: a change lands before the
    /// table is handed over, or is refused (and made again on the new process).
    changing: tokio::sync::Mutex<()>,
}

/// Runs the router of `data_dir` until it is retired (by a new router process) or stopped
/// (SIGTERM, SIGINT). With `takeover`, takes the listeners, table and counts of the router
/// that runs now, instead of binding.
pub async fn run(data_dir: &Path, takeover: bool) -> Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let data_dir = data_dir.canonicalize()?;
    let paths = Paths::of(&data_dir);
    check_socket_path(&paths.socket)?;
    let (router, mut events) = Router::with_events();
    router.use_cert_store(&data_dir);
    let state = Arc::new(State {
        router: Arc::new(router),
        paths,
        started_at_ms: now_ms(),
        epoch: std::sync::atomic::AtomicU64::new(fastrand::u64(1..)),
        ejected: Mutex::new(Vec::new()),
        retired: Notify::new(),
        leader_epoch: Default::default(),
        changing: tokio::sync::Mutex::new(()),
    });
    if takeover {
        take_over(&state).await?;
    } else {
        if Connection::connect(&state.paths.socket).await.is_ok() {
            bail!(
                "a router already runs for this data dir ({}); `hivemind router upgrade` replaces it without dropping a request",
                state.paths.socket.display()
            );
        }
        if let Some(table) = load_table(&state.paths.table)? {
            state.router.apply(&table).await.context("serving the table kept on disk")?;
            tracing::info!("serving the last table: {} apps", table.apps.len());
        }
    }
    let _ = std::fs::remove_file(&state.paths.socket);
    let control = UnixListener::bind(&state.paths.socket)
        .with_context(|| format!("binding the control socket {}", state.paths.socket.display()))?;
    std::fs::set_permissions(&state.paths.socket, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(&state.paths.pid, std::process::id().to_string())?;
    println!(
        "hivemind router serving {} apps; control socket {}",
        state.router.table().apps.len(),
        state.paths.socket.display()
    );
    tell_systemd(takeover);

    let collector = state.clone();
    tokio::spawn(async move {
        while let Some(RouterEvent::Ejected { app, replica, version }) = events.recv().await {
            collector.ejected.lock().unwrap().push((app, replica, version));
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = control.accept() => {
                let (stream, _) = accepted?;
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = answer(&state, stream).await {
                        tracing::warn!("control connection: {e:#}");
                    }
                });
            }
            () = state.retired.notified() => break,
            _ = term.recv() => {
                tracing::info!("stopping on SIGTERM");
                return Ok(());
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
    // Retired: the new process accepts now. Each open connection finishes its request in
    // flight, is told to close, or is closed once idle; then this process goes, but not
    // before the new one answers on the control socket: while this one lives, `serve`
    // knows that a router is there (or about to be), and starts none.
    drop(control);
    let answered = tokio::time::Instant::now() + Duration::from_secs(5);
    while Connection::connect(&state.paths.socket).await.is_err() && tokio::time::Instant::now() < answered {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deadline = tokio::time::Instant::now() + DRAIN_AFTER_HANDOVER;
    while state.router.open_connections() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::info!(
        "handed over; exiting with {} connections and {} requests still open",
        state.router.open_connections(),
        state.router.in_flight()
    );
    Ok(())
}

/// Answers one control connection until it closes.
async fn answer(state: &State, stream: tokio::net::UnixStream) -> Result<()> {
    let mut connection = Connection::new(stream);
    while let Some(request) = connection.receive::<Request>().await? {
        // Handed over: the control plane must talk to the new process. Closing the
        // connection makes it reconnect there, and push its table again.
        if state.router.retiring() {
            return Ok(());
        }
        if let Request::Handover = request {
            let std_stream = connection.into_std()?;
            return hand_over(state, std_stream).await;
        }
        let response = match handle(state, request).await {
            // Handed over while it waited: closing tells the control plane to ask the
            // new process.
            Err(_) if state.router.retiring() => return Ok(()),
            Ok(response) => response,
            Err(e) => Response::Error { message: format!("{e:#}") },
        };
        connection.send(&response).await?;
    }
    Ok(())
}

async fn handle(state: &State, request: Request) -> Result<Response> {
    let router = &state.router;
    let _changing = match request {
        Request::Listen { .. }
        | Request::ListenAny { .. }
        | Request::ListenEntrypoint { .. }
        | Request::Apply { .. } => {
            let guard = state.changing.lock().await;
            if router.retiring() {
                bail!("this router process was handed over; ask the new one");
            }
            Some(guard)
        }
        _ => None,
    };
    Ok(match request {
        Request::Hello => Response::Hello {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at_ms: state.started_at_ms,
        },
        Request::Listen { app, addr } => {
            router.listen(&app, addr).await?;
            keep_table(&state.paths.table, &router.table());
            Response::Listening { port: addr.port() }
        }
        Request::ListenAny { app, ip } => {
            let port = router.listen_any(&app, ip).await?;
            keep_table(&state.paths.table, &router.table());
            Response::Listening { port }
        }
        Request::ListenEntrypoint { name, addr } => {
            router.listen_entrypoint(&name, addr).await?;
            keep_table(&state.paths.table, &router.table());
            Response::Listening { port: addr.port() }
        }
        Request::Apply { table, leader_epoch } => {
            let newest = state.leader_epoch.fetch_max(leader_epoch, std::sync::atomic::Ordering::Relaxed);
            if leader_epoch < newest {
                bail!(
                    "refused a table from a control plane under lease epoch {leader_epoch}: the leader of epoch {newest} drives this router now"
                );
            }
            router.apply(&table).await?;
            keep_table(&state.paths.table, &router.table());
            Response::Applied
        }
        Request::GetTable => Response::Table { table: router.table() },
        Request::Challenges { answers } => {
            router.set_challenges(answers).await?;
            Response::Applied
        }
        Request::ReloadCerts => {
            router.reload_certs().await?;
            Response::Applied
        }
        Request::Counts => {
            let ejected = std::mem::take(&mut *state.ejected.lock().unwrap());
            let mut counts = router.counts(ejected);
            counts.epoch = state.epoch.load(std::sync::atomic::Ordering::Relaxed);
            Response::Counts { counts }
        }
        Request::Handover => unreachable!("answered by hand_over"),
    })
}

/// Hands the listeners (as file descriptors), the table and the counts to the router
/// process that asked, and retires this one.
async fn hand_over(state: &State, stream: std::os::unix::net::UnixStream) -> Result<()> {
    let _changing = state.changing.lock().await;
    let table = state.router.table();
    let mut counts = state.router.counts(std::mem::take(&mut *state.ejected.lock().unwrap()));
    counts.epoch = state.epoch.load(std::sync::atomic::Ordering::Relaxed);
    // From here on the new process accepts: the sockets stay open in it. Requests that
    // come meanwhile wait in the sockets' backlog.
    let sockets = state.router.retire();
    let listeners: Vec<(String, usize)> = sockets.iter().map(|(app, s)| (app.clone(), s.len())).collect();
    let fds: Vec<i32> = sockets.iter().flat_map(|(_, s)| s.iter().map(|l| l.as_raw_fd())).collect();
    let body = serde_json::to_vec(&Response::Handover { table, counts, listeners })?;
    tokio::task::spawn_blocking(move || {
        stream.set_nonblocking(false)?;
        super::control::send_with_fds(&stream, &body, &fds)?;
        drop(sockets);
        anyhow::Ok(())
    })
    .await??;
    state.retired.notify_one();
    Ok(())
}

/// Takes the listeners, table and counts over from the router process that runs now.
async fn take_over(state: &State) -> Result<()> {
    let mut connection = Connection::connect(&state.paths.socket)
        .await
        .context("no router answers to take over from; start one with `hivemind router`")?;
    connection.send(&Request::Handover).await?;
    let stream = connection.into_std()?;
    let (body, fds) = tokio::task::spawn_blocking(move || {
        stream.set_nonblocking(false)?;
        super::control::receive_with_fds(&stream, 4096)
    })
    .await??;
    let Response::Handover { table, counts, listeners } = serde_json::from_slice(&body)? else {
        bail!("the router answered the handover with something else");
    };
    // Routes first, then the sockets: a connection accepted here finds its backends.
    for app in &table.apps {
        state.router.set_route(app);
    }
    let mut fds = fds.into_iter();
    for (app, count) in &listeners {
        let sockets: Vec<std::net::TcpListener> = fds.by_ref().take(*count).map(std::net::TcpListener::from).collect();
        let addr = sockets.first().map(|s| s.local_addr()).transpose()?;
        match addr {
            Some(addr) if app.starts_with('@') => state.router.serve_entrypoint_on(app, addr, sockets)?,
            Some(addr) => state.router.serve_on(app, addr, sockets)?,
            None => {}
        }
    }
    state.router.apply(&table).await?;
    state.router.seed(&counts);
    state.epoch.store(counts.epoch, std::sync::atomic::Ordering::Relaxed);
    save_table(&state.paths.table, &table)?;
    tracing::info!("took over {} apps from the previous router", table.apps.len());
    Ok(())
}

/// Under systemd (`Type=notify`, `NotifyAccess=all`), says the router is ready; a router
/// that took over says it is the service's main process now, so that the old one's exit
/// is not taken for the service's.
fn tell_systemd(takeover: bool) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let mut message = String::from("READY=1\n");
    if takeover {
        message.push_str(&format!("MAINPID={}\n", std::process::id()));
    }
    let sent = (|| -> std::io::Result<()> {
        use std::os::linux::net::SocketAddrExt;
        let datagram = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = socket.as_encoded_bytes();
        match bytes.strip_prefix(b"@") {
            Some(name) => {
                datagram.send_to_addr(message.as_bytes(), &std::os::unix::net::SocketAddr::from_abstract_name(name)?)?
            }
            None => datagram.send_to(message.as_bytes(), &socket)?,
        };
        Ok(())
    })();
    if let Err(e) = sent {
        tracing::warn!("telling systemd the router is ready: {e}");
    }
}

/// A Unix socket's path must fit in 108 bytes.
fn check_socket_path(socket: &Path) -> Result<()> {
    if socket.as_os_str().len() >= 104 {
        bail!(
            "the data dir's path is too long for the router's control socket ({}); use a shorter --data-dir",
            socket.display()
        );
    }
    Ok(())
}

fn load_table(path: &Path) -> Result<Option<Table>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Saves the table the router now serves. The router serves it whether or not it could
/// be saved: a full disk must not turn a change already in force into an error that the
/// control plane retries (the file is only what a router started from scratch reads).
/// Says so once when saving starts failing, and once when it works again.
fn keep_table(path: &Path, table: &Table) {
    static FAILING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    match save_table(path, table) {
        Ok(()) => {
            if FAILING.swap(false, std::sync::atomic::Ordering::Relaxed) {
                tracing::info!("the routing table is saved to {} again", path.display());
            }
        }
        Err(e) => {
            if !FAILING.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    "the routing table in force could not be saved to {}: {e:#}; it serves all the same, and is saved again with the next change",
                    path.display()
                );
            }
        }
    }
}

/// Writes the table atomically: a reader (or a reboot) sees the old file or the new one.
fn save_table(path: &Path, table: &Table) -> Result<()> {
    let tmp: PathBuf = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(table)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
