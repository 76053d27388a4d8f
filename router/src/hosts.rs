//! Host routing: which app a request on a shared entrypoint is for — by `Host`, then by
//! the longest path prefix the app was bound to — or whether it is an ACME challenge or
//! a redirect to HTTPS. Pure data and decisions, read by the proxy and kept by the
//! entrypoints' listeners (`entrypoint`).

use super::AppRoute;
use anyhow::{Result, bail};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering::Relaxed};

/// Where ACME servers look for an HTTP-01 challenge's answer.
const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// What the entrypoints share: which app serves which host, the answers to ACME
/// challenges under way, and the HTTPS entrypoint's port (for redirects to it).
#[derive(Default)]
pub struct Front {
    pub hosts: ArcSwap<HostRoutes>,
    pub challenges: ArcSwap<HashMap<String, String>>,
    pub https_port: AtomicU16,
}

/// What an entrypoint does with a request.
pub enum Decision<'a> {
    Proxy(&'a Arc<AppRoute>),
    /// An ACME server's HTTP-01 check: the key authorization, as it is.
    Challenge(String),
    /// Plain HTTP for an app that asked for `--redirect-https`: the HTTPS URL.
    Redirect(String),
    /// No app is bound to the host (normalised, for the message).
    Unknown(String),
}

impl Front {
    /// `routes` must be `self.hosts.load()`, held by the caller for the request's span.
    pub fn decide<'a>(&self, routes: &'a HostRoutes, host: &str, path_and_query: &str, https: bool) -> Decision<'a> {
        let path = path_and_query.split('?').next().unwrap_or("/");
        if !https
            && let Some(token) = path.strip_prefix(ACME_CHALLENGE_PATH)
            && let Some(answer) = self.challenges.load().get(token)
        {
            return Decision::Challenge(answer.clone());
        }
        match routes.find(host, path) {
            Some((_, true)) if !https => {
                let port = match self.https_port.load(Relaxed) {
                    0 | 443 => String::new(),
                    port => format!(":{port}"),
                };
                let name = normalize_host(host);
                Decision::Redirect(format!("https://{name}{port}{path_and_query}"))
            }
            Some((route, _)) => Decision::Proxy(route),
            None => Decision::Unknown(normalize_host(host).into_owned()),
        }
    }
}

/// Which app serves which host and path prefix. Immutable: a change builds a new one and
/// swaps it in, as route tables are.
#[derive(Default)]
pub struct HostRoutes {
    /// Per host, (path prefix, app, whether plain HTTP is redirected to HTTPS), longest
    /// prefix first.
    by_host: HashMap<String, Vec<(String, Arc<AppRoute>, bool)>>,
}

/// One app's binding to the entrypoints: a record of the model, which the router reads.
pub use crate::model::Binding;

impl HostRoutes {
    /// Builds the map from each app's binding.
    pub fn new<'a>(apps: impl IntoIterator<Item = (&'a Arc<AppRoute>, &'a Binding)>) -> HostRoutes {
        let mut by_host: HashMap<String, Vec<(String, Arc<AppRoute>, bool)>> = HashMap::new();
        for (route, binding) in apps {
            for host in &binding.hosts {
                let rule = (binding.path_prefix.clone(), route.clone(), binding.redirect_https);
                by_host.entry(host.clone()).or_default().push(rule);
            }
        }
        for rules in by_host.values_mut() {
            rules.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        }
        HostRoutes { by_host }
    }

    /// The app for a request's host (as sent: any case, maybe with a port) and path, and
    /// whether it redirects plain HTTP.
    pub fn find(&self, host: &str, path: &str) -> Option<(&Arc<AppRoute>, bool)> {
        let rules = self.by_host.get(normalize_host(host).as_ref())?;
        rules.iter().find(|(prefix, _, _)| path_has_prefix(path, prefix)).map(|(_, route, redirect)| (route, *redirect))
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
/// Borrowed unless the host has capitals: this runs for every request on an entrypoint.
pub fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = match host.rsplit_once(':') {
        // `[::1]:80` and `name:80`; a bare IPv6 address has more than one colon.
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => name,
        _ => host,
    };
    let host = host.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
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
        let bind = |hosts: &[&str], prefix: &str| Binding {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            path_prefix: prefix.to_string(),
            ..Binding::default()
        };
        let (shop_binding, api_binding, other_binding) = (
            bind(&["shop.example.com", "www.shop.example.com"], "/"),
            bind(&["shop.example.com"], "/api"),
            bind(&["other.example.com"], "/"),
        );
        let routes = HostRoutes::new([(&shop, &shop_binding), (&api, &api_binding), (&other, &other_binding)]);
        let found = |host: &str, path: &str| routes.find(host, path).map(|(r, _)| r.name.clone());
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
    fn the_entrypoints_answer_acme_challenges_and_redirect_to_https() {
        let shop = route("shop");
        let binding = Binding { hosts: vec!["shop.example.com".into()], redirect_https: true, ..Binding::default() };
        let front = Front::default();
        front.hosts.store(Arc::new(HostRoutes::new([(&shop, &binding)])));
        front.challenges.store(Arc::new(HashMap::from([("tok".to_string(), "tok.thumb".to_string())])));
        front.https_port.store(8443, Relaxed);
        let routes = front.hosts.load();
        let decide = |host: &str, path: &str, https: bool| match front.decide(&routes, host, path, https) {
            Decision::Proxy(route) => format!("proxy {}", route.name),
            Decision::Challenge(answer) => format!("challenge {answer}"),
            Decision::Redirect(url) => format!("redirect {url}"),
            Decision::Unknown(host) => format!("unknown {host}"),
        };
        assert_eq!(decide("shop.example.com", "/.well-known/acme-challenge/tok", false), "challenge tok.thumb");
        assert_eq!(decide("other.example.com", "/.well-known/acme-challenge/tok", false), "challenge tok.thumb");
        assert_eq!(decide("shop.example.com:80", "/a?b=1", false), "redirect https://shop.example.com:8443/a?b=1");
        assert_eq!(decide("shop.example.com", "/a", true), "proxy shop");
        assert_eq!(
            decide("shop.example.com", "/.well-known/acme-challenge/other", false),
            "redirect https://shop.example.com:8443/.well-known/acme-challenge/other"
        );
        assert_eq!(decide("nope.example.com", "/", false), "unknown nope.example.com");
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
