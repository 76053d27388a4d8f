//! The out-of-tree strategy in examples/custom-strategy, as a newcomer would use it:
//! built on its own with `cargo build --target wasm32-wasip2`, installed on a running
//! server, and used for a deployment under load.

mod common;

use common::{Load, Server, demo_command, versions_served};
use std::process::Command;

#[test]
fn the_example_strategy_builds_out_of_tree_installs_and_deploys() {
    let example = common::repo_root().join("examples/custom-strategy");
    let target = common::repo_root().join("target/examples");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target)
        .current_dir(&example)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let wasm = target.join("wasm32-wasip2/release/linear.wasm");

    let server = Server::start("process");
    let installed = server.cli_json(&["plugin", "install", wasm.to_str().unwrap()]);
    assert_eq!((installed["name"].as_str(), installed["version"].as_str()), (Some("linear"), Some("0.1.0")));

    server
        .cli(&[
            "app",
            "deploy",
            "--name",
            "lin",
            "--image",
            &demo_command("v1", ""),
            "--replicas",
            "2",
            "--health-check-path",
            "/health",
        ])
        .ok();
    let port = server.app_port("lin");
    // Its own parameter check runs before anything starts.
    let bad = server.cli(&[
        "app",
        "deploy",
        "--name",
        "lin",
        "--image",
        &demo_command("v2", ""),
        "--strategy",
        "linear",
        "--param",
        "interval=99999",
    ]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("strategy linear refused the deployment: interval must be at most 3600 seconds"),
        "{}",
        bad.stderr
    );

    let load = Load::start(port, 2);
    let d = server
        .cli(&[
            "app",
            "deploy",
            "--output",
            "json",
            "--name",
            "lin",
            "--image",
            &demo_command("v2", ""),
            "--replicas",
            "2",
            "--strategy",
            "linear",
            "--param",
            "interval=0",
            "--health-check-path",
            "/health",
        ])
        .ok()
        .json();
    load.stop().assert_no_failures("linear");
    assert_eq!(d["status"], "completed", "{d}");
    assert_eq!(d["plugin"]["sha256"], installed["sha256"]);
    let events = server.cli_json(&["deployment", "events", "--id", d["id"].as_str().unwrap()]);
    let steps = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["message"].as_str().unwrap().contains("% of the traffic"))
        .count();
    assert_eq!(steps, 10, "ten 10% steps: {events}");
    assert_eq!(versions_served(port, 4), vec!["v2"; 4]);
}
