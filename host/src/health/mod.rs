//! Health probes: an HTTP GET of the app's health path, with a timeout. The message of
//! every result says what was checked and what came back, because it ends up in the
//! message of a failed deployment.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

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
