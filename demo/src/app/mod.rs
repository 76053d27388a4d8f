//! The demo application: routes, fault injection, metrics, the accept loop and the self-test.

mod connection;
mod respond;
mod rng;
mod routes;
mod self_test;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::Config;

pub use connection::*;
pub use self_test::*;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

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
}
