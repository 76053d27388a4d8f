//! The OpenAPI 3.1 document, built from the same route table as the router, with every
//! request and response body's JSON Schema derived from its Rust type. The schemas live
//! in `components/schemas` and refer to each other there, so every `$ref` resolves.

use super::{Api, ROUTES};
use crate::api_types::{
    AppView, CertBody, CertInfo, ClusterView, DeploymentView, Diagnosis, ErrorBody, LoginBody, MetricsView,
    PipelineView, PluginDetails, PluginView, PreviewKey, RegistryView, Rotated, ScaleBody, SeriesView, StatusView,
    WinnerBody,
};
use crate::error::{ErrorCode, Field};
use crate::model::{AppEvent, DeploymentSpec, Event};
use axum::Json;
use axum::extract::State;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

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
    /// The error codes the handler and the engine calls it makes can answer, in groups
    /// (the route's own, then those of shared engine calls: `codes.rs`).
    pub errors: &'static [&'static [ErrorCode]],
}

impl RouteDoc {
    /// Every code the route can answer, in `ErrorCode`'s order: those the table lists;
    /// those its shape implies (a path parameter that does not decode, a JSON body or a
    /// query that does not parse); and those of every route but /healthz (the token, no
    /// leader to forward to, the lease lost, a failure).
    pub fn codes(&self) -> Vec<ErrorCode> {
        if self.path == "/healthz" {
            return Vec::new();
        }
        let mut codes: Vec<ErrorCode> = self.errors.iter().flat_map(|group| group.iter().copied()).collect();
        if self.path.contains('{') {
            codes.push(ErrorCode::BadRequest);
        }
        if !matches!(self.body, "" | "component") {
            codes.push(ErrorCode::Invalid(Field::Body));
        }
        if !self.query.is_empty() {
            codes.push(ErrorCode::Invalid(Field::Query));
        }
        codes.extend(ErrorCode::EVERY_ROUTE);
        codes.sort();
        codes.dedup();
        codes
    }
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
        PreviewKey,
        ScaleBody,
        CertBody,
        CertInfo,
        LoginBody,
        RegistryView,
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
    let mut success = json!({"description": "Success"});
    if let Some(body) = content(route.response) {
        success["content"] = body;
    }
    let mut operation = json!({
        "summary": route.summary,
        "operationId": format!("{}{}", route.method, route.path.replace(['/', '{', '}', '-', '.'], "_")),
        "parameters": params,
        "responses": {route.ok.to_string(): success},
    });
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for code in route.codes() {
        for status in code.statuses() {
            by_status.entry(*status).or_default().push(code);
        }
    }
    for (status, codes) in by_status {
        operation["responses"][status.to_string()] = errors(&codes);
    }
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

/// An error answer that carries one of `codes`: the error body, its `code` one of theirs,
/// and a line per code saying what it means.
fn errors(codes: &[ErrorCode]) -> Value {
    let lines: Vec<String> = codes.iter().map(|code| format!("- `{code}`: {}", code.description())).collect();
    let wire: Vec<&str> = codes.iter().map(|code| code.as_str()).collect();
    json!({
        "description": lines.join("\n"),
        "content": {"application/json": {"schema": {"allOf": [
            {"$ref": "#/components/schemas/ErrorBody"},
            {"properties": {"error": {"properties": {"code": {"enum": wire}}}}},
        ]}}},
    })
}

pub fn build() -> Value {
    // The answers to a request no route takes (a path, or a method, not in `paths`).
    let unrouted: Vec<Value> = ErrorCode::UNROUTED
        .iter()
        .map(|code| json!({"code": code.as_str(), "status": code.status(), "description": code.description()}))
        .collect();
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
        "x-unrouted-errors": unrouted,
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
    use crate::error::ErrorCode;
    use serde_json::{Value, json};
    use std::collections::HashSet;

    /// The codes of one error answer's schema.
    fn enum_of(response: &Value) -> Vec<String> {
        let schema = &response["content"]["application/json"]["schema"]["allOf"][1];
        let codes = schema["properties"]["error"]["properties"]["code"]["enum"].as_array();
        codes.unwrap_or_else(|| panic!("no codes in {response}")).iter().map(|c| c.as_str().unwrap().into()).collect()
    }

    /// Every code a route's error answers list, by status.
    fn codes_of(doc: &Value, method: &str, path: &str) -> Vec<(u16, String)> {
        let responses = doc["paths"][path][method]["responses"].as_object();
        let responses = responses.unwrap_or_else(|| panic!("{method} {path} is not in the document"));
        let mut all = Vec::new();
        for (status, response) in responses.iter().filter(|(status, _)| !status.starts_with('2')) {
            let status: u16 = status.parse().unwrap_or_else(|_| panic!("{method} {path}: status {status}"));
            all.extend(enum_of(response).into_iter().map(|code| (status, code)));
        }
        all
    }

    #[test]
    fn each_route_lists_the_codes_it_answers_under_their_status() {
        let doc = build();
        let has = |method: &str, path: &str, expected: &[(u16, &str)]| {
            let listed = codes_of(&doc, method, path);
            for (status, code) in expected {
                assert!(
                    listed.contains(&(*status, code.to_string())),
                    "{method} {path} lacks {status} {code}: {listed:?}"
                );
            }
            listed
        };
        let shared = [(401, "unauthorized"), (500, "internal"), (503, "not_leader"), (503, "no_leader")];
        let pause = has("post", "/api/deployments/{id}/pause", &[(409, "cannot_pause"), (404, "deployment_not_found")]);
        has("post", "/api/deployments/{id}/pause", &shared);
        assert!(!pause.iter().any(|(_, code)| code == "cannot_resume"), "{pause:?}");
        let conflicts = &doc["paths"]["/api/deployments/{id}/pause"]["post"]["responses"]["409"];
        assert_eq!(enum_of(conflicts), ["cannot_pause"]);
        assert!(conflicts["description"].as_str().unwrap().contains("`cannot_pause`: only a deployment in progress"));
        has(
            "post",
            "/api/deployments",
            &[
                (400, "invalid_replicas"),
                (400, "invalid_hooks.pre"),
                (400, "invalid_body"),
                (413, "invalid_body"),
                (409, "deployment_in_progress"),
                (409, "host_taken"),
                (422, "plugin_failed"),
            ],
        );
        has(
            "post",
            "/api/deployments/{id}/rollback",
            &[
                (409, "cannot_roll_back"),
                (409, "nothing_to_roll_back_to"),
                (409, "not_current_release"),
                (409, "not_pending"),
            ],
        );
        has(
            "post",
            "/api/deployments/{id}/select-winner",
            &[
                (409, "not_an_ab_test"),
                (409, "cannot_select_a_winner_for"),
                (400, "invalid_variant"),
                (400, "bad_request"),
            ],
        );
        has("get", "/api/deployments", &[(400, "invalid_limit"), (400, "invalid_status"), (400, "invalid_query")]);
        has("delete", "/api/plugins/{name}", &[(404, "plugin_not_found"), (409, "plugin_in_use")]);
        assert!(codes_of(&doc, "get", "/healthz").is_empty(), "/healthz needs no token and always answers");
    }

    #[test]
    fn every_code_is_answered_somewhere_and_under_its_status() {
        let doc = build();
        let mut listed = HashSet::new();
        for (path, methods) in doc["paths"].as_object().unwrap() {
            for method in methods.as_object().unwrap().keys() {
                for (status, code) in codes_of(&doc, method, path) {
                    let known =
                        ErrorCode::parse(&code).unwrap_or_else(|| panic!("{method} {path}: `{code}` is no code"));
                    assert!(known.statuses().contains(&status), "{method} {path}: `{code}` under {status}");
                    listed.insert(known);
                }
            }
        }
        let unrouted: Vec<ErrorCode> = doc["x-unrouted-errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| ErrorCode::parse(e["code"].as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(unrouted, ErrorCode::UNROUTED);
        for code in ErrorCode::ALL {
            assert!(
                listed.contains(&code) || unrouted.contains(&code),
                "no route lists `{code}`: add it to the route table (api_routes!) where a handler answers it"
            );
        }
        assert_eq!(doc["components"]["schemas"]["ErrorCode"]["enum"].as_array().unwrap().len(), ErrorCode::ALL.len());
        assert_eq!(
            doc["x-unrouted-errors"][0],
            json!({"code": "route_not_found", "status": 404,
            "description": ErrorCode::RouteNotFound.description()})
        );
    }

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
