//! The first path end to end with the docker runtime and the demo images, built locally
//! FROM scratch. In CI (HIVEMIND_REQUIRE_DOCKER=1) a missing engine fails these tests.

mod common;

use common::{Server, demo_images, docker_available, versions_served};
use std::process::Command;

fn containers(app: &str) -> Vec<(String, String, String)> {
    let out = Command::new("docker")
        .args([
            "ps",
            "--filter",
            &format!("label=hivemind.app={app}"),
            "--format",
            "{{.ID}} {{.Label \"hivemind.version\"}} {{.Ports}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            (
                parts.next().unwrap().into(),
                parts.next().unwrap_or_default().into(),
                parts.next().unwrap_or_default().into(),
            )
        })
        .collect()
}

#[test]
fn deploys_v1_then_v2_with_the_docker_runtime() {
    if !docker_available("deploys_v1_then_v2_with_the_docker_runtime") {
        return;
    }
    demo_images();
    let server = Server::start("docker");
    let app = format!("dweb{}", std::process::id());
    let deploy = |image: &str| {
        server.cli(&[
            "app",
            "deploy",
            "--name",
            &app,
            "--image",
            image,
            "--replicas",
            "3",
            "--health-check-path",
            "/health",
            "--output",
            "json",
        ])
    };

    deploy("hivemind-demo:v1").ok();
    let port = server.app_port(&app);
    assert_eq!(versions_served(port, 9), vec!["v1"; 9]);
    let first = containers(&app);
    assert_eq!(first.len(), 3, "{first:?}");

    let v2 = deploy("hivemind-demo:v2").ok().json();
    assert_eq!(versions_served(port, 9), vec!["v2"; 9]);
    let status = server.cli_json(&["deployment", "status", "--id", v2["id"].as_str().unwrap()]);
    assert_eq!((status["status"].as_str(), status["progress"].as_u64()), (Some("completed"), Some(100)));

    // Three labelled containers of the new release, published on loopback only.
    let now = containers(&app);
    assert_eq!(now.len(), 3, "{now:?}");
    for (id, version, ports) in &now {
        assert_eq!(version, "r2", "{id}");
        assert!(ports.starts_with("127.0.0.1:"), "{id} publishes {ports}");
        assert!(!first.iter().any(|(old, _, _)| old == id));
    }
}

#[test]
fn docker_refuses_malformed_and_missing_images() {
    if !docker_available("docker_refuses_malformed_and_missing_images") {
        return;
    }
    let server = Server::start("docker");
    for (image, expected) in [
        ("Not A/Valid:Image", "is not a valid image reference"),
        ("hivemind-demo:does-not-exist", "is not in the local Docker engine"),
    ] {
        let run = server.cli(&["app", "deploy", "--name", "dbad", "--image", image]);
        assert_eq!(run.code, 2, "{image}: {run:?}");
        assert!(run.stderr.contains(expected), "{image}: {}", run.stderr);
    }
    assert!(server.cli_json(&["deployment", "list"]).as_array().unwrap().is_empty());
    assert!(server.cli_json(&["app", "list"]).as_array().unwrap().is_empty());
}
