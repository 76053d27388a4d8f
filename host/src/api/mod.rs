//! The REST API: JSON in, JSON out, and JSON errors with a stable code, the field that
//! was wrong, and a message that says what to do.

pub mod auth;
mod codes;
pub mod dashboard;
pub mod front;
pub mod listen;
pub mod openapi;
mod plugins;
mod registries;
mod stream;

use crate::api_types::{
    AppView, CertBody, CertInfo, DeploymentView, Diagnosis, MetricsView, PipelineView, ScaleBody, SeriesView,
    StatusView, WinnerBody,
};
use crate::engine::{Apps, Catalog, Certificates, Deployments, Insights, Registries};
use crate::error::{ErrorCode, Field, UserError};
use crate::model::DeploymentSpec;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use plugins::{disable_plugin, enable_plugin, inspect_plugin, install_plugin, list_plugins, remove_plugin};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone)]
pub struct Api {
    /// The engine's services, each serving its own routes.
    pub deployments: Arc<Deployments>,
    pub apps: Arc<Apps>,
    pub certificates: Arc<Certificates>,
    pub catalog: Arc<Catalog>,
    pub insights: Arc<Insights>,
    pub registries: Arc<Registries>,
    pub plugins_dir: PathBuf,
    /// The bearer token every route but /healthz needs.
    pub token: Arc<auth::Token>,
    /// The servers sharing the store, and which leads.
    pub cluster: Arc<crate::cluster::Cluster>,
    /// How long a client has to send a request's body (`[api] body_timeout`).
    pub body_timeout: std::time::Duration,
}

/// Declares every route once: the router is built from this table, and so is the
/// OpenAPI document (`/api/openapi.json`), so the two cannot drift apart. Each route has
/// a summary, its request body's schema, its query parameters (`name` or `name:type`), its
/// success status, its response's schema (`Name`, `Name[]` for a list, `text`, `sse`,
/// `json`, or "" for none) and the error codes its handler and the engine calls it makes
/// can answer: `ErrorCode` variants (`Invalid(Field)` for `invalid_<field>`), then
/// `+ GROUP` for the codes of an engine call several routes make (`codes.rs`). The codes
/// every route answers (the token, the lease, a failure) and those a JSON body, a query or
/// a path parameter imply are added by `openapi::RouteDoc::codes`.
macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:expr, $summary:literal, body $body:literal, query $query:literal, $ok:literal $response:literal,
       errors [$($code:ident $(($field:ident))?),*] $(+ $group:ident)*;)*) => {
        fn routes() -> Router<Api> {
            Router::new()$(.route($path, axum::routing::$method($handler)))*
        }

        pub const ROUTES: &[openapi::RouteDoc] = &[$(openapi::RouteDoc {
            method: stringify!($method),
            path: $path,
            summary: $summary,
            body: $body,
            query: $query,
            ok: $ok,
            response: $response,
            errors: &[&[$(ErrorCode::$code $((Field::$field))?),*] $(, codes::$group)*],
        }),*];
    };
}

api_routes! {
    get "/healthz" => healthz, "Whether the server runs (needs no token): `ok`, or `degraded: ` and why (a store that cannot be written)", body "", query "", 200 "text",
        errors [];
    get "/metrics" => metrics, "The server's counts in the Prometheus text format", body "", query "", 200 "text",
        errors [];
    get "/api/openapi.json" => openapi::document, "This API's OpenAPI document", body "", query "", 200 "json",
        errors [];
    get "/api/cluster" => cluster, "The servers, which one leads (drives deployments), since when, and the lease epoch", body "", query "", 200 "ClusterView",
        errors [];
    post "/api/token/rotate" => auth::rotate, "Replace the API token; the old one stops working", body "", query "", 200 "Rotated",
        errors [];
    get "/api/deployments" => list_deployments, "List deployments, newest first, filtered by app, status and strategy", body "", query "app,status,strategy,limit:integer,offset:integer", 200 "DeploymentView[]",
        errors [Invalid(Limit), Invalid(Offset), Invalid(Status)];
    post "/api/deployments" => create_deployment, "Create a deployment without running it", body "DeploymentSpec", query "", 201 "DeploymentView",
        errors [] + ADMIT;
    post "/api/deployments/zero-downtime" => zero_downtime, "Create and run a zero-downtime deployment", body "DeploymentSpec", query "", 201 "DeploymentView",
        errors [] + ADMIT + START;
    get "/api/deployments/{id}" => get_deployment, "Get a deployment", body "", query "", 200 "DeploymentView",
        errors [DeploymentNotFound];
    get "/api/deployments/{id}/status" => deployment_status, "Get a deployment's status", body "", query "", 200 "StatusView",
        errors [DeploymentNotFound];
    post "/api/deployments/{id}/execute" => execute_deployment, "Run a pending deployment", body "", query "", 200 "DeploymentView",
        errors [] + START;
    get "/api/deployments/{id}/events" => deployment_events, "A deployment's event log", body "", query "after:integer", 200 "Event[]",
        errors [DeploymentNotFound];
    get "/api/deployments/{id}/events/stream" => stream::deployment_stream, "A deployment's events as server-sent events", body "", query "", 200 "sse",
        errors [DeploymentNotFound];
    get "/api/deployments/{id}/diagnose" => diagnose, "What happened to a deployment and why, cause first", body "", query "verbose:boolean", 200 "Diagnosis",
        errors [DeploymentNotFound];
    post "/api/deployments/{id}/rollback" => rollback, "Roll a deployment back", body "", query "", 200 "DeploymentView",
        errors [] + ROLLBACK + ADMIT + START;
    post "/api/deployments/{id}/pause" => pause, "Pause a deployment in progress", body "", query "", 200 "DeploymentView",
        errors [DeploymentNotFound, CannotPause];
    post "/api/deployments/{id}/resume" => resume, "Resume a paused deployment", body "", query "", 200 "DeploymentView",
        errors [DeploymentNotFound, CannotResume];
    post "/api/deployments/{id}/promote" => promote, "Release a deployment's manual gate", body "", query "", 200 "DeploymentView",
        errors [DeploymentNotFound, CannotPromote];
    post "/api/deployments/{id}/abort" => abort, "Stop a deployment and roll back what it did", body "", query "", 200 "DeploymentView",
        errors [DeploymentNotFound, CannotAbort];
    post "/api/deployments/{id}/select-winner" => select_winner, "Pick the winner of an A/B test", body "WinnerBody", query "", 200 "DeploymentView",
        errors [DeploymentNotFound, NotAnAbTest, Invalid(Variant), CannotSelectAWinnerFor];
    get "/api/deployments/{id}/metrics" => deployment_metrics, "Live figures per version or variant, with significance tests", body "", query "variant", 200 "MetricsView",
        errors [DeploymentNotFound, Invalid(Variant)];
    get "/api/deployments/{id}/series" => deployment_series, "The compared versions' figures second by second and an analysis per traffic split (the dashboard's charts)", body "", query "after:integer", 200 "SeriesView",
        errors [DeploymentNotFound];
    get "/api/deployments/status/{id}" => deployment_status, "Get a deployment's status (the docs' older path)", body "", query "", 200 "StatusView",
        errors [DeploymentNotFound];
    post "/api/deployments/rollback/{id}" => rollback, "Roll a deployment back (the docs' older path)", body "", query "", 200 "DeploymentView",
        errors [] + ROLLBACK + ADMIT + START;
    get "/api/apps" => list_apps, "List apps with their release, split and replicas", body "", query "", 200 "AppView[]",
        errors [];
    post "/api/apps/deploy" => deploy, "Create and run a deployment", body "DeploymentSpec", query "", 201 "DeploymentView",
        errors [] + ADMIT + START;
    get "/api/apps/{name}" => get_app, "Get an app", body "", query "", 200 "AppView",
        errors [AppNotFound];
    get "/api/apps/{name}/preview-key" => preview_key, "The key that lets a request choose a version by name (x-hivemind-variant), a preview", body "", query "", 200 "PreviewKey",
        errors [AppNotFound];
    delete "/api/apps/{name}" => remove_app, "Remove an app: drain and stop its replicas, free its port", body "", query "force:boolean", 204 "",
        errors [AppNotFound, DeploymentInProgress];
    post "/api/apps/{name}/scale" => scale_app, "Change how many replicas the app's release runs, without a deployment", body "ScaleBody", query "", 200 "AppView",
        errors [AppNotFound, DeploymentInProgress, NoRelease, Invalid(Replicas)];
    get "/api/apps/{name}/events" => app_events, "The app's own event log: replicas replaced, crash loops, scaling", body "", query "after:integer", 200 "AppEvent[]",
        errors [AppNotFound];
    get "/api/apps/{name}/replicas/{id}/logs" => replica_logs, "The last lines a replica printed", body "", query "", 200 "text",
        errors [ReplicaNotFound];
    get "/api/certs" => list_certs, "The TLS certificates the HTTPS entrypoint serves, by host", body "", query "", 200 "CertInfo[]",
        errors [];
    post "/api/certs" => add_cert, "Add (or replace) a host's certificate and key; checked, then served without a restart", body "CertBody", query "", 201 "CertInfo",
        errors [Invalid(Host), Invalid(Cert)];
    delete "/api/certs/{host}" => remove_cert, "Stop serving a host's certificate", body "", query "", 204 "",
        errors [Invalid(Host), CertNotFound];
    get "/api/registries" => registries::list, "The registries the server has credentials for (never the passwords)", body "", query "", 200 "RegistryView[]",
        errors [];
    put "/api/registries/{registry}" => registries::login, "Keep credentials for pulling images from a registry", body "LoginBody", query "", 200 "RegistryView",
        errors [Invalid(Registry)];
    delete "/api/registries/{registry}" => registries::logout, "Forget a registry's credentials", body "", query "", 204 "",
        errors [Invalid(Registry), RegistryNotFound];
    get "/api/pipelines" => list_pipelines, "List deployment profiles for CI", body "", query "", 200 "PipelineView[]",
        errors [];
    put "/api/pipelines/{name}" => put_pipeline, "Store a deployment profile for CI", body "DeploymentSpec", query "", 200 "PipelineView",
        errors [Invalid(Pipeline), Invalid(Strategy), Invalid(Secrets)];
    get "/api/plugins" => list_plugins, "List loaded plugins", body "", query "", 200 "PluginView[]",
        errors [];
    post "/api/plugins" => install_plugin, "Install a strategy or hook component (body: the .wasm bytes)", body "component", query "replace:boolean,source,signature,allow", 201 "PluginView",
        errors [Invalid(Plugin), Invalid(Source), Invalid(Signature), Invalid(Allow)];
    get "/api/plugins/{name}" => inspect_plugin, "A plugin's world, API version, imports, exports, size and sha256", body "", query "", 200 "PluginDetails",
        errors [PluginNotFound];
    delete "/api/plugins/{name}" => remove_plugin, "Unload an installed plugin (refused while a deployment uses it)", body "", query "", 204 "",
        errors [PluginNotFound, PluginInUse, CannotRemovePlugin];
    post "/api/plugins/{name}/enable" => enable_plugin, "Let new deployments use a plugin", body "", query "", 200 "PluginView",
        errors [PluginNotFound];
    post "/api/plugins/{name}/disable" => disable_plugin, "Stop new deployments from using a plugin", body "", query "", 200 "PluginView",
        errors [PluginNotFound];
}

pub fn router(api: Api) -> Router {
    routes()
        .merge(dashboard::routes())
        .fallback(|| async {
            ApiError(UserError::not_found(
                ErrorCode::RouteNotFound,
                "no such API route; GET /api/openapi.json lists them",
            ))
        })
        .method_not_allowed_fallback(|| async {
            ApiError(UserError::new(
                ErrorCode::MethodNotAllowed,
                "this route does not take that method; GET /api/openapi.json lists them",
            ))
        })
        // Inside the token check: nobody without the token gets a body read at all.
        .layer(axum::middleware::from_fn_with_state(api.body_timeout, listen::body_deadline))
        .layer(axum::middleware::from_fn_with_state(api.clone(), auth::require_token))
        .layer(axum::middleware::map_response(json_errors))
        .layer(DefaultBodyLimit::max(1 << 20))
        .with_state(api)
}

/// Any error answer that is not JSON yet (an extractor's rejection, a body over the
/// limit) becomes the API's JSON error shape, so that clients need one parser.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response.headers().get(axum::http::header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/event-stream")
    });
    if status.as_u16() < 400 || is_json {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 << 10).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let message = if text.is_empty() { status.to_string() } else { text };
    let error = UserError { status: status.as_u16(), ..UserError::new(ErrorCode::of_status(status.as_u16()), message) };
    ApiError(error).into_response()
}

/// An error as the API sends it: `{"error": {"code", "field", "message"}}`.
pub struct ApiError(pub UserError);

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(serde_json::json!({ "error": self.0 }))).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status().as_u16();
        let mut e = UserError::invalid(Field::Body, format!("the request body is not valid: {}", r.body_text()));
        e.status = if status == 413 { 413 } else { 400 };
        ApiError(e)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError(UserError::invalid(Field::Query, r.body_text()))
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    app: Option<String>,
    status: Option<String>,
    strategy: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list_deployments(
    State(api): State<Api>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Vec<DeploymentView>> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(UserError::invalid(Field::Limit, format!("limit must be 1 to 1000 (got {limit})")).into());
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(UserError::invalid(Field::Offset, format!("offset must be 0 or more (got {offset})")).into());
    }
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(crate::model::Status::parse(s).ok_or_else(|| {
            let all: Vec<&str> = crate::model::Status::ALL.iter().map(|s| s.as_str()).collect();
            UserError::invalid(Field::Status, format!("unknown status `{s}`; the statuses are {}", all.join(", ")))
        })?),
    };
    let filter = crate::store::ListFilter { app: q.app, status, strategy: q.strategy, limit, offset };
    let list = api.deployments.list_deployments(&filter).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

async fn create_deployment(
    State(api): State<Api>,
    body: Result<Json<DeploymentSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let Json(spec) = body?;
    let d = api.deployments.create(spec).await?;
    Ok((StatusCode::CREATED, Json(d.into())))
}

async fn deploy(
    State(api): State<Api>,
    body: Result<Json<DeploymentSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let Json(spec) = body?;
    let d = api.deployments.deploy(spec).await?;
    Ok((StatusCode::CREATED, Json(d.into())))
}

/// The product's zero-downtime endpoint: creates and runs a deployment with the
/// zero-downtime strategy, whatever `strategy` says.
async fn zero_downtime(
    State(api): State<Api>,
    body: Result<Json<DeploymentSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let Json(mut spec) = body?;
    spec.strategy = "zero-downtime".into();
    let d = api.deployments.deploy(spec).await?;
    Ok((StatusCode::CREATED, Json(d.into())))
}

async fn get_deployment(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<DeploymentView> {
    Ok(Json(api.deployments.deployment(&id).await?.into()))
}

async fn deployment_status(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<StatusView> {
    Ok(Json(api.deployments.deployment(&id).await?.into()))
}

async fn execute_deployment(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<DeploymentView> {
    Ok(Json(api.deployments.execute(&id).await?.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    after: Option<i64>,
}

async fn deployment_events(
    State(api): State<Api>,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> ApiResult<Vec<crate::model::Event>> {
    let Query(q) = query?;
    Ok(Json(api.deployments.events(&id, q.after.unwrap_or(0)).await?))
}

async fn list_apps(State(api): State<Api>) -> ApiResult<Vec<AppView>> {
    Ok(Json(api.apps.apps().await?))
}

async fn scale_app(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Result<Json<ScaleBody>, JsonRejection>,
) -> ApiResult<AppView> {
    let Json(body) = body?;
    Ok(Json(api.apps.scale_app(&name, body.replicas).await?))
}

async fn app_events(
    State(api): State<Api>,
    Path(name): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> ApiResult<Vec<crate::model::AppEvent>> {
    let Query(q) = query?;
    Ok(Json(api.apps.app_events(&name, q.after.unwrap_or(0)).await?))
}

async fn get_app(State(api): State<Api>, Path(name): Path<String>) -> ApiResult<AppView> {
    Ok(Json(api.apps.app(&name).await?))
}

async fn preview_key(State(api): State<Api>, Path(name): Path<String>) -> ApiResult<crate::api_types::PreviewKey> {
    Ok(Json(api.apps.preview_key(&name).await?))
}

async fn replica_logs(State(api): State<Api>, Path((name, id)): Path<(String, String)>) -> Result<String, ApiError> {
    Ok(api.apps.replica_logs(&name, &id, 200).await?)
}

/// 200 while the server answers: a load balancer must not take a server out for a full
/// disk that a restart would not fix; the text says what is wrong.
async fn healthz(State(api): State<Api>) -> String {
    match api.insights.store_outage() {
        Some(why) => format!("degraded: {why}\n"),
        None => "ok\n".to_string(),
    }
}

async fn metrics(State(api): State<Api>) -> impl IntoResponse {
    let mut text = api.insights.prometheus().await;
    api.cluster.prometheus(&mut text);
    listen::prometheus(&mut text);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn cluster(State(api): State<Api>) -> Result<Json<crate::api_types::ClusterView>, ApiError> {
    Ok(Json(api.cluster.view().await.map_err(UserError::internal)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiagnoseQuery {
    verbose: Option<bool>,
}

async fn diagnose(
    State(api): State<Api>,
    Path(id): Path<String>,
    query: Result<Query<DiagnoseQuery>, QueryRejection>,
) -> ApiResult<Diagnosis> {
    let Query(q) = query?;
    Ok(Json(api.insights.diagnose(&id, q.verbose.unwrap_or(false)).await?))
}

async fn rollback(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<DeploymentView> {
    Ok(Json(api.deployments.rollback(&id).await?.into()))
}

async fn pause(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<DeploymentView> {
    Ok(Json(api.deployments.pause(&id).await?.into()))
}

async fn resume(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<DeploymentView> {
    Ok(Json(api.deployments.resume(&id).await?.into()))
}

async fn promote(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<DeploymentView> {
    Ok(Json(api.deployments.promote(&id).await?.into()))
}

async fn abort(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<DeploymentView> {
    Ok(Json(api.deployments.abort(&id).await?.into()))
}

async fn select_winner(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Result<Json<WinnerBody>, JsonRejection>,
) -> ApiResult<DeploymentView> {
    let Json(body) = body?;
    Ok(Json(api.deployments.select_winner(&id, &body.variant).await?.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsQuery {
    variant: Option<String>,
}

async fn deployment_metrics(
    State(api): State<Api>,
    Path(id): Path<String>,
    query: Result<Query<MetricsQuery>, QueryRejection>,
) -> ApiResult<MetricsView> {
    let Query(q) = query?;
    Ok(Json(api.insights.metrics(&id, q.variant.as_deref()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesQuery {
    after: Option<i64>,
}

async fn deployment_series(
    State(api): State<Api>,
    Path(id): Path<String>,
    query: Result<Query<SeriesQuery>, QueryRejection>,
) -> ApiResult<SeriesView> {
    let Query(q) = query?;
    Ok(Json(api.insights.series(&id, q.after.unwrap_or(0)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveQuery {
    force: Option<bool>,
}

async fn remove_app(
    State(api): State<Api>,
    Path(name): Path<String>,
    query: Result<Query<RemoveQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(q) = query?;
    api.apps.remove_app(&name, q.force.unwrap_or(false)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_certs(State(api): State<Api>) -> ApiResult<Vec<CertInfo>> {
    Ok(Json(api.certificates.certs()))
}

async fn add_cert(
    State(api): State<Api>,
    body: Result<Json<CertBody>, JsonRejection>,
) -> Result<(StatusCode, Json<CertInfo>), ApiError> {
    let Json(body) = body?;
    Ok((StatusCode::CREATED, Json(api.certificates.add_cert(&body.host, &body.cert_pem, &body.key_pem).await?)))
}

async fn remove_cert(State(api): State<Api>, Path(host): Path<String>) -> Result<StatusCode, ApiError> {
    api.certificates.remove_cert(&host).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_pipelines(State(api): State<Api>) -> ApiResult<Vec<PipelineView>> {
    Ok(Json(api.deployments.pipelines().await?.into_iter().map(|(name, spec)| PipelineView { name, spec }).collect()))
}

/// A profile is a deployment spec whose app and image come later; send `app` and `image`
/// empty (or leave them out of the CLI).
async fn put_pipeline(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Result<Json<DeploymentSpec>, JsonRejection>,
) -> ApiResult<PipelineView> {
    let Json(spec) = body?;
    api.deployments.put_pipeline(&name, spec).await?;
    let spec =
        api.deployments.pipelines().await?.into_iter().find(|(n, _)| *n == name).map(|(_, s)| s).expect("just stored");
    Ok(Json(PipelineView { name, spec }))
}
