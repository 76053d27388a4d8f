//! The out-of-tree strategy in examples/custom-strategy, as a newcomer would use it:
//! built on its own with `cargo build --target wasm32-wasip2`, installed on a running
//! server, and used for a deployment under load.

use crate::common::{Load, Server, demo_command, versions_served};
use std::process::Command;

#[test]
fn the_example_strategy_builds_out_of_tree_installs_and_deploys() {
    let example = crate::common::repo_root().join("examples/custom-strategy");
    let target = crate::common::repo_root().join("target/examples");
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

    // What `plugin inspect` shows.
    let details = server.cli_json(&["plugin", "inspect", "linear"]);
    assert_eq!(details["world"], "hivemind:plugin/strategy");
    assert_eq!(details["api_version"], "0.1.1");
    assert_eq!(details["origin"], "installed");
    assert!(details["exports"].as_array().unwrap().iter().any(|e| e == "step"), "{details}");
    assert!(details["imports"].as_array().unwrap().iter().any(|i| i == "hivemind:plugin/routing@0.1.1"), "{details}");

    // Disabled, it takes no new deployment; enabled again, it does.
    server.cli(&["plugin", "disable", "linear"]).ok();
    let refused =
        server.cli(&["app", "deploy", "--name", "lin", "--image", &demo_command("v1", ""), "--strategy", "linear"]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("strategy `linear` is disabled; `hivemind plugin enable linear`"),
        "{}",
        refused.stderr
    );
    server.cli(&["plugin", "enable", "linear"]).ok();

    // Removing it is refused while a deployment under way uses it, and names that one.
    let slow = server
        .cli(&[
            "app",
            "deploy",
            "--detach",
            "--output",
            "json",
            "--name",
            "lin",
            "--image",
            &demo_command("v1", ""),
            "--replicas",
            "2",
            "--strategy",
            "linear",
            "--param",
            "interval=60",
            "--health-check-path",
            "/health",
        ])
        .ok()
        .json();
    let id = slow["id"].as_str().unwrap();
    let busy = server.cli(&["plugin", "remove", "linear"]);
    assert_eq!(busy.code, 2);
    assert!(busy.stderr.contains(&format!("is used by deployment {id} under way")), "{}", busy.stderr);
    server.cli(&["deployment", "abort", "--id", id]).ok();
    server.wait_for(id, std::time::Duration::from_secs(60));
    server.cli(&["plugin", "remove", "linear"]).ok();
    assert!(!server.cli_json(&["plugin", "list"]).as_array().unwrap().iter().any(|p| p["name"] == "linear"));
    let builtin = server.cli(&["plugin", "remove", "canary"]);
    assert!(builtin.code == 2 && builtin.stderr.contains("built in and cannot be removed"), "{builtin:?}");
}
