//! The API port's own front: its connections accepted under limits, so that slow or
//! numerous clients cannot take it from everyone else. A client has `header_timeout` to
//! send its request's headers and `body_timeout` for its body; one address may hold
//! `per_address` connections and all together `total`. A connection over a limit is
//! closed at once; each refusal and timeout is counted for `/metrics`.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Serves one connection until it ends, or shuts it down gracefully (requests under way
/// finish) once the server stops. A macro: the connection's type differs with and
/// without TLS, and naming its bounds would say nothing more.
macro_rules! until_stopped {
    ($connection:expr, $stopped:expr) => {{
        let connection = $connection;
        tokio::pin!(connection);
        tokio::select! {
            ended = connection.as_mut() => ended,
            () = async { drop($stopped.wait_for(|s| *s).await) } => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
    }};
}

/// The API's certificate (`--api-tls-cert`, `--api-tls-key`): a token must never cross a
/// network in clear. HTTP/2 and HTTP/1.1 by ALPN.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// The certificate file, which the servers of a cluster also trust when one forwards
    /// a request to the leader.
    pub cert: std::path::PathBuf,
}

impl Tls {
    pub fn load(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<Tls> {
        use anyhow::Context;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect())
            .map_err(|e| anyhow::anyhow!("--api-tls-cert {}: not a PEM certificate chain ({e})", cert.display()))?;
        if chain.is_empty() {
            anyhow::bail!("--api-tls-cert {} holds no certificate (-----BEGIN CERTIFICATE-----)", cert.display());
        }
        let private = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| anyhow::anyhow!("--api-tls-key {}: not a PEM private key ({e})", key.display()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(hivemind_router::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .with_context(|| {
                format!("--api-tls-key {} does not go with --api-tls-cert {}", key.display(), cert.display())
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)), cert: cert.to_path_buf() })
    }
}

/// The API port's limits (`[api]` in `server.toml`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub per_address: usize,
    pub total: usize,
}

impl Default for Limits {
    /// Room for a CLI, a dashboard and a CI system at once from one address, and for a
    /// fleet of them, well inside the 65,536 open files the systemd unit allows.
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            per_address: 256,
            total: 4096,
        }
    }
}

/// What `/metrics` shows of the API port.
static REFUSED_TOTAL: AtomicU64 = AtomicU64::new(0);
static REFUSED_PER_ADDRESS: AtomicU64 = AtomicU64::new(0);
static TIMED_OUT: AtomicU64 = AtomicU64::new(0);

/// The API port's counts in the Prometheus text format.
pub fn prometheus(out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP hivemind_api_connections_refused_total API connections closed at once for a limit.");
    let _ = writeln!(out, "# TYPE hivemind_api_connections_refused_total counter");
    for (limit, count) in [("total", &REFUSED_TOTAL), ("per_address", &REFUSED_PER_ADDRESS)] {
        let _ = writeln!(out, "hivemind_api_connections_refused_total{{limit=\"{limit}\"}} {}", count.load(Relaxed));
    }
    let _ = writeln!(
        out,
        "# HELP hivemind_api_timeouts_total API connections closed for headers or a body sent too slowly."
    );
    let _ = writeln!(out, "# TYPE hivemind_api_timeouts_total counter");
    let _ = writeln!(out, "hivemind_api_timeouts_total {}", TIMED_OUT.load(Relaxed));
}

/// Whom a connection counts against: its address, or for IPv6 its /64, which one host
/// usually holds whole.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::from(segments)
            }
        },
        v4 => v4,
    }
}

/// Open connections, by client address.
#[derive(Default)]
struct Open {
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it gives its place back.
struct Place {
    open: Arc<Open>,
    address: IpAddr,
}

impl Open {
    fn admit(self: &Arc<Self>, address: IpAddr, limits: &Limits) -> Option<Place> {
        let mut by_address = self.by_address.lock().unwrap();
        let total: usize = by_address.values().sum();
        if total >= limits.total {
            REFUSED_TOTAL.fetch_add(1, Relaxed);
            return None;
        }
        let mine = by_address.entry(address).or_default();
        if *mine >= limits.per_address {
            REFUSED_PER_ADDRESS.fetch_add(1, Relaxed);
            return None;
        }
        *mine += 1;
        Some(Place { open: self.clone(), address })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut by_address = self.open.by_address.lock().unwrap();
        if let Some(n) = by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                by_address.remove(&self.address);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; then lets the requests under
/// way finish, for up to five seconds (an event stream never does).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Tls>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let open = Arc::new(Open::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of descriptors, say: wait a moment rather than spin.
                Err(e) => {
                    tracing::warn!("the API port could not accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(place) = open.admit(client_of(peer.ip()), &limits) else { continue };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let header_timeout = limits.header_timeout;
        let mut stopped = stopped.clone();
        let tls = tls.clone();
        tasks.spawn(async move {
            let _place = place;
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(header_timeout))
                .keep_alive_timeout(header_timeout);
            let ended = match tls {
                // The handshake gets the headers' time: a client that stalls in it is one
                // more slow client. Then ALPN says the protocol: no sniffing of first bytes,
                // which would wait without end on a client that sends none.
                Some(tls) => match tokio::time::timeout(header_timeout, tls.acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                        let builder = if h2 { builder.http2_only() } else { builder.http1_only() };
                        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        until_stopped!(connection, stopped)
                    }
                    Ok(Err(_)) => return,
                    Err(_) => {
                        TIMED_OUT.fetch_add(1, Relaxed);
                        return;
                    }
                },
                // Plain HTTP/1.1 (HTTP/2 comes by ALPN), so that the header timeout runs
                // from the start, even for a client that sends nothing.
                None => {
                    let builder = builder.http1_only();
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    until_stopped!(connection, stopped)
                }
            };
            if let Err(e) = ended
                && e.downcast_ref::<hyper::Error>().is_some_and(|e| e.is_timeout())
            {
                TIMED_OUT.fetch_add(1, Relaxed);
            }
        });
        // Reap the connections that ended, so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async { while tasks.join_next().await.is_some() {} }).await;
    Ok(())
}

/// The most a request body may hold: a plugin's component (the one route that takes
/// one), and 1 MiB for every other route (as `DefaultBodyLimit` says after this).
const MAX_COMPONENT: usize = 32 << 20;
const MAX_BODY: usize = 1 << 20;

/// A request's body read whole within `timeout`, or the request refused: a client that
/// trickles its body holds a connection no longer than that. It runs after the token
/// check, so only a holder of the token has a body read, and at most `MAX_BODY` of it.
pub(super) async fn body_deadline(
    axum::extract::State(timeout): axum::extract::State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    let refuse = |status: u16, message: String| {
        let error = crate::error::UserError::invalid(crate::error::Field::Body, message);
        super::ApiError(crate::error::UserError { status, ..error }).into_response()
    };
    let max = if parts.method == axum::http::Method::POST && parts.uri.path() == "/api/plugins" {
        MAX_COMPONENT
    } else {
        // One byte more than the limit, so that the route's own check says it is too large.
        MAX_BODY + 1
    };
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, max)).await {
        Ok(Ok(bytes)) => next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Ok(Err(e)) => refuse(413, format!("the request body could not be read whole: {e} (at most {} MiB)", max >> 20)),
        Err(_) => {
            TIMED_OUT.fetch_add(1, Relaxed);
            refuse(408, format!("the request body was not sent within {} s; send it at once", timeout.as_secs()))
        }
    }
}
