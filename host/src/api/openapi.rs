//! The OpenAPI 3.1 document, built from the same route table as the router, with the
//! request bodies' JSON Schemas derived from their Rust types.

use super::{Api, ROUTES, WinnerBody};
use crate::model::DeploymentSpec;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

/// One route as the document describes it.
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// The request body: a schema name, "component" for raw bytes, or "" for none.
    pub body: &'static str,
}

pub fn build() -> Value {
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut operation = json!({
            "summary": route.summary,
            "operationId": format!("{}{}", route.method, route.path.replace(['/', '{', '}', '-', '.'], "_")),
            "parameters": params,
            "responses": {
                "200": {"description": "Success"},
                "4XX": {"description": "The request was wrong; the body says which field and why",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
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
        let entry = paths.entry(route.path.to_string()).or_insert_with(|| json!({}));
        entry[route.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Hivemind", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Zero-downtime deployments with strategies as sandboxed WebAssembly components."},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "DeploymentSpec": schemars::schema_for!(DeploymentSpec),
                "WinnerBody": schemars::schema_for!(WinnerBody),
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
                    "required": ["code", "message"], "properties": {"code": {"type": "string"}, "field": {"type": "string"},
                    "message": {"type": "string"}}}}},
            },
        },
    })
}

pub async fn document(State(_): State<Api>) -> Json<Value> {
    Json(build())
}
