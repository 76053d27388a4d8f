//! The OpenAPI 3.1 document, built from the same route table as the router, with every
//! request and response body's JSON Schema derived from its Rust type. The schemas live
//! in `components/schemas` and refer to each other there, so every `$ref` resolves.

use super::{Api, ROUTES};
use crate::api_types::{
    AppView, CertBody, CertInfo, ClusterView, DeploymentView, Diagnosis, ErrorBody, MetricsView, PipelineView,
    PluginDetails, PluginView, Rotated, ScaleBody, SeriesView, StatusView, WinnerBody,
};
use crate::model::{AppEvent, DeploymentSpec, Event};
use axum::Json;
use axum::extract::State;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// One route as the document describes it.
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// The request body: a schema name, "component" for raw bytes, or "" for none.
    pub body: &'static str,
    /// Query parameters, comma-separated, each `name` (a string) or `name:type`.
    pub query: &'static str,
    /// The status of a success.
    pub ok: u16,
    /// The success's body: a schema name, `Name[]` for a list of them, `text`, `sse`,
    /// `json` (any JSON), or "" for none.
    pub response: &'static str,
}

/// Every schema a body refers to, by name, with the schemas they refer to in turn.
fn schemas() -> Map<String, Value> {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut generator = settings.into_generator();
    macro_rules! register {
        ($($ty:ty),*) => {$(generator.subschema_for::<$ty>();)*};
    }
    register!(
        DeploymentSpec,
        WinnerBody,
        DeploymentView,
        StatusView,
        Event,
        Diagnosis,
        MetricsView,
        SeriesView,
        AppView,
        PipelineView,
        PluginView,
        PluginDetails,
        Rotated,
        ScaleBody,
        CertBody,
        CertInfo,
        AppEvent,
        ClusterView,
        ErrorBody
    );
    generator.take_definitions(true)
}

fn content(response: &str) -> Option<Value> {
    let schema_ref = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    Some(match response {
        "" => return None,
        "text" => json!({"text/plain": {"schema": {"type": "string"}}}),
        "sse" => json!({"text/event-stream": {"schema": {"type": "string"}}}),
        "json" => json!({"application/json": {"schema": {"type": "object"}}}),
        list if list.ends_with("[]") => {
            json!({"application/json": {"schema": {"type": "array", "items": schema_ref(&list[..list.len() - 2])}}})
        }
        name => json!({"application/json": {"schema": schema_ref(name)}}),
    })
}

fn operation(route: &RouteDoc) -> Value {
    let mut params: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    for query in route.query.split(',').filter(|q| !q.is_empty()) {
        let (name, ty) = query.split_once(':').unwrap_or((query, "string"));
        params.push(json!({"name": name, "in": "query", "required": false, "schema": {"type": ty}}));
    }
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    let mut success = json!({"description": "Success"});
    if let Some(body) = content(route.response) {
        success["content"] = body;
    }
    let mut operation = json!({
        "summary": route.summary,
        "operationId": format!("{}{}", route.method, route.path.replace(['/', '{', '}', '-', '.'], "_")),
        "parameters": params,
        "responses": {
            route.ok.to_string(): success,
            "4XX": {"description": "The request was wrong or is not allowed now; the body says which field and why", "content": error.clone()},
            "5XX": {"description": "The server failed; the body says how", "content": error},
        },
    });
    if route.path == "/healthz" {
        operation["security"] = json!([]);
    }
    match route.body {
        "" => {}
        "component" => {
            operation["requestBody"] = json!({"required": true, "content": {"application/wasm": {"schema": {"type": "string", "format": "binary"}}}});
        }
        schema => {
            operation["requestBody"] = json!({"required": true,
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
        }
    }
    operation
}

pub fn build() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths.entry(route.path.to_string()).or_insert_with(|| json!({}));
        entry[route.method] = operation(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Hivemind", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Zero-downtime deployments with strategies as sandboxed WebAssembly components."},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
    })
}

pub async fn document(State(_): State<Api>) -> Json<Value> {
    Json(build())
}

#[cfg(test)]
mod tests {
    use super::build;
    use serde_json::Value;

    /// Every `$ref` in `value`.
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_ref_resolves_within_the_document() {
        let doc = build();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 20, "the document refers to its schemas: {all:?}");
        for r in all {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} is not local"));
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }
}
