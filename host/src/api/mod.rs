//! The REST API: JSON in, JSON out, and JSON errors with a stable code, the field that
//! was wrong, and a message that says what to do.

mod stream;

use crate::engine::Engine;
use crate::error::UserError;
use crate::model::{Deployment, DeploymentSpec, rfc3339};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone)]
pub struct Api {
    pub engine: Arc<Engine>,
    pub plugins_dir: PathBuf,
}

pub fn router(api: Api) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/deployments", get(list_deployments).post(create_deployment))
        .route("/api/deployments/zero-downtime", post(zero_downtime))
        .route("/api/deployments/{id}", get(get_deployment))
        .route("/api/deployments/{id}/status", get(deployment_status))
        .route("/api/deployments/{id}/execute", post(execute_deployment))
        .route("/api/deployments/{id}/events", get(deployment_events))
        .route("/api/deployments/{id}/events/stream", get(stream::deployment_stream))
        .route("/api/deployments/{id}/diagnose", get(diagnose))
        .route("/api/deployments/{id}/rollback", post(rollback))
        .route("/api/deployments/{id}/pause", post(pause))
        .route("/api/deployments/{id}/resume", post(resume))
        .route("/api/deployments/{id}/promote", post(promote))
        .route("/api/deployments/{id}/abort", post(abort))
        .route("/api/deployments/{id}/select-winner", post(select_winner))
        .route("/api/deployments/{id}/metrics", get(deployment_metrics))
        // The product docs' older spellings.
        .route("/api/deployments/status/{id}", get(deployment_status))
        .route("/api/deployments/rollback/{id}", post(rollback))
        .route("/api/apps", get(list_apps))
        .route("/api/apps/deploy", post(deploy))
        .route("/api/apps/{name}", get(get_app))
        .route("/api/apps/{name}/replicas/{id}/logs", get(replica_logs))
        .route("/api/plugins", get(list_plugins).post(install_plugin).layer(DefaultBodyLimit::max(32 << 20)))
        .fallback(|| async {
            ApiError(UserError::not_found("route", "no such API route; see the README for the routes"))
        })
        .layer(DefaultBodyLimit::max(1 << 20))
        .with_state(api)
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
        let mut e = UserError::invalid("body", format!("the request body is not valid: {}", r.body_text()));
        e.status = if status == 413 { 413 } else { 400 };
        ApiError(e)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError(UserError::invalid("query", r.body_text()))
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// A deployment as the API shows it: the record plus timestamps people can read.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct DeploymentView {
    #[serde(flatten)]
    pub deployment: Deployment,
    pub completed: bool,
    pub successful: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Deployment> for DeploymentView {
    fn from(d: Deployment) -> Self {
        DeploymentView {
            completed: d.completed(),
            successful: d.successful(),
            created_at: rfc3339(d.created_at_ms),
            updated_at: rfc3339(d.updated_at_ms),
            deployment: d,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    app: Option<String>,
    limit: Option<i64>,
}

async fn list_deployments(
    State(api): State<Api>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Vec<DeploymentView>> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(UserError::invalid("limit", "limit must be 1 to 1000").into());
    }
    let list = api.engine.deployments(q.app.as_deref(), limit).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

async fn create_deployment(
    State(api): State<Api>,
    body: Result<Json<DeploymentSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let Json(spec) = body?;
    let d = api.engine.create(spec).await?;
    Ok((StatusCode::CREATED, Json(d.into())))
}

async fn deploy(
    State(api): State<Api>,
    body: Result<Json<DeploymentSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let Json(spec) = body?;
    let d = api.engine.deploy(spec).await?;
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
    let d = api.engine.deploy(spec).await?;
    Ok((StatusCode::CREATED, Json(d.into())))
}

async fn get_deployment(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<DeploymentView> {
    Ok(Json(api.engine.deployment(&id).await?.into()))
}

/// The status summary the product's docs describe.
#[derive(Serialize, Deserialize, Debug)]
pub struct StatusView {
    pub id: String,
    pub app: String,
    pub status: String,
    pub progress: u8,
    pub message: String,
    pub error: Option<String>,
    pub completed: bool,
    pub successful: bool,
    pub created_at: String,
    pub updated_at: String,
}

async fn deployment_status(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<StatusView> {
    let d = api.engine.deployment(&id).await?;
    Ok(Json(StatusView {
        status: d.status.as_str().to_string(),
        completed: d.completed(),
        successful: d.successful(),
        created_at: rfc3339(d.created_at_ms),
        updated_at: rfc3339(d.updated_at_ms),
        id: d.id,
        app: d.app,
        progress: d.progress,
        message: d.message,
        error: d.error,
    }))
}

async fn execute_deployment(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<DeploymentView> {
    Ok(Json(api.engine.execute(&id).await?.into()))
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
    Ok(Json(api.engine.events(&id, q.after.unwrap_or(0)).await?))
}

async fn list_apps(State(api): State<Api>) -> ApiResult<Vec<crate::engine::AppView>> {
    Ok(Json(api.engine.apps().await?))
}

async fn get_app(State(api): State<Api>, Path(name): Path<String>) -> ApiResult<crate::engine::AppView> {
    Ok(Json(api.engine.app(&name).await?))
}

#[derive(Serialize, Deserialize, Debug)]
pub struct PluginView {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub description: String,
    pub origin: crate::plugins::Origin,
    pub size: usize,
}

fn plugin_view(p: &crate::plugins::LoadedPlugin) -> PluginView {
    PluginView {
        name: p.info.name.clone(),
        version: p.info.version.clone(),
        sha256: p.info.sha256.clone(),
        description: p.description.clone(),
        origin: p.origin,
        size: p.size,
    }
}

async fn list_plugins(State(api): State<Api>) -> ApiResult<Vec<PluginView>> {
    Ok(Json(api.engine.plugins().list().iter().map(|p| plugin_view(p)).collect()))
}

async fn install_plugin(
    State(api): State<Api>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<PluginView>), ApiError> {
    if body.is_empty() {
        return Err(UserError::invalid(
            "plugin",
            "the request body is empty; send the component's bytes (application/wasm)",
        )
        .into());
    }
    let plugin = api.engine.install_plugin(body.to_vec(), &api.plugins_dir).await?;
    Ok((StatusCode::CREATED, Json(plugin_view(&plugin))))
}

async fn replica_logs(State(api): State<Api>, Path((name, id)): Path<(String, String)>) -> Result<String, ApiError> {
    Ok(api.engine.replica_logs(&name, &id, 200).await?)
}

async fn metrics(State(api): State<Api>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], api.engine.prometheus())
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
) -> ApiResult<crate::engine::Diagnosis> {
    let Query(q) = query?;
    Ok(Json(api.engine.diagnose(&id, q.verbose.unwrap_or(false)).await?))
}

async fn rollback(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<DeploymentView> {
    Ok(Json(api.engine.rollback(&id).await?.into()))
}

async fn pause(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<DeploymentView> {
    Ok(Json(api.engine.pause(&id).await?.into()))
}

async fn resume(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<DeploymentView> {
    Ok(Json(api.engine.resume(&id).await?.into()))
}

async fn promote(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<DeploymentView> {
    Ok(Json(api.engine.promote(&id).await?.into()))
}

async fn abort(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<DeploymentView> {
    Ok(Json(api.engine.abort(&id).await?.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WinnerBody {
    variant: String,
}

async fn select_winner(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Result<Json<WinnerBody>, JsonRejection>,
) -> ApiResult<DeploymentView> {
    let Json(body) = body?;
    Ok(Json(api.engine.select_winner(&id, &body.variant).await?.into()))
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
) -> ApiResult<crate::engine::MetricsView> {
    let Query(q) = query?;
    Ok(Json(api.engine.metrics(&id, q.variant.as_deref()).await?))
}
