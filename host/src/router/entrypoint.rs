//! Entrypoints: listeners shared by every app (`serve --http-addr`), where a request finds
//! its app by `Host`, then by the longest path prefix the app was bound to. Behind the
//! entrypoint, the request takes the same path as on the app's own port (`proxy::handle`),
//! so splits, sticky variants, previews, drains and counts work the same, counted per app.

use super::AppRoute;
use anyhow::{Result, bail};
use std::collections::HashMap;
use std::sync::Arc;

/// The name an entrypoint's sockets travel under in a handover, beside the apps' (app
/// names cannot start with `@`).
pub const HTTP: &str = "@http";
pub const HTTPS: &str = "@https";

/// Which app serves which host and path prefix. Immutable: a change builds a new one and
/// swaps it in, as route tables are.
#[derive(Default)]
pub struct HostRoutes {
    /// Per host, (path prefix, app), longest prefix first.
    by_host: HashMap<String, Vec<(String, Arc<AppRoute>)>>,
}

impl HostRoutes {
    /// Builds the map from each app's hosts and prefix.
    pub fn new<'a>(apps: impl IntoIterator<Item = (&'a Arc<AppRoute>, &'a [String], &'a str)>) -> HostRoutes {
        let mut by_host: HashMap<String, Vec<(String, Arc<AppRoute>)>> = HashMap::new();
        for (route, hosts, prefix) in apps {
            for host in hosts {
                by_host.entry(host.clone()).or_default().push((prefix.to_string(), route.clone()));
            }
        }
        for rules in by_host.values_mut() {
            rules.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        }
        HostRoutes { by_host }
    }

    /// The app for a request's host (as sent: any case, maybe with a port) and path.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<AppRoute>> {
        let rules = self.by_host.get(&normalize_host(host))?;
        rules.iter().find(|(prefix, _)| path_has_prefix(path, prefix)).map(|(_, route)| route)
    }
}

/// `/api` matches `/api`, `/api/` and `/api/x`, not `/apis`.
fn path_has_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        None => false,
    }
}

/// A host as routes are keyed: lower case, without a port or a trailing dot.
pub fn normalize_host(host: &str) -> String {
    let host = match host.rsplit_once(':') {
        // `[::1]:80` and `name:80`; a bare IPv6 address has more than one colon.
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => name,
        _ => host,
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Checks a host name an app asks to be bound to, and returns it as routes key it.
pub fn check_host(host: &str) -> Result<String> {
    let name = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        bail!("`{host}` is not a host name: use letters, digits, dashes and dots, such as shop.example.com");
    }
    Ok(name)
}

/// Checks a path prefix (`/api`), and returns it without a trailing slash (`/` stays).
pub fn check_path_prefix(prefix: &str) -> Result<String> {
    let prefix = prefix.trim();
    if !prefix.starts_with('/') || prefix.contains(['?', '#', ' ']) {
        bail!("`{prefix}` is not a path prefix: it starts with `/` and has no query, such as /api");
    }
    let trimmed = prefix.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/".to_string() } else { trimmed.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str) -> Arc<AppRoute> {
        Arc::new(AppRoute::new(name, None))
    }

    #[test]
    fn a_request_finds_its_app_by_host_then_longest_prefix() {
        let (shop, api, other) = (route("shop"), route("api"), route("other"));
        let shop_hosts = vec!["shop.example.com".to_string(), "www.shop.example.com".to_string()];
        let api_hosts = vec!["shop.example.com".to_string()];
        let other_hosts = vec!["other.example.com".to_string()];
        let routes = HostRoutes::new([
            (&shop, shop_hosts.as_slice(), "/"),
            (&api, api_hosts.as_slice(), "/api"),
            (&other, other_hosts.as_slice(), "/"),
        ]);
        let found = |host: &str, path: &str| routes.find(host, path).map(|r| r.name.clone());
        assert_eq!(found("shop.example.com", "/"), Some("shop".into()));
        assert_eq!(found("SHOP.example.com:8080", "/cart"), Some("shop".into()));
        assert_eq!(found("shop.example.com", "/api"), Some("api".into()));
        assert_eq!(found("shop.example.com", "/api/orders?x=1"), Some("api".into()));
        assert_eq!(found("shop.example.com", "/apis"), Some("shop".into()));
        assert_eq!(found("www.shop.example.com.", "/api"), Some("shop".into()));
        assert_eq!(found("other.example.com", "/api"), Some("other".into()));
        assert_eq!(found("unknown.example.com", "/"), None);
    }

    #[test]
    fn host_names_and_prefixes_are_checked() {
        assert_eq!(check_host("Shop.Example.com.").unwrap(), "shop.example.com");
        for bad in ["", "shop example.com", "-shop.example.com", "shop..example.com", "shop.example.com/x", "a:80"] {
            let e = check_host(bad).unwrap_err().to_string();
            assert!(e.contains("not a host name"), "{bad}: {e}");
        }
        assert_eq!(check_path_prefix("/api/").unwrap(), "/api");
        assert_eq!(check_path_prefix("/").unwrap(), "/");
        assert!(check_path_prefix("api").unwrap_err().to_string().contains("starts with `/`"));
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("::1"), "::1");
    }
}
