//! The dashboard: one HTML page, its script and its style sheet, embedded in the binary
//! (`host/ui/`) and served at `/` of the API address. The files hold no data and need no
//! token; the script asks the API for everything with the bearer token the user signs in
//! with, kept in the tab's session storage. As no cookie authorises anything, another
//! site cannot make the browser act on the API (no cross-site request forgery), and the
//! Content-Security-Policy lets the page run its own script only, frame nothing and be
//! framed by no one.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../../ui/index.html");
const SCRIPT: &str = include_str!("../../ui/app.js");
const STYLE: &str = include_str!("../../ui/style.css");

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Where the dashboard's files are served.
const PATHS: [&str; 5] = ["/", "/ui", "/ui/", "/ui/app.js", "/ui/style.css"];

/// The routes of the dashboard's files (GET).
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    PATHS.iter().fold(axum::Router::new(), |router, path| {
        router.route(
            path,
            axum::routing::get(|uri: axum::http::Uri| async move {
                asset(uri.path()).unwrap_or_else(|| axum::http::StatusCode::NOT_FOUND.into_response())
            }),
        )
    })
}

/// Whether `path` is one of the dashboard's files (which need no token).
pub fn is_asset(path: &str) -> bool {
    PATHS.contains(&path)
}

/// The dashboard's file at `path`, if it is one.
pub fn asset(path: &str) -> Option<Response> {
    let (body, kind) = match path {
        "/" | "/ui" | "/ui/" => (INDEX, "text/html; charset=utf-8"),
        "/ui/app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/ui/style.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return None,
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The files change with the binary only; the browser asks again after an upgrade.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}
