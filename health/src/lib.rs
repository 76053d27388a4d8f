//! Health probes: an HTTP GET of the app's health path, with a timeout. The message of
//! every result says what was checked and what came back, because it ends up in the
//! message of a failed deployment.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Sums the samples of counter `name` (every label set) in a Prometheus text exposition.
pub fn sum_counter(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value =
            rest.rsplit('}').next().unwrap_or(rest).split_whitespace().next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub healthy: bool,
    pub message: String,
}

/// What to probe: the path and the timeout of one probe.
#[derive(Debug, Clone)]
pub struct HttpCheck {
    pub path: String,
    pub timeout: Duration,
}

#[derive(Clone)]
pub struct Prober {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for Prober {
    fn default() -> Self {
        Self::new()
    }
}

impl Prober {
    pub fn new() -> Prober {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        // Probes open a fresh connection each time: a pooled one could hide a replica
        // that stopped accepting.
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector);
        Prober { client }
    }

    /// GETs `http://{address}{path}` and returns the body of a 2xx answer.
    pub async fn get_text(&self, address: &str, path: &str, timeout: Duration) -> Result<String, String> {
        use http_body_util::BodyExt;
        let url = format!("http://{address}{path}");
        let uri: http::Uri = url.parse().map_err(|e| format!("GET {url}: not a valid URL ({e})"))?;
        let fetch = async {
            let response = self.client.get(uri).await.map_err(|e| format!("GET {url} failed: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("GET {url} returned {}", response.status().as_u16()));
            }
            let body = response.into_body().collect().await.map_err(|e| format!("GET {url}: {e}"))?;
            Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
        };
        tokio::time::timeout(timeout, fetch).await.map_err(|_| format!("GET {url} timed out"))?
    }

    /// GETs `http://{address}{path}`; healthy on a 2xx or 3xx within the timeout.
    pub async fn probe(&self, address: &str, check: &HttpCheck) -> ProbeResult {
        let url = format!("http://{address}{}", check.path);
        let uri: http::Uri = match url.parse() {
            Ok(u) => u,
            Err(e) => return ProbeResult { healthy: false, message: format!("GET {url}: not a valid URL ({e})") },
        };
        match tokio::time::timeout(check.timeout, self.client.get(uri)).await {
            Err(_) => ProbeResult {
                healthy: false,
                message: format!("GET {url} timed out after {} ms", check.timeout.as_millis()),
            },
            Ok(Err(e)) => {
                let why = if e.is_connect() { "could not connect".to_string() } else { e.to_string() };
                ProbeResult { healthy: false, message: format!("GET {url} failed: {why}") }
            }
            Ok(Ok(response)) => {
                let status = response.status();
                let healthy = status.is_success() || status.is_redirection();
                ProbeResult { healthy, message: format!("GET {url} returned {}", status.as_u16()) }
            }
        }
    }
}
