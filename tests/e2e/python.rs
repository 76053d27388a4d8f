//! A strategy written in Python (`examples/python-strategy`), built with the real
//! componentize-py, installed on a running server and deploying an app through the
//! router under load.

use crate::common::{Load, Server, demo_command, repo_root, tools_available, versions_served};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn a_python_strategy_built_with_componentize_py_ramps_through_its_gate_with_no_failed_request() {
    if !tools_available("python::ramp", &["componentize-py"]) {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let wasm = out.path().join("python-ramp.wasm");
    let started = Instant::now();
    let build = Command::new("componentize-py")
        .arg("-d")
        .arg(repo_root().join("sdk/wit"))
        .args(["-w", "strategy", "componentize", "--stub-wasi", "-p"])
        .arg(repo_root().join("examples/python-strategy"))
        .args(["app", "-o"])
        .arg(&wasm)
        .current_dir(out.path())
        .output()
        .expect("running componentize-py");
    assert!(build.status.success(), "componentize-py failed: {}", String::from_utf8_lossy(&build.stderr));
    let built_in = started.elapsed();
    let size = std::fs::metadata(&wasm).unwrap().len();

    let server = Server::start("process");
    server.deploy("py", &demo_command("v1", ""), &["--replicas", "2"]).ok();
    let port = server.app_port("py");
    let started = Instant::now();
    let installed = server.cli(&["plugin", "install", wasm.to_str().unwrap()]).ok();
    let installed_in = started.elapsed();
    assert!(installed.stdout.contains("installed python-ramp 0.1.0"), "{}", installed.stdout);

    // Its own validation, in Python, refuses a bad parameter with its message.
    let refused = server.deploy("py", &demo_command("v2", ""), &["--strategy", "python-ramp", "--param", "steps=x"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("steps must be a whole number; got `x`"), "{}", refused.stderr);

    let steps_before = step_histogram(&server);
    let load = Load::start(port, 2);
    let ramp = ["--strategy", "python-ramp", "--param", "steps=4", "--param", "interval=1", "--param", "gate=50"];
    let mut args = vec!["--replicas", "2", "--detach"];
    args.extend(ramp);
    let id = server.deploy("py", &demo_command("v2", ""), &args).ok().json()["id"].as_str().unwrap().to_string();
    crate::common::wait_until("the ramp to hold at its gate", Duration::from_secs(60), || {
        server.api(&format!("/api/deployments/{id}"))["status"] == "awaiting_approval"
    });
    let d = server.api(&format!("/api/deployments/{id}"));
    assert!(d["message"].as_str().unwrap().contains("holds r2 at 50%"), "{d}");
    assert_eq!(server.api("/api/apps/py")["split"], json!([["r1", 50], ["r2", 50]]));
    server.cli(&["deployment", "promote", "--id", &id]).ok();
    let end = server.wait_for(&id, Duration::from_secs(60));
    let report = load.stop();
    report.assert_no_failures("the Python ramp");
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(server.replica_versions("py"), vec!["r2", "r2"]);
    assert_eq!(versions_served(port, 6), vec!["v2"; 6]);
    let (sum, count) = step_histogram(&server);
    let steps = count - steps_before.1;
    eprintln!(
        "FIGURES Python strategy: built with componentize-py in {:.1} s ({:.1} MB); installed (compiled) in {:.1} s; \
         ramped 25/50/gate/75/100 with {} requests and 0 failed; {steps} steps of {:.1} ms on average (host calls included)",
        built_in.as_secs_f64(),
        size as f64 / 1e6,
        installed_in.as_secs_f64(),
        report.ok,
        (sum - steps_before.0) * 1000.0 / steps.max(1) as f64
    );
}

/// The server's step-duration histogram: (sum of seconds, count).
fn step_histogram(server: &Server) -> (f64, u64) {
    let (_, text) =
        crate::common::http_request_with("GET", &format!("{}/metrics", server.url), None, Some(&server.token));
    let value = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(0.0)
    };
    (value("hivemind_step_duration_seconds_sum "), value("hivemind_step_duration_seconds_count ") as u64)
}
