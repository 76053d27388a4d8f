//! The first path end to end with the docker runtime and the demo images, built locally
//! FROM scratch. In CI (HIVEMIND_REQUIRE_DOCKER=1) a missing engine fails these tests.

use crate::common::{Server, demo_images, docker_available, versions_served};
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
    // A missing image is pulled by default (tests/e2e/images.rs); `--pull never` refuses it
    // before anything is recorded.
    for (image, pull, expected) in [
        ("Not A/Valid:Image", "missing", "is not a valid image reference"),
        ("hivemind-demo:does-not-exist", "never", "is not in the local Docker engine, and --pull never forbids"),
    ] {
        let run = server.cli(&["app", "deploy", "--name", "dbad", "--image", image, "--pull", pull]);
        assert_eq!(run.code, 2, "{image}: {run:?}");
        assert!(run.stderr.contains(expected), "{image}: {}", run.stderr);
    }
    assert!(server.cli_json(&["deployment", "list"]).as_array().unwrap().is_empty());
    assert!(server.cli_json(&["app", "list"]).as_array().unwrap().is_empty());
}

use crate::scenarios::Images;

macro_rules! docker_scenario_tests {
    ($($name:ident: $scenario:ident($strategy:literal);)*) => {
        $(
            #[test]
            fn $name() {
                if !docker_available(stringify!($name)) {
                    return;
                }
                demo_images();
                crate::scenarios::$scenario(Images::Docker, $strategy);
            }
        )*
    };
}

docker_scenario_tests! {
    docker_rolling_update_completes_without_failed_requests: good_version_completes_without_failed_requests("rolling-update");
    docker_zero_downtime_completes_without_failed_requests: good_version_completes_without_failed_requests("zero-downtime");
    docker_blue_green_completes_without_failed_requests: good_version_completes_without_failed_requests("blue-green");
    docker_rolling_update_rolls_a_sick_version_back: failing_version_rolls_back_without_failed_requests("rolling-update");
    docker_zero_downtime_rolls_a_sick_version_back: failing_version_rolls_back_without_failed_requests("zero-downtime");
    docker_blue_green_rolls_a_sick_version_back: failing_version_rolls_back_without_failed_requests("blue-green");
    docker_rolling_update_manual_rollback: manual_rollback_restores_the_previous_version("rolling-update");
    docker_zero_downtime_manual_rollback: manual_rollback_restores_the_previous_version("zero-downtime");
    docker_blue_green_manual_rollback: manual_rollback_restores_the_previous_version("blue-green");
    docker_rolling_update_survives_a_crash: crash_mid_deployment_ends_cleanly("rolling-update");
    docker_zero_downtime_survives_a_crash: crash_mid_deployment_ends_cleanly("zero-downtime");
    docker_blue_green_survives_a_crash: crash_mid_deployment_ends_cleanly("blue-green");
}

macro_rules! docker_analysis_tests {
    ($($name:ident: $scenario:ident;)*) => {
        $(
            #[test]
            fn $name() {
                if !docker_available(stringify!($name)) {
                    return;
                }
                demo_images();
                crate::scenarios::$scenario(Images::Docker);
            }
        )*
    };
}

docker_analysis_tests! {
    docker_healthy_canary_completes: healthy_canary_completes;
    docker_failing_canary_rolls_back: failing_canary_rolls_back;
    docker_quiet_canary_is_inconclusive: quiet_canary_is_inconclusive;
    docker_ab_test_with_manual_winner: ab_test_with_manual_winner;
    docker_replicas_killed_at_random_come_back_under_load: replicas_killed_at_random_come_back_under_load;
}

/// `--cloud-provider NAME` runs the deployment on the Docker endpoint its target names in
/// the server's config file, even on a server whose own runtime is local processes. An
/// unknown name lists the configured ones; an endpoint that does not answer is refused.
#[test]
fn a_deployment_target_runs_replicas_on_its_own_docker_endpoint() {
    if !docker_available("a_deployment_target_runs_replicas_on_its_own_docker_endpoint") {
        return;
    }
    demo_images();
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("server.toml");
    std::fs::write(
        &config,
        "[targets.edge]\ndocker_host = \"unix:///var/run/docker.sock\"\n[targets.gone]\ndocker_host = \"unix:///nonexistent/docker.sock\"\n",
    )
    .unwrap();
    let server = Server::start_with(data.path(), "process", &["--config", config.to_str().unwrap()]);
    let app = format!("edge{}", std::process::id());
    let deploy = |target: &str| {
        server.cli(&[
            "app",
            "deploy",
            "--name",
            &app,
            "--image",
            "hivemind-demo:v1",
            "--replicas",
            "2",
            "--health-check-path",
            "/health",
            "--cloud-provider",
            target,
            "--output",
            "json",
        ])
    };
    let unknown = deploy("mars");
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no deployment target named `mars`") && unknown.stderr.contains("edge, gone"),
        "{}",
        unknown.stderr
    );
    let gone = deploy("gone");
    assert_eq!(gone.code, 2);
    assert!(gone.stderr.contains("deployment target `gone` cannot be reached"), "{}", gone.stderr);

    let d = deploy("edge").ok().json();
    assert_eq!(d["status"], "completed", "{d}");
    let port = server.app_port(&app);
    assert_eq!(versions_served(port, 4), vec!["v1"; 4]);
    assert_eq!(containers(&app).len(), 2, "the replicas are containers of the target's engine");
    let replicas = server.api(&format!("/api/apps/{app}"))["replicas"].clone();
    assert!(replicas.as_array().unwrap().iter().all(|r| r["driver"] == "docker@edge"), "{replicas}");
    server.cli(&["app", "remove", "--name", &app]).ok();
    assert!(containers(&app).is_empty(), "removed through the target's engine");
}
