//! `http`: a POST of JSON to a host on the server's allowlist, for hooks. No redirects,
//! no proxy; the request ends by the hook's deadline; the answer's body is cut at 64 KiB.

use super::{CapabilityError, HostState, bounds};
use crate::bindings::hook::hivemind::plugin::http;

/// The most of an answer's body a hook gets.
const ANSWER_BYTES: usize = 64 << 10;
/// The longest URL a hook may send to.
const URL_BYTES: usize = 8192;

impl http::Host for HostState {
    async fn post_json(
        &mut self,
        url: String,
        body: String,
        timeout_ms: u32,
    ) -> Result<http::Response, CapabilityError> {
        let caps = self.hook()?;
        if url.len() > URL_BYTES {
            return Err(CapabilityError::Invalid(format!(
                "http.post-json: a URL may be at most {URL_BYTES} bytes; this one has {}",
                url.len()
            )));
        }
        if body.len() > bounds::HTTP_BODY_BYTES {
            return Err(CapabilityError::Invalid(format!(
                "http.post-json: a request body may be at most 1 MiB; this one has {} bytes",
                body.len()
            )));
        }
        if let Ok(parsed) = reqwest::Url::parse(&url) {
            let host = parsed.host_str().unwrap_or_default();
            let port = parsed.port_or_known_default().unwrap_or(80);
            if !caps.grants.http(host, port) {
                return Err(CapabilityError::Denied(format!(
                    "http.post-json: plugin {} was not granted `http:{host}:{port}` (nor `http`), so it may not send to {url}; whoever installs it may allow it with `hivemind plugin install FILE --allow http:{host}:{port}`",
                    caps.plugin
                )));
            }
        }
        let hosts = caps.scope.platform.hook_hosts();
        let (parsed, client) =
            hosts.pinned(&url).await.map_err(|why| CapabilityError::Denied(format!("http.post-json: {why}")))?;
        let (timeout, limit) = caps.time_left(timeout_ms);
        let request = client
            .post(parsed)
            .header("content-type", "application/json")
            .header("user-agent", concat!("hivemind/", env!("CARGO_PKG_VERSION")))
            .body(body)
            .timeout(timeout);
        let mut response = request.send().await.map_err(|e| {
            let why = if e.is_timeout() { format!("no answer within {limit}") } else { format!("{e}") };
            CapabilityError::Failed(format!("POST {url}: {why}"))
        })?;
        let status = response.status().as_u16();
        let mut answer = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            answer.extend_from_slice(&chunk);
            if answer.len() >= ANSWER_BYTES {
                answer.truncate(ANSWER_BYTES);
                break;
            }
        }
        Ok(http::Response { status, body: String::from_utf8_lossy(&answer).into_owned() })
    }
}
