//! Minimal HTTP/1.1 over plain TCP: requests to a server or through an app's router, and
//! free loopback ports.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A minimal HTTP/1.1 GET over a fresh connection; returns (status, body).
pub fn http_get(url: &str) -> (u16, String) {
    http_request("GET", url, None)
}

pub fn http_request(method: &str, url: &str, body: Option<(&str, &[u8])>) -> (u16, String) {
    http_request_with(method, url, body, None)
}

/// GETs `path` from 127.0.0.1:`port` over a fresh connection, naming `host` in the Host
/// header (as a browser sent to `http://host/` would); returns (status, body).
pub fn http_get_as(port: u16, host: &str, path: &str) -> (u16, String) {
    let stream = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => return (0, format!("connect failed: {e}")),
    };
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    exchange(stream, request.as_bytes())
}

/// Sends a whole request and reads the answer to the end; returns (status, body).
fn exchange(mut stream: TcpStream, request: &[u8]) -> (u16, String) {
    if stream.write_all(request).is_err() {
        return (0, "write failed".into());
    }
    let mut response = Vec::new();
    if stream.read_to_end(&mut response).is_err() && response.is_empty() {
        return (0, "read failed".into());
    }
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    (status, body)
}

/// A minimal HTTP/1.1 request over a fresh connection, with a bearer token if given.
pub fn http_request_with(method: &str, url: &str, body: Option<(&str, &[u8])>, token: Option<&str>) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let stream = match TcpStream::connect(host) {
        Ok(s) => s,
        Err(e) => return (0, format!("connect failed: {e}")),
    };
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some((content_type, bytes)) = body {
        request.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", bytes.len()));
    }
    request.push_str("\r\n");
    let mut data = request.into_bytes();
    if let Some((_, bytes)) = body {
        data.extend_from_slice(bytes);
    }
    exchange(stream, &data)
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// GETs `/` through an app's router `n` times and returns the bodies, trimmed.
pub fn versions_served(port: u16, n: usize) -> Vec<String> {
    (0..n).map(|_| http_get(&format!("http://127.0.0.1:{port}/")).1.trim().to_string()).collect()
}

/// GETs `/` through a router as one sticky client: sends `cookie` if given, and returns
/// the cookie to send next time with the body.
pub fn sticky_get(port: u16, cookie: Option<&str>) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let cookie_line = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    write!(stream, "GET / HTTP/1.1\r\nHost: x\r\n{cookie_line}Connection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let set = head.lines().find_map(|l| {
        l.to_ascii_lowercase().starts_with("set-cookie:").then(|| l[11..].trim().split(';').next().unwrap().to_string())
    });
    (set.or(cookie.map(str::to_string)).unwrap_or_default(), body.trim().to_string())
}

/// A free TCP port on loopback (free when asked: bind it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An async HTTP client for tests that speak to the router directly. reqwest is built
/// without a crypto provider of its own (the product hands it ring): the tests install
/// ring as the process's default once.
pub fn reqwest_client() -> reqwest::Client {
    static RING: std::sync::Once = std::sync::Once::new();
    RING.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::new()
}

/// The body of `GET /` on `port` for host `host`, with `headers` (raw, one per line).
pub fn raw_get(port: u16, host: &str, headers: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET / HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.split("\r\n\r\n").nth(1).unwrap_or_default().trim().to_string()
}
