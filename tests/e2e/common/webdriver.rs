//! A real headless Chromium, driven through chromedriver's W3C WebDriver protocol: JSON
//! over HTTP, a dozen commands, so the tests speak it with a few lines of HTTP rather than
//! a WebDriver crate and its async stack.

use super::free_port;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// W3C's key for an element reference in a command's answer.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

/// Chromium's binary, as Debian installs it.
fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Browser {
    /// A fresh headless Chromium (its own profile, 1400×1000), or None when Chromium or
    /// chromedriver is not installed and HIVEMIND_REQUIRE_TOOLS is not set.
    pub fn start(test: &str) -> Option<Browser> {
        if !super::tools_available(test, &["chromedriver"]) {
            return None;
        }
        let Some(binary) = chromium() else {
            assert!(
                std::env::var("HIVEMIND_REQUIRE_TOOLS").as_deref() != Ok("1"),
                "{test}: HIVEMIND_REQUIRE_TOOLS=1 but Chromium is not installed; apt-get install chromium"
            );
            eprintln!("{test}: Chromium is not installed; skipped");
            return None;
        };
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while request("GET", &format!("{base}/status"), None).0 != 200 {
            assert!(Instant::now() < deadline, "chromedriver did not answer on {base}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--window-size=1400,1000", "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", profile.path().display())],
            },
        }}});
        let mut browser = Browser { driver, base, session: String::new(), _profile: profile };
        let answer = browser.call("POST", "/session", Some(capabilities));
        browser.session = answer["sessionId"].as_str().expect("a WebDriver session id").to_string();
        Some(browser)
    }

    /// One WebDriver command; its `value`. A WebDriver error fails the test with its message.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body).unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// One WebDriver command; its `value`, or the error WebDriver answered.
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = if path == "/session" {
            format!("{}/session", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let (status, text) = request(method, &url, body);
        let answer: Value = serde_json::from_str(&text).unwrap_or(json!({"value": {"error": text}}));
        let value = answer["value"].clone();
        if status != 200 {
            return Err(format!("{status} {value}"));
        }
        Ok(value)
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    /// The first element matching a CSS selector, if any.
    pub fn try_find(&self, css: &str) -> Option<String> {
        let found = self.call("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        found.as_array().and_then(|a| a.first()).map(|e| e[ELEMENT].as_str().unwrap().to_string())
    }

    /// Waits up to `timeout` for an element matching `css`.
    pub fn find(&self, css: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_find(css) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no element `{css}` on the page within {timeout:?}:\n{}",
                self.body_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks the element matching `css`; found again if the page redrew it in between.
    pub fn click(&self, css: &str) {
        for attempt in 0.. {
            let e = self.find(css, Duration::from_secs(10));
            match self.try_call("POST", &format!("/element/{e}/click"), Some(json!({}))) {
                Ok(_) => return,
                Err(why) if why.contains("stale element") && attempt < 5 => continue,
                Err(why) => panic!("clicking `{css}`: {why}"),
            }
        }
    }

    /// Types into a field (for a file input: the file's path, which uploads it).
    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css, Duration::from_secs(10));
        self.call("POST", &format!("/element/{e}/value"), Some(json!({"text": text})));
    }

    /// The text content of the first element matching `css` ("" when there is none).
    pub fn text(&self, css: &str) -> String {
        self.script("const e = document.querySelector(arguments[0]); return e ? e.textContent : '';", json!([css]))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn body_text(&self) -> String {
        self.text("body")
    }

    /// Runs `js` in the page (synchronously) with `args`; what it returns.
    pub fn script(&self, js: &str, args: Value) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": js, "args": args})))
    }

    /// Waits until `check` holds; fails with `what` and the page's text after `timeout`.
    pub fn wait(&self, what: &str, timeout: Duration, mut check: impl FnMut(&Browser) -> bool) {
        let deadline = Instant::now() + timeout;
        while !check(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}; the page shows:\n{}", self.body_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the text of `css` contains `needle`; returns that text.
    pub fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let mut last = String::new();
        self.wait(&format!("`{css}` to show {needle:?}"), timeout, |b| {
            last = b.text(css);
            last.contains(needle)
        });
        last
    }

    /// Clicks the dialog's confirmation button, after checking what it says.
    pub fn confirm(&self, expect: &str) -> String {
        let text = self.wait_for_text("#confirm[open] #confirm-text", expect, Duration::from_secs(10));
        self.click("#confirm-ok");
        text
    }

    /// When the page was loaded (changes with every reload or navigation away).
    pub fn time_origin(&self) -> f64 {
        self.script("return performance.timeOrigin;", json!([])).as_f64().unwrap()
    }

    /// Makes the window `width` × `height` pixels.
    pub fn resize(&self, width: u32, height: u32) {
        self.call("POST", "/window/rect", Some(json!({"width": width, "height": height})));
    }

    /// A PNG of the window.
    pub fn screenshot(&self, path: &Path) {
        let data = self.call("GET", "/screenshot", None);
        let png = decode_base64(data.as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = request("DELETE", &url, None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One HTTP/1.1 exchange with chromedriver, whose answers end by their Content-Length (it
/// keeps the connection open even when asked to close it); (0, why) when it fails.
fn request(method: &str, url: &str, body: Option<Value>) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let Ok(mut stream) = TcpStream::connect(host) else { return (0, format!("cannot connect to {host}")) };
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body.as_bytes())).is_err() {
        return (0, "write failed".into());
    }
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return (0, "no answer".into());
    }
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut answer = vec![0; length];
    if reader.read_exact(&mut answer).is_err() {
        return (0, "the answer was cut short".into());
    }
    (status, String::from_utf8_lossy(&answer).into_owned())
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, d)| n | (*d as u32) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
