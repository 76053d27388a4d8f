//! The registry routes: the credentials image pulls use, given with `registry login`.

use super::{Api, ApiError, ApiResult};
use crate::api_types::{LoginBody, RegistryView};
use crate::error::{ErrorCode, UserError};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;

fn view((login, source): (crate::model::RegistryLogin, &str)) -> RegistryView {
    RegistryView {
        registry: login.registry,
        username: login.username,
        source: source.to_string(),
        updated_at_ms: login.updated_at_ms,
    }
}

pub(super) async fn list(State(api): State<Api>) -> ApiResult<Vec<RegistryView>> {
    Ok(Json(api.registries.list().await?.into_iter().map(view).collect()))
}

pub(super) async fn login(
    State(api): State<Api>,
    Path(registry): Path<String>,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> ApiResult<RegistryView> {
    let Json(body) = body?;
    let login = api.registries.login(&registry, &body.username, &body.password).await?;
    Ok(Json(view((login, "registry login"))))
}

pub(super) async fn logout(State(api): State<Api>, Path(registry): Path<String>) -> Result<StatusCode, ApiError> {
    if !api.registries.logout(&registry).await? {
        return Err(ApiError(UserError::not_found(
            ErrorCode::RegistryNotFound,
            format!("the server keeps no login for {registry}; `hivemind registry list` shows those it has"),
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
