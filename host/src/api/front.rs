//! The API's front: what every server answers, leader or follower. The leader answers
//! with the whole API (`api::router`). A follower answers `/healthz`, `/metrics` (its
//! own role) and `/api/cluster` itself, and forwards every other request to the leader,
//! streams included, so that a client may talk to any server: the leader alone decides
//! (one active deployment per app, a user's control between two steps), as it does with
//! one server. While no server leads (a failover under way) a follower answers 503 with
//! what to do.

use super::{ApiError, auth};
use crate::cluster::{Cluster, Role};
use crate::error::{ErrorCode, UserError};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

/// Marks a forwarded request, so that two servers that each think the other leads do not
/// pass a request back and forth.
const FORWARDED: &str = "x-hivemind-forwarded-by";

pub struct Front {
    cluster: Arc<Cluster>,
    token: Arc<auth::Token>,
    /// The whole API, once this server leads.
    leader: OnceLock<Router>,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>,
}

impl Front {
    /// A front that forwards to the leader over HTTP, or HTTPS when the leader's URL says
    /// so, trusting the system's roots and `api_cert` (the servers of a cluster share the
    /// API's certificate).
    pub fn new(
        cluster: Arc<Cluster>,
        token: Arc<auth::Token>,
        api_cert: Option<&std::path::Path>,
    ) -> anyhow::Result<Arc<Front>> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        if let Some(path) = api_cert {
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))? {
                let _ = roots.add(cert.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(hivemind_router::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector =
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Ok(Arc::new(Front { cluster, token, leader: OnceLock::new(), client }))
    }

    /// From now on this server answers with the whole API.
    pub fn lead(&self, api: Router) {
        let _ = self.leader.set(api);
    }
}

pub fn router(front: Arc<Front>) -> Router {
    Router::new().fallback(answer).with_state(front)
}

async fn answer(State(front): State<Arc<Front>>, request: Request) -> Response {
    if let Some(api) = front.leader.get() {
        return match api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
    }
    if let Some(asset) = super::dashboard::asset(request.uri().path()) {
        return asset;
    }
    match request.uri().path() {
        "/healthz" => return "ok\n".into_response(),
        "/metrics" | "/api/cluster" => {
            if let Err(e) = auth::authorize(&front.token, request.headers()) {
                return e.into_response();
            }
        }
        _ => return forward(&front, request).await,
    }
    if request.uri().path() == "/metrics" {
        let mut text = String::new();
        front.cluster.prometheus(&mut text);
        return ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response();
    }
    match front.cluster.view().await {
        Ok(view) => axum::Json(view).into_response(),
        Err(e) => ApiError(UserError::internal(e)).into_response(),
    }
}

/// Sends the request on to the leader and its answer back, bodies streamed.
async fn forward(front: &Front, request: Request) -> Response {
    let unavailable = |message: String| {
        let mut response = ApiError(UserError::new(ErrorCode::NoLeader, message)).into_response();
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    };
    if request.headers().contains_key(FORWARDED) {
        return unavailable(format!(
            "{} was sent this request as the leader, but it does not lead: the lease is changing hands; try again",
            front.cluster.name()
        ));
    }
    let leader = match front.cluster.leader_url().await {
        Ok(Some(url)) => url,
        Ok(None) => {
            return unavailable(
                "no server leads at the moment (a failover is under way: a follower takes the lease when it expires); try again in a few seconds"
                    .into(),
            );
        }
        Err(e) => return unavailable(format!("the database does not answer ({e:#}); no leader can be found")),
    };
    if front.cluster.role() == Role::Leader {
        return unavailable(format!("{} is taking over as the leader; try again in a moment", front.cluster.name()));
    }
    let path = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
    let (mut parts, body) = request.into_parts();
    parts.uri = match format!("{}{path}", leader.trim_end_matches('/')).parse() {
        Ok(uri) => uri,
        Err(e) => return unavailable(format!("the leader's address {leader} is not usable: {e}")),
    };
    parts.headers.remove(axum::http::header::HOST);
    if let Ok(name) = HeaderValue::from_str(front.cluster.name()) {
        parts.headers.insert(FORWARDED, name);
    }
    match front.client.request(Request::from_parts(parts, body)).await {
        Ok(response) => response.map(Body::new),
        Err(e) => unavailable(format!("the leader at {leader} did not answer ({e}); try again in a moment")),
    }
}
