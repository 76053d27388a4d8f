//! The plugin routes: list, install (an upload), inspect, remove, enable, disable.

use super::{Api, ApiError, ApiResult};
use crate::api_types::{PluginDetails, PluginView, SignatureView};
use crate::error::{ErrorCode, Field, UserError};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

pub(super) fn plugin_view(p: &crate::plugins::LoadedPlugin) -> PluginView {
    PluginView {
        name: p.info.name.clone(),
        version: p.info.version.clone(),
        sha256: p.info.sha256.clone(),
        description: p.description.clone(),
        origin: p.origin,
        size: p.size,
        enabled: !p.disabled.load(std::sync::atomic::Ordering::Relaxed),
        api_version: p.api_version.clone(),
        source: p.source.clone(),
        kind: p.kind(),
        grants: p.grants(),
        asks_for: p.asks_for(),
        signature: p.signature().map(|s| s.signer).map(|s| SignatureView {
            key_id: s.key_id.clone(),
            trusted_key: s.trusted_key.clone(),
            verified: s.verified(),
            comment: s.comment.clone(),
        }),
    }
}

pub(super) async fn list_plugins(State(api): State<Api>) -> ApiResult<Vec<PluginView>> {
    Ok(Json(api.catalog.plugins().list().iter().map(|p| plugin_view(p)).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InstallQuery {
    /// Take the name of a built-in plugin.
    replace: Option<bool>,
    /// Where the component came from, shown by `plugin inspect` (the CLI sends the file
    /// or the OCI reference).
    source: Option<String>,
    /// The text of the component's minisign signature (its `.minisig` file).
    signature: Option<String>,
    /// What the plugin may do, comma-separated: `jobs`, `http`, `http:HOST:PORT`.
    allow: Option<String>,
}

pub(super) async fn install_plugin(
    State(api): State<Api>,
    query: Result<Query<InstallQuery>, QueryRejection>,
    request: axum::extract::Request,
) -> Result<(StatusCode, Json<PluginView>), ApiError> {
    let Query(query) = query?;
    // Components are larger than API bodies: this route reads up to 32 MiB itself.
    let body = axum::body::to_bytes(request.into_body(), 32 << 20).await.map_err(|_| {
        let mut e = UserError::invalid(Field::Plugin, "the component is larger than 32 MiB");
        e.status = 413;
        ApiError(e)
    })?;
    if body.is_empty() {
        return Err(UserError::invalid(
            Field::Plugin,
            "the request body is empty; send the component's bytes (application/wasm)",
        )
        .into());
    }
    let source = match query.source {
        Some(s) if s.chars().count() > 500 => {
            return Err(UserError::invalid(Field::Source, "source must be at most 500 characters").into());
        }
        Some(s) => s,
        None => "uploaded through the API".to_string(),
    };
    if query.signature.as_ref().is_some_and(|s| s.len() > 4096) {
        return Err(UserError::invalid(Field::Signature, "a minisign signature is a few hundred bytes, not more than 4 KiB; send the text of the component's .minisig file").into());
    }
    let grants = hivemind_model::grants::Grants::parse_list(query.allow.as_deref().unwrap_or_default())
        .map_err(|why| UserError::invalid(Field::Allow, why))?;
    let plugin = api
        .catalog
        .install_plugin(
            body.to_vec(),
            query.signature,
            &api.plugins_dir,
            query.replace.unwrap_or(false),
            source,
            grants,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(plugin_view(&plugin))))
}

pub(super) async fn inspect_plugin(State(api): State<Api>, Path(name): Path<String>) -> ApiResult<PluginDetails> {
    let p = api.catalog.plugins().get(&name).ok_or_else(|| {
        ApiError(UserError::not_found(
            ErrorCode::PluginNotFound,
            format!("no plugin named `{name}`; `hivemind plugin list` shows them"),
        ))
    })?;
    Ok(Json(PluginDetails {
        plugin: plugin_view(&p),
        world: p.kind().world().into(),
        imports: p.imports.clone(),
        exports: p.exports.clone(),
    }))
}

pub(super) async fn remove_plugin(State(api): State<Api>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    api.catalog.remove_plugin(&name, &api.plugins_dir).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn enable_plugin(State(api): State<Api>, Path(name): Path<String>) -> ApiResult<PluginView> {
    let p = api.catalog.set_plugin_enabled(&name, true).await?;
    Ok(Json(plugin_view(&p)))
}

pub(super) async fn disable_plugin(State(api): State<Api>, Path(name): Path<String>) -> ApiResult<PluginView> {
    let p = api.catalog.set_plugin_enabled(&name, false).await?;
    Ok(Json(plugin_view(&p)))
}
