//! The self-test (the app serves itself over a loopback connection), and the small HTTP
//! client that reads its answers, which the tests share.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use super::App;
use super::connection::handle_connection;
use crate::config::Config;

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
