//! The demo application: routes, fault injection, metrics, the accept loop and the self-test.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{Config, MAX_DELAY_MS};
use crate::http::{self, Body, Conn, ConnectionHeader, HeadError, ResponseHead, Version};

/// How long a connection may sit idle, or stall mid-request, before it is closed. Longer than
/// the usual client pool idle timeouts (hyper: 90 s), so clients close first.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connection threads need little stack: all buffers live on the heap.
const THREAD_STACK: usize = 256 * 1024;
/// `/slow` without `?ms=`.
const DEFAULT_SLOW_MS: u64 = 1000;

const TEXT: &str = "text/plain; charset=utf-8";
const METRICS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub struct App {
    config: Config,
    requests: AtomicU64,
    errors: AtomicU64,
}

impl App {
    pub fn new(config: Config) -> Self {
        App { config, requests: AtomicU64::new(0), errors: AtomicU64::new(0) }
    }

    fn record(&self, status: u16) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `/`, or `/slow` with its extra delay.
    Version {
        delay_ms: u64,
    },
    Health,
    Metrics,
    BadQuery,
    MethodNotAllowed,
    NotFound,
}

fn route(method: &str, path: &str, query: &str) -> Route {
    let known = matches!(path, "/" | "/health" | "/slow" | "/metrics");
    if !known {
        return Route::NotFound;
    }
    if method != "GET" && method != "HEAD" {
        return Route::MethodNotAllowed;
    }
    match path {
        "/" => Route::Version { delay_ms: 0 },
        "/health" => Route::Health,
        "/metrics" => Route::Metrics,
        _ => match slow_ms(query) {
            Some(ms) => Route::Version { delay_ms: ms },
            None => Route::BadQuery,
        },
    }
}

/// The `ms` parameter of `/slow`: [`DEFAULT_SLOW_MS`] when absent, `None` when invalid.
fn slow_ms(query: &str) -> Option<u64> {
    let Some(value) = query.split('&').find_map(|pair| pair.strip_prefix("ms=")) else {
        return Some(DEFAULT_SLOW_MS);
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|&ms| ms <= MAX_DELAY_MS)
}

/// Everything needed to answer a request, copied out of the read buffer.
#[derive(Debug, Clone, Copy)]
struct Plan {
    route: Route,
    head_only: bool,
    body: Body,
    connection: ConnectionHeader,
    expect_continue: bool,
}

impl Plan {
    fn new(req: &http::Request<'_>) -> Self {
        let connection = match (req.keep_alive, req.version) {
            (false, _) => ConnectionHeader::Close,
            (true, Version::Http10) => ConnectionHeader::KeepAlive,
            (true, Version::Http11) => ConnectionHeader::None,
        };
        Plan {
            route: route(req.method, req.path, req.query),
            head_only: req.method == "HEAD",
            body: req.body,
            connection,
            expect_continue: req.expect_continue && req.body != Body::None,
        }
    }
}

/// Per-connection scratch space, reused for every request.
struct Scratch {
    body: Vec<u8>,
    out: Vec<u8>,
    rng: Rng,
}

impl App {
    /// Builds the response for `plan` into `scratch.out`, sleeping first for injected latency.
    fn respond(&self, plan: &Plan, scratch: &mut Scratch) {
        let body = &mut scratch.body;
        body.clear();
        let mut extra = [("X-Demo-Version", self.config.version.as_str()), ("", "")];
        let mut content_type = TEXT;
        let status = match plan.route {
            Route::Version { delay_ms } => {
                let delay = delay_ms.saturating_add(self.config.latency_ms);
                if delay > 0 {
                    thread::sleep(Duration::from_millis(delay));
                }
                if scratch.rng.chance(self.config.error_rate) {
                    body.extend_from_slice(b"injected error\n");
                    500
                } else {
                    body.extend_from_slice(self.config.version.as_bytes());
                    body.push(b'\n');
                    200
                }
            }
            Route::Health if self.config.fail_health => {
                body.extend_from_slice(b"unhealthy");
                503
            }
            Route::Health => {
                body.extend_from_slice(b"ok");
                200
            }
            Route::Metrics => {
                // Count this scrape before rendering, so the numbers include it.
                self.record(200);
                self.write_metrics(body);
                content_type = METRICS_TEXT;
                200
            }
            Route::BadQuery => {
                let _ = writeln!(body, "ms must be a whole number up to {MAX_DELAY_MS}");
                400
            }
            Route::MethodNotAllowed => {
                extra[1] = ("Allow", "GET, HEAD");
                body.extend_from_slice(b"method not allowed\n");
                405
            }
            Route::NotFound => {
                body.extend_from_slice(b"not found\n");
                404
            }
        };
        if plan.route != Route::Metrics {
            self.record(status);
        }
        let headers = if extra[1].0.is_empty() { &extra[..1] } else { &extra[..] };
        scratch.out.clear();
        http::write_head(
            &mut scratch.out,
            &ResponseHead {
                status,
                content_type,
                content_length: body.len(),
                headers,
                connection: plan.connection,
                date: unix_now(),
            },
        );
        if !plan.head_only {
            scratch.out.extend_from_slice(body);
        }
    }

    fn write_metrics(&self, out: &mut Vec<u8>) {
        let _ = write!(
            out,
            "# HELP demo_requests_total HTTP requests answered.\n\
             # TYPE demo_requests_total counter\n\
             demo_requests_total {}\n\
             # HELP demo_errors_total HTTP responses with a 5xx status.\n\
             # TYPE demo_errors_total counter\n\
             demo_errors_total {}\n\
             # HELP demo_info The demo app's version and knobs.\n\
             # TYPE demo_info gauge\n\
             demo_info{{version=\"{}\",fail_health=\"{}\",error_rate=\"{}\",latency_ms=\"{}\"}} 1\n",
            self.requests.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            // Versions are visible ASCII; escape what the exposition format needs escaped.
            self.config.version.replace('\\', "\\\\").replace('"', "\\\""),
            self.config.fail_health,
            self.config.error_rate,
            self.config.latency_ms,
        );
    }

    /// Writes a response that ends the connection (protocol errors).
    fn respond_and_close(&self, conn: &mut Conn<TcpStream>, status: u16, message: &str, scratch: &mut Scratch) {
        self.record(status);
        scratch.out.clear();
        http::write_head(
            &mut scratch.out,
            &ResponseHead {
                status,
                content_type: TEXT,
                content_length: message.len() + 1,
                headers: &[("X-Demo-Version", self.config.version.as_str())],
                connection: ConnectionHeader::Close,
                date: unix_now(),
            },
        );
        scratch.out.extend_from_slice(message.as_bytes());
        scratch.out.push(b'\n');
        if conn.stream_mut().write_all(&scratch.out).is_ok() {
            // Let the response reach the client before the socket closes: stop sending, then
            // swallow what the client still sends for a moment.
            let stream = conn.stream_mut();
            let _ = stream.shutdown(Shutdown::Write);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            conn.drain(256 * 1024);
        }
    }
}

/// Serves one connection until the client closes it, asks to, or misbehaves.
pub fn handle_connection(stream: TcpStream, app: &App) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut conn = Conn::new(stream);
    let mut scratch = Scratch { body: Vec::with_capacity(1024), out: Vec::with_capacity(2048), rng: Rng::seeded() };
    loop {
        let len = match conn.next_head() {
            Ok(Some(len)) => len,
            Ok(None) | Err(HeadError::Io | HeadError::Truncated) => return,
            Err(HeadError::TooLarge) => {
                let msg = "request head too large";
                return app.respond_and_close(&mut conn, 431, msg, &mut scratch);
            }
        };
        let plan = http::parse_head(conn.head(len)).map(|req| Plan::new(&req));
        conn.consume(len);
        let plan = match plan {
            Ok(plan) => plan,
            Err(e) => {
                return app.respond_and_close(&mut conn, e.status(), e.message(), &mut scratch);
            }
        };
        if plan.expect_continue && conn.stream_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
            return;
        }
        match conn.discard_body(plan.body) {
            Ok(()) => {}
            Err(http::BodyError::Malformed(msg)) => {
                return app.respond_and_close(&mut conn, 400, msg, &mut scratch);
            }
            Err(http::BodyError::Io) => return,
        }
        app.respond(&plan, &mut scratch);
        if conn.stream_mut().write_all(&scratch.out).is_err() {
            return;
        }
        if plan.connection == ConnectionHeader::Close {
            let _ = conn.stream_mut().shutdown(Shutdown::Write);
            return;
        }
    }
}

/// Accepts connections forever, one thread each.
pub fn serve(listener: TcpListener, app: Arc<App>) -> ! {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let app = Arc::clone(&app);
                let spawned =
                    thread::Builder::new().stack_size(THREAD_STACK).spawn(move || handle_connection(stream, &app));
                if let Err(e) = spawned {
                    // The connection is dropped with the closure.
                    eprintln!("hivemind-demo: cannot start a connection thread: {e}");
                    thread::sleep(Duration::from_millis(10));
                }
            }
            Err(e) => match e.kind() {
                io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted => {}
                _ => {
                    // For example EMFILE: back off instead of spinning.
                    eprintln!("hivemind-demo: accept failed: {e}");
                    thread::sleep(Duration::from_millis(50));
                }
            },
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// xorshift64 seeded from the time, the process id and a counter; one per connection.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self::from_seed(nanos ^ (u64::from(std::process::id()) << 32) ^ count.rotate_left(17))
    }

    fn from_seed(seed: u64) -> Self {
        // splitmix64 finaliser, so that close seeds give unrelated states.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x9E37_79B9_7F4A_7C15 } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }
}

/// Serves `/` and `/health` to itself over one keep-alive connection on a loopback port.
/// Error injection and latency are switched off so that the check is deterministic.
pub fn self_test(config: &Config) -> Result<String, String> {
    let config = Config { error_rate: 0.0, latency_ms: 0, ..config.clone() };
    let expected_health = if config.fail_health { 503 } else { 200 };
    let version = config.version.clone();
    let app = App::new(config);

    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("cannot bind a loopback port: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("cannot read the bound address: {e}"))?;

    thread::scope(|scope| {
        scope.spawn(|| {
            // Serve exactly one connection; the client's last request closes it.
            if let Ok((stream, _)) = listener.accept() {
                handle_connection(stream, &app);
            }
        });
        // Whatever happens below, make sure the accept above returns.
        let result = (|| {
            let mut client = TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            let timeout = Some(Duration::from_secs(5));
            let _ = client.set_read_timeout(timeout);
            let _ = client.set_write_timeout(timeout);
            client
                .write_all(
                    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n\
                      GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                )
                .map_err(|e| format!("cannot send requests: {e}"))?;
            let mut pending = Vec::new();
            let root = read_response(&mut client, &mut pending, false).map_err(|e| format!("GET /: {e}"))?;
            let want = format!("{version}\n");
            if root.status != 200
                || root.body != want.as_bytes()
                || root.header("x-demo-version") != Some(version.as_str())
            {
                return Err(format!("GET / answered {root:?}, expected 200 {want:?}"));
            }
            let health = read_response(&mut client, &mut pending, false).map_err(|e| format!("GET /health: {e}"))?;
            if health.status != expected_health {
                return Err(format!("GET /health answered {}, expected {expected_health}", health.status));
            }
            let mut rest = [0u8; 1];
            match client.read(&mut rest) {
                Ok(0) if pending.is_empty() => {}
                _ => {
                    return Err("the server did not close the connection after Connection: close".into());
                }
            }
            Ok(format!("self-test ok: served {version} on {addr}"))
        })();
        if result.is_err() {
            // Unblock the accept if the client never connected.
            let _ = TcpStream::connect(addr);
        }
        result
    })
}

/// A parsed response, for the self-test and the tests.
#[derive(Debug)]
pub struct ClientResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ClientResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads one Content-Length-framed response; `pending` carries bytes read past it.
pub fn read_response(
    stream: &mut impl Read,
    pending: &mut Vec<u8>,
    head_request: bool,
) -> Result<ClientResponse, String> {
    let mut chunk = [0u8; 4096];
    let mut fill = |pending: &mut Vec<u8>| -> Result<(), String> {
        match stream.read(&mut chunk) {
            Ok(0) => Err("connection closed early".to_string()),
            Ok(n) => {
                pending.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read failed: {e}")),
        }
    };
    let head_len = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(pending)?;
    };
    let head = String::from_utf8_lossy(&pending[..head_len]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .ok_or("response without Content-Length")?;
    let length = if head_request { 0 } else { length };
    while pending.len() < head_len + length {
        fill(pending)?;
    }
    let body = pending[head_len..head_len + length].to_vec();
    pending.drain(..head_len + length);
    Ok(ClientResponse { status, headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config { version: "v2".into(), fail_health: false, error_rate: 0.0, latency_ms: 0, port: 0 }
    }

    /// Starts a server on a loopback port; the thread lives until the test process exits.
    fn start(config: Config) -> std::net::SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Arc::new(App::new(config));
        thread::spawn(move || serve(listener, app));
        addr
    }

    fn connect(addr: std::net::SocketAddr) -> TcpStream {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream
    }

    fn get(stream: &mut TcpStream, pending: &mut Vec<u8>, target: &str) -> ClientResponse {
        let request = format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        read_response(stream, pending, false).unwrap()
    }

    fn assert_closed(stream: &mut TcpStream) {
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "unexpected bytes {rest:?}");
    }

    #[test]
    fn routes_over_one_keep_alive_connection() {
        let addr = start(config());
        let mut s = connect(addr);
        let mut p = Vec::new();

        let r = get(&mut s, &mut p, "/");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"v2\n"[..]));
        assert_eq!(r.header("X-Demo-Version"), Some("v2"));
        assert_eq!(r.header("Connection"), None);
        assert!(r.header("X-Demo-Goal").is_none());

        let r = get(&mut s, &mut p, "/health");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));

        let r = get(&mut s, &mut p, "/slow?ms=30");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"v2\n"[..]));

        let r = get(&mut s, &mut p, "/slow?ms=abc");
        assert_eq!(r.status, 400);

        let r = get(&mut s, &mut p, "/nope");
        assert_eq!(r.status, 404);

        s.write_all(b"DELETE / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        let r = read_response(&mut s, &mut p, false).unwrap();
        assert_eq!((r.status, r.header("Allow")), (405, Some("GET, HEAD")));

        s.write_all(b"HEAD / HTTP/1.1\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut p, true).unwrap();
        assert_eq!((r.status, r.header("Content-Length")), (200, Some("3")));

        let r = get(&mut s, &mut p, "/metrics");
        assert_eq!(r.status, 200);
        let text = String::from_utf8(r.body).unwrap();
        assert!(text.contains("\ndemo_requests_total 8\n"), "{text}");
        assert!(text.contains("\ndemo_errors_total 0\n"), "{text}");
        assert!(text.contains("demo_info{version=\"v2\""), "{text}");
        assert!(p.is_empty());
    }

    #[test]
    fn pipelining_and_connection_close() {
        let addr = start(config());
        let mut s = connect(addr);
        s.write_all(
            b"GET /health HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut p = Vec::new();
        assert_eq!(read_response(&mut s, &mut p, false).unwrap().status, 200);
        assert_eq!(read_response(&mut s, &mut p, false).unwrap().status, 405);
        let last = read_response(&mut s, &mut p, false).unwrap();
        assert_eq!(last.header("Connection"), Some("close"));
        assert_closed(&mut s);
    }

    #[test]
    fn http10_keep_alive() {
        let addr = start(config());
        let mut s = connect(addr);
        let mut p = Vec::new();
        s.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut p, false).unwrap();
        assert_eq!(r.header("Connection"), Some("keep-alive"));
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut p, false).unwrap();
        assert_eq!(r.header("Connection"), Some("close"));
        assert_closed(&mut s);
    }

    #[test]
    fn expect_continue() {
        let addr = start(config());
        let mut s = connect(addr);
        s.write_all(b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n").unwrap();
        let mut interim = [0u8; 25];
        s.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        s.write_all(b"data").unwrap();
        let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
        assert_eq!(r.status, 405);
    }

    #[test]
    fn bad_requests_get_400_and_close() {
        let addr = start(config());
        for bad in [
            &b"GARBAGE\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            let mut s = connect(addr);
            s.write_all(bad).unwrap();
            let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
            assert_eq!(r.status, 400, "{bad:?}");
            assert_eq!(r.header("Connection"), Some("close"));
            assert_closed(&mut s);
        }
        let mut s = connect(addr);
        s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        s.write_all(&vec![b'a'; 20_000]).unwrap();
        let r = read_response(&mut s, &mut Vec::new(), false).unwrap();
        assert_eq!(r.status, 431);
        assert_closed(&mut s);

        // The server survives all that.
        let r = get(&mut connect(addr), &mut Vec::new(), "/");
        assert_eq!(r.status, 200);
    }

    #[test]
    fn fault_knobs() {
        let addr = start(Config { fail_health: true, error_rate: 1.0, latency_ms: 40, ..config() });
        let mut s = connect(addr);
        let mut p = Vec::new();
        let r = get(&mut s, &mut p, "/health");
        assert_eq!((r.status, r.body.as_slice()), (503, &b"unhealthy"[..]));
        let started = std::time::Instant::now();
        let r = get(&mut s, &mut p, "/");
        assert!(started.elapsed() >= Duration::from_millis(40));
        assert_eq!(r.status, 500);
        assert_eq!(r.header("X-Demo-Version"), Some("v2"));
        assert_eq!(get(&mut s, &mut p, "/slow?ms=1").status, 500);
        let text = String::from_utf8(get(&mut s, &mut p, "/metrics").body).unwrap();
        assert!(text.contains("\ndemo_requests_total 4\n"), "{text}");
        assert!(text.contains("\ndemo_errors_total 3\n"), "{text}");
    }

    #[test]
    fn self_test_passes() {
        let msg = self_test(&Config { error_rate: 1.0, latency_ms: 100_000, ..config() }).unwrap();
        assert!(msg.starts_with("self-test ok: served v2 on 127.0.0.1:"), "{msg}");
        let failing = Config { fail_health: true, ..config() };
        assert!(self_test(&failing).is_ok());
    }

    #[test]
    fn slow_query() {
        assert_eq!(slow_ms(""), Some(DEFAULT_SLOW_MS));
        assert_eq!(slow_ms("ms=50"), Some(50));
        assert_eq!(slow_ms("a=1&ms=7&ms=9"), Some(7));
        assert_eq!(slow_ms("ms="), None);
        assert_eq!(slow_ms("ms=-1"), None);
        assert_eq!(slow_ms("ms=600001"), None);
        assert_eq!(slow_ms("ms=99999999999999999999999"), None);
    }

    #[test]
    fn routing() {
        assert_eq!(route("GET", "/", ""), Route::Version { delay_ms: 0 });
        assert_eq!(route("HEAD", "/health", ""), Route::Health);
        assert_eq!(route("POST", "/metrics", ""), Route::MethodNotAllowed);
        assert_eq!(route("POST", "/other", ""), Route::NotFound);
        assert_eq!(route("GET", "/health/", ""), Route::NotFound);
        assert_eq!(route("get", "/", ""), Route::MethodNotAllowed);
    }

    #[test]
    fn rng_rates() {
        let mut rng = Rng::from_seed(42);
        assert!((0..1000).all(|_| !rng.chance(0.0)));
        assert!((0..1000).all(|_| rng.chance(1.0)));
        let hits = (0..100_000).filter(|_| rng.chance(0.2)).count();
        assert!((18_500..21_500).contains(&hits), "{hits}");
        assert_ne!(Rng::from_seed(1).next_u64(), Rng::from_seed(2).next_u64());
        assert_ne!(Rng::from_seed(0).0, 0);
    }
}
