//! Where hooks may send HTTP: the server's allowlist (`--hook-allowed-hosts`), which
//! admission checks a webhook's URL against, and so does the `http` capability on every
//! request.
//!
//! An entry names a host and a port: `http://hooks.internal:8080`, `hooks.internal:8080`,
//! or a bare `hooks.internal`, which means its default port (80) only; `HOST:*` allows
//! every port of a host, and must be written so. A bare `127.0.0.1` used to allow every
//! port of the host, the apps' replicas and a local Docker API among them.

use std::net::SocketAddr;

/// One allowlist entry: a host (lowercase) and its port, or every port.
#[derive(Debug, Clone, PartialEq)]
struct Allowed {
    host: String,
    port: Option<u16>,
}

impl Allowed {
    fn parse(entry: &str) -> Result<Allowed, String> {
        let bare = entry.trim().strip_prefix("http://").unwrap_or(entry.trim()).trim_end_matches('/');
        if bare.contains("://") || bare.contains('/') || bare.is_empty() {
            return Err(format!("hook allowlist entry `{entry}` must be HOST, HOST:PORT, HOST:* or http://HOST:PORT"));
        }
        let (host, port) = match bare.rsplit_once(':') {
            // An IPv6 address without a port is all colons inside brackets.
            Some((host, port)) if !host.ends_with(':') && (!bare.starts_with('[') || host.ends_with(']')) => {
                let port = match port {
                    "*" => None,
                    p => Some(p.parse::<u16>().map_err(|_| {
                        format!("hook allowlist entry `{entry}`: `{p}` is not a port (1-65535, or * for every port)")
                    })?),
                };
                (host, port)
            }
            _ => (bare, Some(80)),
        };
        Ok(Allowed { host: host.trim_matches(['[', ']']).to_ascii_lowercase(), port })
    }

    fn admits(&self, host: &str, port: u16) -> bool {
        self.host.eq_ignore_ascii_case(host) && self.port.is_none_or(|p| p == port)
    }
}

/// The hosts hooks may send HTTP requests to (`--hook-allowed-hosts`), and the client
/// they go out through: no redirects and no proxy, so the allowlist cannot be stepped
/// around. Admission checks a webhook's URL here, and so does the `http` capability on
/// every request, whichever hook makes it.
pub struct HookHosts {
    allowed: Vec<Allowed>,
    entries: Vec<String>,
    pub client: reqwest::Client,
}

fn client() -> reqwest::ClientBuilder {
    // Hooks speak plain http:// (`check` refuses anything else): a TLS configuration with
    // no roots at all, handed over so that no process-wide crypto provider is needed.
    let no_tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().use_preconfigured_tls(no_tls)
}

impl HookHosts {
    /// The allowlist of `entries`; an entry that does not parse is refused with why.
    pub fn new(entries: Vec<String>) -> Result<HookHosts, String> {
        let allowed = entries.iter().map(|e| Allowed::parse(e)).collect::<Result<_, _>>()?;
        let client = client().build().expect("building an HTTP client");
        Ok(HookHosts { allowed, entries, client })
    }

    /// `url` if it is an http:// URL whose host and port are allowed; otherwise why not,
    /// and how to allow it.
    pub fn check(&self, url: &str) -> Result<reqwest::Url, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if parsed.scheme() != "http" {
            return Err(format!("only http:// URLs are supported; got `{url}`"));
        }
        let host = parsed.host_str().unwrap_or_default().trim_matches(['[', ']']);
        let port = parsed.port_or_known_default().unwrap_or(80);
        if self.allowed.iter().any(|a| a.admits(host, port)) {
            return Ok(parsed);
        }
        let named = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        Err(format!(
            "`{named}` is not on the server's hook allowlist (allowed: {}); start the server with `--hook-allowed-hosts {named}` (or set HIVEMIND_HOOK_ALLOWED_HOSTS, or hook_allowed_hosts in server.toml)",
            if self.entries.is_empty() { "none".to_string() } else { self.entries.join(", ") }
        ))
    }

    /// `url` checked, its host name resolved once, and a client that connects to that
    /// address only: a name that resolves elsewhere by the time of the connection (DNS
    /// rebinding) cannot move the request to another host.
    pub async fn pinned(&self, url: &str) -> Result<(reqwest::Url, reqwest::Client), String> {
        let parsed = self.check(url)?;
        let Some(name) = parsed.domain() else {
            // An address is its own resolution.
            return Ok((parsed, self.client.clone()));
        };
        let name = name.to_string();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let address: SocketAddr = tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|e| format!("`{name}` does not resolve: {e}"))?
            .next()
            .ok_or_else(|| format!("`{name}` resolves to no address"))?;
        let client = client().resolve(&name, address).build().map_err(|e| format!("building an HTTP client: {e}"))?;
        Ok((parsed, client))
    }
}

#[cfg(test)]
mod tests {
    use super::HookHosts;

    fn hosts(entries: &[&str]) -> HookHosts {
        HookHosts::new(entries.iter().map(|e| e.to_string()).collect()).unwrap()
    }

    #[test]
    fn a_bare_host_is_its_default_port_only() {
        let list = hosts(&["127.0.0.1", "hooks.internal:8080", "http://ci.example:9000", "[::1]:81", "lab:*"]);
        assert!(list.check("http://127.0.0.1/x").is_ok());
        assert!(list.check("http://127.0.0.1:80/x").is_ok());
        let refused = list.check("http://127.0.0.1:2375/containers/json").unwrap_err();
        assert!(refused.contains("--hook-allowed-hosts 127.0.0.1:2375"), "{refused}");
        assert!(list.check("http://HOOKS.internal:8080/").is_ok());
        assert!(list.check("http://hooks.internal/").is_err());
        assert!(list.check("http://ci.example:9000/").is_ok());
        assert!(list.check("http://[::1]:81/").is_ok());
        assert!(list.check("http://lab:12345/").is_ok());
        assert!(list.check("https://hooks.internal:8080/").is_err());
    }

    #[test]
    fn a_bad_entry_is_refused_with_the_forms_that_work() {
        for bad in ["127.0.0.1:http", "ftp://x", "host/path", ""] {
            let why = HookHosts::new(vec![bad.to_string()]).err().unwrap_or_default();
            assert!(why.contains("HOST:PORT") || why.contains("is not a port"), "{bad}: {why}");
        }
    }
}
