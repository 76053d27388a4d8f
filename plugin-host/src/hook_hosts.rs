//! Where hooks may send HTTP: the server's allowlist (`--hook-allowed-hosts`), which
//! admission checks a webhook's URL against, and so does the `http` capability on every
//! request.

/// The hosts hooks may send HTTP requests to (`--hook-allowed-hosts`), and the client
/// they go out through: no redirects and no proxy, so the allowlist cannot be stepped
/// around. Admission checks a webhook's URL here, and so does the `http` capability on
/// every request, whichever hook makes it.
pub struct HookHosts {
    allowed: Vec<String>,
    pub client: reqwest::Client,
}

impl HookHosts {
    pub fn new(allowed: Vec<String>) -> HookHosts {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("building an HTTP client");
        HookHosts { allowed, client }
    }

    /// `url` if it is an http:// URL whose host (or host:port) is allowed; otherwise why
    /// not, and how to allow it.
    pub fn check(&self, url: &str) -> Result<reqwest::Url, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if parsed.scheme() != "http" {
            return Err(format!("only http:// URLs are supported; got `{url}`"));
        }
        let host = parsed.host_str().unwrap_or_default();
        let with_port = format!("{host}:{}", parsed.port_or_known_default().unwrap_or(80));
        if self.allowed.iter().any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(&with_port)) {
            return Ok(parsed);
        }
        Err(format!(
            "host `{host}` is not on the server's hook allowlist (allowed: {}); start the server with `--hook-allowed-hosts {host}` (or set HIVEMIND_HOOK_ALLOWED_HOSTS, or hook_allowed_hosts in server.toml)",
            if self.allowed.is_empty() { "none".to_string() } else { self.allowed.join(", ") }
        ))
    }
}
