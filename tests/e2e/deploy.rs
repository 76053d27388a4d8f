//! The first path end to end with the process runtime: deploy, redeploy, a version that
//! never gets healthy, bad input, and a restart. Everything goes through the real CLI,
//! the real API, the real router and real replica processes.

use crate::common::{Server, demo_command, versions_served};
use std::time::Duration;

fn pid_alive(pid: &str) -> bool {
    unsafe { libc::kill(pid.parse().unwrap(), 0) == 0 }
}

#[test]
fn deploys_v1_then_v2_with_the_process_runtime() {
    let server = Server::start("process");
    let v1 = server.deploy("web", &demo_command("v1", ""), &["--replicas", "3"]).ok();
    assert!(v1.stdout.contains("completed"), "{}", v1.stdout);
    let port = server.app_port("web");
    assert_eq!(versions_served(port, 12), vec!["v1"; 12]);
    let old_pids: Vec<String> = server.api("/api/apps/web")["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["handle"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(old_pids.len(), 3);

    let v2 = server.deploy("web", &demo_command("v2", ""), &["--replicas", "3"]).ok().json();
    let id = v2["id"].as_str().unwrap();
    assert_eq!(versions_served(port, 12), vec!["v2"; 12]);

    // The status a user reads, through the CLI and through the API.
    let status = server.cli_json(&["deployment", "status", "--id", id]);
    assert_eq!(status["status"], "completed");
    assert_eq!(status["progress"], 100);
    assert_eq!(status["completed"], true);
    assert_eq!(status["successful"], true);
    let text = server.cli(&["deployment", "status", "--id", id]).ok().stdout;
    assert!(text.contains("completed") && text.contains("100%"), "{text}");
    assert_eq!(server.api(&format!("/api/deployments/{id}/status"))["status"], "completed");

    // Exactly three replicas remain, all of the new release; the old processes are gone.
    let app = server.api("/api/apps/web");
    let replicas = app["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 3);
    assert!(replicas.iter().all(|r| r["version"] == "r2" && r["healthy"] == true), "{app}");
    assert!(old_pids.iter().all(|p| !pid_alive(p)), "old replicas still run: {old_pids:?}");
    assert_eq!(app["release"]["version"], "r2");

    // The router's counts are on the server's Prometheus endpoint.
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains(r#"hivemind_router_requests_total{app="web",version="r2",class="2xx"} 12"#), "{metrics}");
    assert!(metrics.contains(r#"hivemind_router_requests_total{app="web",version="r1",class="2xx"} 12"#), "{metrics}");
    assert!(metrics.contains(r#"hivemind_deployments_total{strategy="simple",outcome="completed"} 2"#), "{metrics}");
    assert!(!metrics.contains("hivemind_step_duration_seconds_count 0"), "steps are timed: {metrics}");
}

#[test]
fn a_version_that_never_gets_healthy_fails_and_the_previous_release_keeps_serving() {
    let server = Server::start("process");
    server.deploy("shop", &demo_command("v1", ""), &["--replicas", "2"]).ok();
    let port = server.app_port("shop");

    let run = server.deploy(
        "shop",
        &demo_command("v2", "--fail-health"),
        &["--replicas", "2", "--health-check-timeout", "2"],
    );
    assert_eq!(run.code, 1, "a failed deployment exits 1: {run:?}");
    let list = server.cli_json(&["deployment", "list", "--app", "shop"]);
    let failed = &list[0];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["successful"], false);
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("health check failed") && error.contains("/health returned 503"), "{error}");
    assert!(failed["message"].as_str().unwrap().contains("r1 serves again"), "{failed}");

    // Nothing half-routed: the split and every replica are the previous release's.
    let app = server.api("/api/apps/shop");
    assert_eq!(app["split"], serde_json::json!([["r1", 100]]));
    assert_eq!(app["release"]["version"], "r1");
    let replicas = app["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2);
    assert!(replicas.iter().all(|r| r["version"] == "r1"), "{app}");
    assert_eq!(versions_served(port, 10), vec!["v1"; 10]);
}

#[test]
fn a_first_deployment_that_never_gets_healthy_leaves_nothing_routed() {
    let server = Server::start("process");
    let run = server.deploy(
        "fresh",
        &demo_command("v1", "--fail-health"),
        &["--replicas", "2", "--health-check-timeout", "2"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let app = server.api("/api/apps/fresh");
    assert_eq!(app["split"], serde_json::json!([]));
    assert_eq!(app["replicas"].as_array().unwrap().len(), 0, "{app}");
    let (status, body) = crate::common::http_get(&format!("http://127.0.0.1:{}/", app["port"]));
    assert_eq!(status, 503);
    assert!(body.contains("no healthy backend for app fresh"), "{body}");
}

#[test]
fn bad_input_is_refused_with_a_clear_message_and_changes_nothing() {
    let server = Server::start("process");
    server.deploy("web", &demo_command("v1", ""), &["--replicas", "2"]).ok();
    let port = server.app_port("web");
    let v2 = demo_command("v2", "");

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--strategy", "warp-speed"],
            "unknown strategy `warp-speed`; available: ab-testing, blue-green, canary, rolling-update, simple, zero-downtime",
        ),
        (vec!["--replicas", "0"], "replicas must be at least 1"),
    ];
    for (flags, expected) in cases {
        let run = server.deploy("web", &v2, &flags);
        assert_eq!(run.code, 2, "{flags:?}: {run:?}");
        assert!(run.stderr.contains(expected), "{flags:?}: {}", run.stderr);
    }
    for (image, expected) in [
        ("sh -c 'echo unterminated", "does not parse as shell words"),
        ("/no/such/server --port 1", "is not an executable file nor a program on PATH"),
    ] {
        let run = server.deploy("web", image, &[]);
        assert_eq!(run.code, 2, "{image}: {run:?}");
        assert!(run.stderr.contains(expected), "{image}: {}", run.stderr);
    }
    let run = server.deploy("Web App", &v2, &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("app name `Web App` must be"), "{}", run.stderr);

    // Plugin files that are not components.
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, expected) in [
        ("notes.wasm", b"hello, I am text".to_vec(), "not WebAssembly"),
        ("core.wasm", b"\0asm\x01\0\0\0".to_vec(), "a core WebAssembly module, not a component"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let run = server.cli(&["plugin", "install", path.to_str().unwrap()]);
        assert_eq!(run.code, 2, "{name}: {run:?}");
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
    }

    assert!(server.get("/metrics").1.contains("hivemind_plugin_load_errors_total 2"), "both failed loads are counted");

    // Nothing changed: one deployment, the same plugins, v1 serving.
    assert_eq!(server.cli_json(&["deployment", "list"]).as_array().unwrap().len(), 1);
    let plugins = server.cli_json(&["plugin", "list"]);
    assert_eq!(
        plugins.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect::<Vec<_>>(),
        vec!["ab-testing", "blue-green", "canary", "command", "rolling-update", "simple", "webhook", "zero-downtime"]
    );
    assert_eq!(versions_served(port, 6), vec!["v1"; 6]);
}

#[test]
fn history_and_the_running_app_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut first = Server::start_in(data.path(), "process");
    let server = &first;
    server.deploy("web", &demo_command("v1", ""), &["--replicas", "2"]).ok();
    server.deploy("web", &demo_command("v2", ""), &["--replicas", "2"]).ok();
    let before = server.cli_json(&["deployment", "list"]);
    let port = server.app_port("web");
    // SIGTERM: the server stops, its replicas keep running (it is dropped at the end).
    first.stop();

    let restarted = Server::start_in(data.path(), "process");
    let server = &restarted;
    let after = server.cli_json(&["deployment", "list"]);
    let summary = |v: &serde_json::Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| (d["id"].as_str().unwrap().into(), d["status"].as_str().unwrap().into()))
            .collect()
    };
    assert_eq!(summary(&after), summary(&before));
    assert_eq!(summary(&after).len(), 2);
    // The router comes back on the same port, and the adopted replicas serve once probed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while versions_served(port, 1) != vec!["v2"] {
        assert!(std::time::Instant::now() < deadline, "v2 does not serve after the restart");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(versions_served(port, 6), vec!["v2"; 6]);
}

#[test]
fn a_restart_loads_the_plugins_from_the_compiled_code_cache() {
    let data = tempfile::tempdir().unwrap();
    let mut first = Server::start_in(data.path(), "process");
    assert!(first.log().contains("(0 from the compiled-code cache)"), "a first start compiles: {}", first.log());
    first.stop();
    let mut second = Server::start_in(data.path(), "process");
    assert!(second.log().contains("(8 from the compiled-code cache)"), "a restart does not: {}", second.log());
    second.stop();

    // An artifact that is not what the host wrote is never trusted: the host compiles again.
    let artifact = std::fs::read_dir(data.path().join("compiled")).unwrap().flatten().next().unwrap().path();
    std::fs::write(&artifact, b"not a compiled component").unwrap();
    let third = Server::start_in(data.path(), "process");
    let log = third.log();
    assert!(log.contains("(7 from the compiled-code cache)") && log.contains("does not load"), "{log}");
    third.deploy("web", &demo_command("v1", ""), &[]).ok();
}
