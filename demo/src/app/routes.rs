//! Routing: which of the app's answers a request's method, path and query ask for.

use crate::config::MAX_DELAY_MS;

/// `/slow` without `?ms=`.
const DEFAULT_SLOW_MS: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// `/`, or `/slow` with its extra delay.
    Version {
        delay_ms: u64,
    },
    Health,
    Metrics,
    BadQuery,
    MethodNotAllowed,
    NotFound,
}

pub(super) fn route(method: &str, path: &str, query: &str) -> Route {
    let known = matches!(path, "/" | "/health" | "/slow" | "/metrics");
    if !known {
        return Route::NotFound;
    }
    if method != "GET" && method != "HEAD" {
        return Route::MethodNotAllowed;
    }
    match path {
        "/" => Route::Version { delay_ms: 0 },
        "/health" => Route::Health,
        "/metrics" => Route::Metrics,
        _ => match slow_ms(query) {
            Some(ms) => Route::Version { delay_ms: ms },
            None => Route::BadQuery,
        },
    }
}

/// The `ms` parameter of `/slow`: [`DEFAULT_SLOW_MS`] when absent, `None` when invalid.
fn slow_ms(query: &str) -> Option<u64> {
    let Some(value) = query.split('&').find_map(|pair| pair.strip_prefix("ms=")) else {
        return Some(DEFAULT_SLOW_MS);
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|&ms| ms <= MAX_DELAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_query() {
        assert_eq!(slow_ms(""), Some(DEFAULT_SLOW_MS));
        assert_eq!(slow_ms("ms=50"), Some(50));
        assert_eq!(slow_ms("a=1&ms=7&ms=9"), Some(7));
        assert_eq!(slow_ms("ms="), None);
        assert_eq!(slow_ms("ms=-1"), None);
        assert_eq!(slow_ms("ms=600001"), None);
        assert_eq!(slow_ms("ms=99999999999999999999999"), None);
    }

    #[test]
    fn routing() {
        assert_eq!(route("GET", "/", ""), Route::Version { delay_ms: 0 });
        assert_eq!(route("HEAD", "/health", ""), Route::Health);
        assert_eq!(route("POST", "/metrics", ""), Route::MethodNotAllowed);
        assert_eq!(route("POST", "/other", ""), Route::NotFound);
        assert_eq!(route("GET", "/health/", ""), Route::NotFound);
        assert_eq!(route("get", "/", ""), Route::MethodNotAllowed);
    }
}
