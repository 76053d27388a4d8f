//! The REST API as a client sees it: auth on every route, an OpenAPI document that covers
//! every route, JSON errors for every kind of bad request, lists that filter and page,
//! and token rotation.

use crate::common::{Server, demo_command, http_request_with};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;

/// Every (method, path) in the OpenAPI document, with {params} filled in.
fn documented_routes(server: &Server) -> Vec<(String, String, String)> {
    let doc = server.api("/api/openapi.json");
    let mut routes = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", "dep-00000000").replace("{name}", "nosuchapp");
            routes.push((method.to_uppercase(), path.clone(), concrete));
        }
    }
    routes
}

fn error_of(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert!(v["error"]["code"].is_string() && v["error"]["message"].is_string(), "{v}");
    v["error"].clone()
}

#[test]
fn every_route_but_healthz_needs_the_token() {
    let server = Server::start("process");
    let mode = std::fs::metadata(server.data_dir.join("token")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file is private");
    let routes = documented_routes(&server);
    assert!(routes.len() >= 30, "{routes:?}");
    for (method, path, concrete) in &routes {
        let url = format!("{}{concrete}", server.url);
        for token in [None, Some("hm_wrong")] {
            let (status, body) = http_request_with(method, &url, Some(("application/json", b"{}")), token);
            if path == "/healthz" {
                assert_eq!(status, 200, "{method} {path}");
                continue;
            }
            assert_eq!(status, 401, "{method} {path} without the right token: {body}");
            let e = error_of(&body);
            assert_eq!(e["code"], "unauthorized");
            assert!(e["message"].as_str().unwrap().contains("HIVEMIND_TOKEN"), "{e}");
        }
    }
}

#[test]
fn the_openapi_document_covers_every_route_and_the_product_docs_paths() {
    let server = Server::start("process");
    let routes = documented_routes(&server);
    // Each documented route exists: with the token it is never "no such route" or 405.
    for (method, path, concrete) in &routes {
        if path.ends_with("/events/stream") || path == "/api/token/rotate" {
            continue; // a stream of a missing deployment is a 404 too, but rotating would log us out
        }
        let (status, body) = http_request_with(
            method,
            &format!("{}{concrete}", server.url),
            Some(("application/json", b"{}")),
            Some(&server.token),
        );
        assert!(
            status != 405 && !(status == 404 && body.contains("route_not_found")),
            "{method} {path} is documented but not routed: {status} {body}"
        );
        assert!(status < 500, "{method} {path}: {status} {body}");
    }
    let have: Vec<(String, String)> = routes.iter().map(|(m, p, _)| (m.clone(), p.clone())).collect();
    for (method, path) in [
        ("GET", "/api/deployments"),
        ("POST", "/api/deployments"),
        ("GET", "/api/deployments/{id}"),
        ("POST", "/api/deployments/{id}/execute"),
        ("POST", "/api/deployments/{id}/rollback"),
        ("GET", "/api/deployments/{id}/status"),
        ("POST", "/api/deployments/zero-downtime"),
        ("GET", "/api/deployments/status/{id}"),
        ("POST", "/api/deployments/rollback/{id}"),
        ("POST", "/api/deployments/{id}/promote"),
        ("POST", "/api/deployments/{id}/pause"),
        ("POST", "/api/deployments/{id}/resume"),
        ("POST", "/api/deployments/{id}/abort"),
        ("POST", "/api/deployments/{id}/select-winner"),
        ("GET", "/api/deployments/{id}/events/stream"),
        ("GET", "/api/deployments/{id}/metrics"),
        ("GET", "/api/apps"),
        ("GET", "/api/plugins"),
        ("POST", "/api/plugins"),
        ("GET", "/metrics"),
    ] {
        assert!(
            have.contains(&(method.to_string(), path.to_string())),
            "{method} {path} is missing from the OpenAPI document"
        );
    }
    let doc = server.api("/api/openapi.json");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(
        doc["components"]["schemas"]["DeploymentSpec"]["properties"]["replicas"].is_object(),
        "the spec's schema comes from the code"
    );
}

#[test]
fn bad_requests_get_a_4xx_with_a_json_error_that_names_the_problem() {
    let server = Server::start("process");
    let post = |path: &str, body: &[u8]| {
        let (status, text) = http_request_with(
            "POST",
            &format!("{}{path}", server.url),
            Some(("application/json", body)),
            Some(&server.token),
        );
        (status, error_of(&text))
    };
    let (status, e) = post("/api/deployments", b"{\"app\": \"web\", ");
    assert_eq!(status, 400);
    assert_eq!(e["field"], "body");
    let (status, e) = post("/api/deployments", br#"{"app": "web", "image": "x", "replicas": "three"}"#);
    assert_eq!(status, 400);
    assert!(e["message"].as_str().unwrap().contains("replicas"), "{e}");
    let (status, e) = post("/api/deployments", br#"{"app": "web", "image": "x", "replicaz": 3}"#);
    assert_eq!(status, 400);
    assert!(e["message"].as_str().unwrap().contains("unknown field `replicaz`"), "{e}");
    let (status, e) = post("/api/deployments", br#"{"app": "web", "image": "sleep 1", "replicas": 0}"#);
    assert_eq!((status, e["field"].as_str()), (400, Some("replicas")));
    let huge = format!("{{\"app\": \"web\", \"image\": \"{}\"}}", "x".repeat(2 << 20));
    let (status, e) = post("/api/deployments", huge.as_bytes());
    assert_eq!(status, 413, "{e}");
    let (status, text) = server.get("/api/deployments/not-a-real-id");
    assert_eq!(status, 404);
    assert!(error_of(&text)["message"].as_str().unwrap().contains("no deployment with id `not-a-real-id`"));
    let (status, text) =
        http_request_with("DELETE", &format!("{}/api/deployments", server.url), None, Some(&server.token));
    assert_eq!(status, 405);
    assert_eq!(error_of(&text)["code"], "method_not_allowed");
    let (status, text) = server.get("/api/deployments?limit=0");
    assert_eq!((status, error_of(&text)["field"].as_str()), (400, Some("limit")));
    let (status, text) = server.get("/api/deployments?status=sleepy");
    assert!(
        status == 400 && error_of(&text)["message"].as_str().unwrap().contains("unknown status `sleepy`"),
        "{text}"
    );
    let (status, text) = server.get("/api/nowhere");
    assert_eq!((status, error_of(&text)["code"].as_str()), (404, Some("route_not_found")));
    let (status, body) =
        server.api_post("/api/deployments/dep-x/select-winner", "application/json", b"{\"winner\": 1}");
    assert!(status == 400 || status == 404, "{body}");
}

#[test]
fn lists_filter_by_app_status_and_strategy_a_page_at_a_time() {
    let server = Server::start("process");
    let image = demo_command("v1", "");
    for (app, strategy) in [("one", "simple"), ("two", "rolling-update"), ("one", "rolling-update")] {
        server
            .cli(&[
                "app",
                "deploy",
                "--name",
                app,
                "--image",
                &image,
                "--strategy",
                strategy,
                "--health-check-path",
                "/health",
            ])
            .ok();
    }
    server.cli(&["deployment", "create", "--app-name", "two", "--image", &image]).ok();
    let ids = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["deployment", "list"];
        all.extend_from_slice(args);
        server
            .cli_json(&all)
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                d["app"].as_str().unwrap().to_string()
                    + "/"
                    + d["strategy"].as_str().unwrap()
                    + "/"
                    + d["status"].as_str().unwrap()
            })
            .collect()
    };
    assert_eq!(ids(&["--app", "one"]), vec!["one/rolling-update/completed", "one/simple/completed"]);
    assert_eq!(ids(&["--status", "pending"]), vec!["two/simple/pending"]);
    assert_eq!(ids(&["--strategy", "rolling-update"]).len(), 2);
    assert_eq!(ids(&["--limit", "2"]).len(), 2);
    assert_eq!(ids(&["--limit", "2", "--offset", "2"]).len(), 2);
    assert_eq!(ids(&["--limit", "2", "--offset", "4"]).len(), 0);
    // YAML, for people who like it.
    let yaml = server.cli(&["deployment", "list", "--app", "one", "--output", "yaml"]).ok().stdout;
    assert!(yaml.starts_with("- app: one\n") && yaml.contains("\n  id: dep-"), "{yaml}");
}

#[test]
fn a_rotated_token_replaces_the_old_one() {
    let server = Server::start("process");
    let old = server.token.clone();
    let new = server.cli(&["token", "rotate"]).ok().stdout.trim().to_string();
    assert!(new.starts_with("hm_") && new != old);
    assert_eq!(std::fs::read_to_string(server.data_dir.join("token")).unwrap().trim(), new);
    let url = format!("{}/api/apps", server.url);
    assert_eq!(http_request_with("GET", &url, None, Some(&old)).0, 401);
    assert_eq!(http_request_with("GET", &url, None, Some(&new)).0, 200);
    let _ = json!({});
}

/// Random deployment bodies over HTTP: whatever they hold, the answer is never a 5xx.
#[test]
fn random_deployment_bodies_never_get_a_5xx() {
    let server = Server::start("process");
    let mut rng = fastrand::Rng::with_seed(7);
    let fields = [
        "app",
        "image",
        "replicas",
        "strategy",
        "params",
        "variants",
        "env",
        "resources",
        "port",
        "health_check_path",
        "x",
    ];
    let values = [
        json!(null),
        json!(0),
        json!(-1),
        json!(70000),
        json!(1.5),
        json!("web"),
        json!("sleep 1"),
        json!(""),
        json!([]),
        json!({}),
        json!({"cpu": -1}),
        json!([{"name": "a", "image": "b", "percentage": 101}]),
        json!("Web App"),
        json!(true),
    ];
    for _ in 0..150 {
        let mut body = serde_json::Map::new();
        for _ in 0..rng.usize(0..6) {
            body.insert(fields[rng.usize(..fields.len())].to_string(), values[rng.usize(..values.len())].clone());
        }
        let text = Value::Object(body).to_string();
        for path in ["/api/deployments", "/api/apps/deploy"] {
            let (status, answer) = server.api_post(path, "application/json", text.as_bytes());
            assert!(status < 500, "POST {path} {text}: {status} {answer}");
            if status >= 400 {
                assert!(answer["error"]["message"].is_string(), "{answer}");
            }
        }
    }
}

/// The OpenAPI document passes a real validator (openapi-spec-validator, from PyPI), and
/// every JSON answer of every route, successes and errors, matches the schema the
/// document gives it.
#[test]
fn the_openapi_document_validates_and_every_answer_matches_its_schema() {
    if !crate::common::python_modules_available(
        "the OpenAPI check",
        &["openapi_spec_validator", "jsonschema"],
        "pip install openapi-spec-validator",
    ) {
        return;
    }
    let server = Server::start("process");
    let mut samples: Vec<Value> = Vec::new();
    let mut call = |method: &str, template: &str, concrete: &str, body: Option<&Value>, token: bool| -> Value {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let (status, text) = http_request_with(
            method,
            &format!("{}{concrete}", server.url),
            bytes.as_deref().map(|b| ("application/json", b)),
            token.then_some(server.token.as_str()),
        );
        let parsed: Option<Value> = if text.trim().is_empty() {
            None
        } else {
            Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {concrete}: not JSON ({e}): {text}")))
        };
        samples.push(json!({"method": method, "path": template, "status": status, "body": parsed}));
        parsed.unwrap_or(Value::Null)
    };
    let image = demo_command("v1", "");
    let spec = json!({"app": "web", "image": image, "replicas": 2, "health_check_path": "/health"});
    let first = call("POST", "/api/apps/deploy", "/api/apps/deploy", Some(&spec), true);
    let id = first["id"].as_str().unwrap().to_string();
    server.wait_for(&id, std::time::Duration::from_secs(30));
    let failing = json!({"app": "web", "image": demo_command("v2", "--fail-health"), "health_check_path": "/health",
        "health_check_timeout": 2, "strategy": "canary", "params": {"steps": "50,100", "interval": "1"}});
    let failed = call("POST", "/api/apps/deploy", "/api/apps/deploy", Some(&failing), true);
    let failed = failed["id"].as_str().unwrap().to_string();
    server.wait_for(&failed, std::time::Duration::from_secs(60));
    let pending =
        call("POST", "/api/deployments", "/api/deployments", Some(&json!({"app": "web", "image": image})), true);
    let pending = pending["id"].as_str().unwrap().to_string();

    for d in [&id, &failed, &pending] {
        for (template, suffix) in [
            ("/api/deployments/{id}", ""),
            ("/api/deployments/{id}/status", "/status"),
            ("/api/deployments/{id}/events", "/events"),
            ("/api/deployments/{id}/diagnose", "/diagnose?verbose=true"),
            ("/api/deployments/{id}/metrics", "/metrics"),
        ] {
            call("GET", template, &format!("/api/deployments/{d}{suffix}"), None, true);
        }
        call("GET", "/api/deployments/status/{id}", &format!("/api/deployments/status/{d}"), None, true);
    }
    call("GET", "/api/deployments", "/api/deployments?app=web&limit=10", None, true);
    call("POST", "/api/deployments/{id}/abort", &format!("/api/deployments/{pending}/abort"), None, true);
    call("POST", "/api/deployments/{id}/pause", &format!("/api/deployments/{pending}/pause"), None, true);
    call("GET", "/api/apps", "/api/apps", None, true);
    call("GET", "/api/apps/{name}", "/api/apps/web", None, true);
    call("POST", "/api/apps/{name}/scale", "/api/apps/web/scale", Some(&json!({"replicas": 3})), true);
    call("POST", "/api/apps/{name}/scale", "/api/apps/web/scale", Some(&json!({"replicas": 0})), true);
    call("GET", "/api/apps/{name}/events", "/api/apps/web/events", None, true);
    call(
        "PUT",
        "/api/pipelines/{name}",
        "/api/pipelines/ci",
        Some(&json!({"app": "", "strategy": "blue-green"})),
        true,
    );
    call("GET", "/api/pipelines", "/api/pipelines", None, true);
    call("GET", "/api/plugins", "/api/plugins", None, true);
    call("GET", "/api/plugins/{name}", "/api/plugins/canary", None, true);
    call("POST", "/api/plugins/{name}/disable", "/api/plugins/canary/disable", None, true);
    call("POST", "/api/plugins/{name}/enable", "/api/plugins/canary/enable", None, true);
    // Errors: unknown ids, bad bodies, a missing token, a refused action.
    call("GET", "/api/deployments/{id}", "/api/deployments/dep-00000000", None, true);
    call(
        "POST",
        "/api/apps/deploy",
        "/api/apps/deploy",
        Some(&json!({"app": "web", "replicas": 0, "image": "x"})),
        true,
    );
    call("POST", "/api/deployments", "/api/deployments", Some(&json!({"nonsense": true})), true);
    call("GET", "/api/apps", "/api/apps", None, false);
    call("POST", "/api/deployments/{id}/resume", &format!("/api/deployments/{id}/resume"), None, true);
    call("DELETE", "/api/apps/{name}", "/api/apps/web?force=true", None, true);
    let document = server.get("/api/openapi.json").1;
    call("POST", "/api/token/rotate", "/api/token/rotate", None, true);

    let statuses: std::collections::BTreeSet<u64> = samples.iter().map(|s| s["status"].as_u64().unwrap()).collect();
    assert!(statuses.is_superset(&[200, 201, 204, 400, 401, 404, 409].into()), "{statuses:?}");
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("openapi.json");
    let answers = dir.path().join("samples.json");
    std::fs::write(&doc, document).unwrap();
    std::fs::write(&answers, serde_json::to_string(&samples).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .arg(crate::common::repo_root().join("tests/openapi_check.py"))
        .args([&doc, &answers])
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{report}");
    assert!(out.status.success(), "{report}");
}
