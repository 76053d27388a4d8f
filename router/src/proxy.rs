//! The proxy's request path: pick a backend, forward, stream the answer back, count.

use super::hosts::{Decision, Front};
use super::stats::VersionStats;
use super::table::Backend;
use super::table::{Choice, EJECT_AFTER_FAILURES};
use super::{AppRoute, Retirement, RouterEvent};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

type Body = BoxBody<Bytes, hyper::Error>;
type HttpClient = Client<HttpConnector, Body>;

/// The backend connection pools of one router thread: HTTP/1.1, and h2c for the apps
/// whose replicas speak it (gRPC).
struct Clients {
    http1: HttpClient,
    h2c: HttpClient,
}

impl Clients {
    fn new() -> Clients {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let http1 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(512)
            .build(connector.clone());
        let h2c = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .timer(hyper_util::rt::TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Clients { http1, h2c }
    }
}

/// How long a retiring router keeps an idle keep-alive connection open: a client that
/// keeps sending gets its next answer with `Connection: close` meanwhile, and reconnects
/// to the router process that took over instead of racing a close.
const RETIRE_GRACE: Duration = Duration::from_secs(1);

/// What a listener serves: one app (its own port), or every app by host (an entrypoint).
#[derive(Clone)]
pub enum Target {
    App(Arc<AppRoute>),
    Hosts(Arc<Front>),
}

impl Target {
    /// The app that answers `req`, or the answer to a request no app takes (an unknown
    /// host, an ACME challenge, a redirect to HTTPS).
    fn route(&self, req: &Request<Incoming>, conn: ClientConn) -> Result<Arc<AppRoute>, Response<Body>> {
        let front = match self {
            Target::App(route) => return Ok(route.clone()),
            Target::Hosts(front) => front,
        };
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri().host());
        let Some(host) = host else {
            return Err(plain(StatusCode::BAD_REQUEST, "400 the request names no host\n".to_string()));
        };
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let routes = front.hosts.load();
        Err(match front.decide(&routes, host, path, conn.https) {
            Decision::Proxy(route) => return Ok(route.clone()),
            Decision::Challenge(answer) => plain(StatusCode::OK, answer),
            Decision::Redirect(url) => {
                let mut response = plain(StatusCode::PERMANENT_REDIRECT, format!("308 moved to {url}\n"));
                if let Ok(location) = HeaderValue::from_str(&url) {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                response
            }
            Decision::Unknown(host) => {
                plain(StatusCode::NOT_FOUND, format!("404 no app is bound to host {host} on this address\n"))
            }
        })
    }

    fn name(&self) -> &str {
        match self {
            Target::App(route) => &route.name,
            Target::Hosts(_) => "the entrypoint",
        }
    }
}

/// How a client is connected: from where, over TLS or not, in HTTP/2 or not.
#[derive(Clone, Copy)]
struct ClientConn {
    remote: SocketAddr,
    https: bool,
    h2: bool,
}

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` until the router retires, and serves each: plain
/// HTTP/1.1, or, with `tls`, HTTPS in HTTP/2 or HTTP/1.1 as the client's ALPN chose.
pub async fn serve(listener: TcpListener, target: Target, retirement: Arc<Retirement>, tls: Option<TlsAcceptor>) {
    // Shared by every connection of this thread: a request clones one Arc, not the pools.
    let client = Arc::new(Clients::new());
    let retired = retirement.retired();
    tokio::pin!(retired);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut retired => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed on {}: {e}", target.name());
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let target = target.clone();
        let client = client.clone();
        let retirement = retirement.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _open = retirement.open();
            let Some(tls) = tls else {
                let conn = ClientConn { remote, https: false, h2: false };
                return serve_connection(TokioIo::new(stream), conn, target, client, retirement).await;
            };
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await else { return };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            let conn = ClientConn { remote, https: true, h2 };
            serve_connection(TokioIo::new(stream), conn, target, client, retirement).await;
        });
    }
}

/// Drives a connection; once the router retires, lets it finish what it is doing for
/// `RETIRE_GRACE`, then shuts it down gracefully. (A macro: hyper's HTTP/1.1 connection
/// with upgrades and its HTTP/2 connection share no trait for `graceful_shutdown`.)
macro_rules! until_retired {
    ($connection:ident, $retirement:ident) => {{
        tokio::pin!($connection);
        tokio::select! {
            _ = $connection.as_mut() => return,
            () = $retirement.retired() => {}
        }
        tokio::select! {
            _ = $connection.as_mut() => return,
            () = tokio::time::sleep(RETIRE_GRACE) => {}
        }
        $connection.as_mut().graceful_shutdown();
        let _ = $connection.await;
    }};
}

/// Serves one client connection until it closes, or, once the router retires, until its
/// request in flight is answered (HTTP/1.1: with `Connection: close`; HTTP/2: GOAWAY).
async fn serve_connection<I>(io: I, conn: ClientConn, target: Target, client: Arc<Clients>, retirement: Arc<Retirement>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = {
        let retirement = retirement.clone();
        service_fn(move |req| {
            // Read as the request comes (no shared counter touched per request): a request
            // that was under way at the handover closes its connection with the next one.
            let close = !conn.h2 && retirement.retiring();
            let answer = target.route(&req, conn).map(|route| handle(route, client.clone(), conn, req));
            async move {
                let mut response = match answer {
                    Ok(answer) => answer.await?,
                    Err(refused) => refused,
                };
                if close && response.status() != StatusCode::SWITCHING_PROTOCOLS {
                    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    if conn.h2 {
        let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .serve_connection(io, service);
        until_retired!(connection, retirement);
    } else {
        let connection =
            hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(io, service).with_upgrades();
        until_retired!(connection, retirement);
    }
}

/// The cookie that carries a client's sticky id.
pub const STICKY_COOKIE: &str = "hivemind_client";
/// The request header that asks for a version (or variant) by name: A/B overrides and
/// previews of a version that has no weight yet. It counts only with the app's preview key.
pub const VARIANT_HEADER: &str = "x-hivemind-variant";
/// The request header, or cookie, that carries the app's preview key
/// (`hivemind app preview-key`).
pub const PREVIEW_HEADER: &str = "x-hivemind-preview";
pub const PREVIEW_COOKIE: &str = "hivemind_preview";

/// Whether the request shows the app's preview key, in the header or the cookie. Compared
/// in constant time: a timing difference must not leak the key.
fn shows_preview_key(table: &super::table::RouteTable, headers: &HeaderMap) -> bool {
    let Some(key) = table.preview_key.as_deref() else { return false };
    let matches = |shown: &str| {
        shown.len() == key.len() && shown.bytes().zip(key.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    };
    let in_header = headers.get(PREVIEW_HEADER).and_then(|v| v.to_str().ok()).is_some_and(|v| matches(v.trim()));
    in_header
        || headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).any(
            |pair| pair.trim().split_once('=').is_some_and(|(name, value)| name == PREVIEW_COOKIE && matches(value)),
        )
}

async fn handle(
    route: Arc<AppRoute>,
    clients: Arc<Clients>,
    conn: ClientConn,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let n = route.counter.fetch_add(1, Relaxed);
    let table = route.table.load_full();

    // A version chosen by name is a privilege: only with the app's preview key.
    let forced = req
        .headers()
        .get(VARIANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|_| shows_preview_key(&table, req.headers()));
    let mut new_client = None;
    let choice = match &forced {
        Some(version) => Choice::Forced(version, n),
        None if table.sticky => Choice::Sticky(sticky_client(req.headers()).unwrap_or_else(|| {
            let id = fastrand::u64(..);
            new_client = Some(id);
            id
        })),
        None => Choice::Schedule(n),
    };
    let Some((pool, backend)) = table.pick(choice, None) else {
        route.unroutable.fetch_add(1, Relaxed);
        return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, format!("503 no healthy backend for app {}\n", route.name)));
    };
    // A request without a body that got no answer can go to another backend: the
    // first one never answered, and idempotent methods may be repeated.
    let retryable = is_idempotent(req.method()) && req.body().is_end_stream();
    let client_upgrade = req.headers().contains_key(header::UPGRADE).then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    // The headers are rewritten in place; only a retryable request keeps a copy.
    let mut headers = std::mem::take(&mut parts.headers);
    forward_headers(&mut headers, &parts.uri, conn);
    // The key is the router's business, not the app's (nor its logs').
    headers.remove(PREVIEW_HEADER);
    strip_preview_cookie(&mut headers);
    let spare = retryable.then(|| headers.clone());

    let mut attempt = (pool.stats.clone(), backend.clone());
    let mut request = build(&parts, headers, &attempt.1.address, body.boxed());
    loop {
        let (stats, backend) = &attempt;
        stats.requests.fetch_add(1, Relaxed);
        let guard = InFlight::new(backend.clone(), stats.clone());
        let client = if table.h2c { &clients.h2c } else { &clients.http1 };
        match client.request(request).await {
            Ok(mut response) => {
                let status = response.status();
                stats.record(status.as_u16(), started.elapsed().as_secs_f64() * 1000.0);
                if let Some(goal) = &table.goal_header
                    && response.headers().contains_key(goal)
                {
                    stats.goals.fetch_add(1, Relaxed);
                }
                if conn.h2 {
                    // Connection-specific headers mean nothing in HTTP/2 (hyper drops them,
                    // with a warning each time).
                    for h in [header::CONNECTION, header::TRANSFER_ENCODING, header::UPGRADE] {
                        response.headers_mut().remove(h);
                    }
                    response.headers_mut().remove(HeaderName::from_static("keep-alive"));
                }
                if matches!(status.as_u16(), 502..=504) {
                    eject_on_failure(&route, backend);
                } else {
                    backend.record_success();
                }
                if let Some(id) = new_client {
                    let cookie = format!("{STICKY_COOKIE}={id:016x}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax");
                    if let Ok(v) = HeaderValue::from_str(&cookie) {
                        response.headers_mut().append(header::SET_COOKIE, v);
                    }
                }
                if status == StatusCode::SWITCHING_PROTOCOLS {
                    if let Some(client_upgrade) = client_upgrade {
                        tunnel(client_upgrade, hyper::upgrade::on(&mut response), guard);
                    }
                    let (parts, _) = response.into_parts();
                    return Ok(Response::from_parts(parts, Empty::new().map_err(|never| match never {}).boxed()));
                }
                let (parts, body) = response.into_parts();
                let body = Tracked { inner: body, _guard: guard }.boxed();
                return Ok(Response::from_parts(parts, body));
            }
            Err(e) => {
                stats.connection_errors.fetch_add(1, Relaxed);
                eject_on_failure(&route, backend);
                let retry = if retryable { table.pick(choice, Some(&backend.id)) } else { None };
                match retry {
                    Some((pool, next)) => {
                        tracing::debug!(app = %route.name, backend = %backend.id, "no answer ({e}), retrying on {}", next.id);
                        attempt = (pool.stats.clone(), next.clone());
                        let empty = Empty::new().map_err(|never| match never {}).boxed();
                        let headers = spare.clone().unwrap_or_default();
                        request = build(&parts, headers, &next.address, empty);
                    }
                    None => {
                        stats.record(502, started.elapsed().as_secs_f64() * 1000.0);
                        let message = format!("502 backend {} of app {} failed: {e}\n", backend.id, route.name);
                        return Ok(plain(StatusCode::BAD_GATEWAY, message));
                    }
                }
            }
        }
    }
}

/// Counts a failed exchange against a backend, and tells the engine when it ejects it.
fn eject_on_failure(route: &AppRoute, backend: &Backend) {
    if backend.record_failure() {
        tracing::warn!(app = %route.name, backend = %backend.id, "ejected after {EJECT_AFTER_FAILURES} failures in a row");
        route.notify(RouterEvent::Ejected {
            app: route.name.clone(),
            replica: backend.id.clone(),
            version: backend.version.clone(),
        });
    }
}

/// Joins an upgraded client connection (WebSocket and the like) to the backend's, byte
/// for byte, until either side closes. The request counts as in flight until then.
fn tunnel(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade, guard: InFlight) {
    tokio::spawn(async move {
        let _guard = guard;
        if let (Ok(client), Ok(backend)) = tokio::join!(client, backend) {
            let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(backend)).await;
        }
    });
}

/// The sticky id in the client's cookie, if it sent one.
fn sticky_client(headers: &HeaderMap) -> Option<u64> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == STICKY_COOKIE).then(|| u64::from_str_radix(value, 16).ok()).flatten()
    })
}

/// Takes the preview key's cookie out of the request's cookies, keeping the others.
fn strip_preview_cookie(headers: &mut HeaderMap) {
    let cookies: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    let prefix = format!("{PREVIEW_COOKIE}=");
    if !cookies.iter().any(|v| v.to_str().is_ok_and(|v| v.contains(&prefix))) {
        return;
    }
    headers.remove(header::COOKIE);
    for value in cookies {
        let Ok(text) = value.to_str() else {
            headers.append(header::COOKIE, value);
            continue;
        };
        let kept: Vec<&str> = text.split(';').map(str::trim).filter(|pair| !pair.starts_with(&prefix)).collect();
        if !kept.is_empty()
            && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
        {
            headers.append(header::COOKIE, v);
        }
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE)
}

/// Drops hop-by-hop headers (keeping an upgrade) and adds X-Forwarded-*. An HTTP/2
/// request names its host in the URI, not a header: the backend gets it as `Host`.
fn forward_headers(headers: &mut HeaderMap, uri: &http::Uri, conn: ClientConn) {
    let remote = conn.remote;
    if !headers.contains_key(header::HOST)
        && let Some(authority) = uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        headers.insert(header::HOST, host);
    }
    let upgrade = headers.get(header::UPGRADE).cloned();
    // `TE: trailers` is the one TE that crosses a proxy: gRPC needs it.
    let trailers = headers.get_all(header::TE).iter().any(|v| v.to_str().is_ok_and(|v| v.contains("trailers")));
    for h in [header::CONNECTION, header::PROXY_AUTHORIZATION, header::TE, header::TRAILER, header::UPGRADE] {
        headers.remove(h);
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    headers.remove(HeaderName::from_static("keep-alive"));
    if let Some(up) = upgrade {
        headers.insert(header::UPGRADE, up);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let ip = remote.ip().to_string();
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    let proto = if conn.https { "https" } else { "http" };
    headers.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static(proto));
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
}

fn build(parts: &http::request::Parts, headers: HeaderMap, address: &str, body: Body) -> Request<Body> {
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = format!("http://{address}{path}").parse().unwrap_or_else(|_| http::Uri::from_static("/"));
    *request.headers_mut() = headers;
    request
}

fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(text)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// Counts a request as in flight on its backend and version until it is dropped, which
/// is when the response body has been sent (or the client went away).
struct InFlight {
    backend: Arc<Backend>,
    stats: Arc<VersionStats>,
}

impl InFlight {
    fn new(backend: Arc<Backend>, stats: Arc<VersionStats>) -> InFlight {
        backend.in_flight.fetch_add(1, Relaxed);
        stats.in_flight.fetch_add(1, Relaxed);
        InFlight { backend, stats }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.backend.in_flight.fetch_sub(1, Relaxed);
        self.stats.in_flight.fetch_sub(1, Relaxed);
    }
}

/// A response body streamed through unchanged, holding its request's in-flight count.
struct Tracked {
    inner: Incoming,
    _guard: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::{HeaderMap, HeaderValue, header, strip_preview_cookie};

    #[test]
    fn the_preview_cookie_never_reaches_the_app_and_the_others_do() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; hivemind_preview=k3y; hivemind_client=00ff"));
        headers.append(header::COOKIE, HeaderValue::from_static("hivemind_preview=k3y"));
        strip_preview_cookie(&mut headers);
        let left: Vec<&str> = headers.get_all(header::COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(left, vec!["a=1; hivemind_client=00ff"]);
    }
}
