//! The built-in strategies end to end with the process runtime, under load through the
//! router (the docker runtime runs the same scenarios in tests/docker.rs).

use crate::common::{Load, Server, versions_served};
use crate::scenarios::{Images, deploy, flags};
use std::time::{Duration, Instant};

macro_rules! scenario_tests {
    ($($name:ident: $scenario:ident($strategy:literal);)*) => {
        $(
            #[test]
            fn $name() {
                crate::scenarios::$scenario(Images::Process, $strategy);
            }
        )*
    };
}

scenario_tests! {
    rolling_update_completes_without_failed_requests: good_version_completes_without_failed_requests("rolling-update");
    zero_downtime_completes_without_failed_requests: good_version_completes_without_failed_requests("zero-downtime");
    blue_green_completes_without_failed_requests: good_version_completes_without_failed_requests("blue-green");
    rolling_update_rolls_a_sick_version_back: failing_version_rolls_back_without_failed_requests("rolling-update");
    zero_downtime_rolls_a_sick_version_back: failing_version_rolls_back_without_failed_requests("zero-downtime");
    blue_green_rolls_a_sick_version_back: failing_version_rolls_back_without_failed_requests("blue-green");
    rolling_update_manual_rollback: manual_rollback_restores_the_previous_version("rolling-update");
    zero_downtime_manual_rollback: manual_rollback_restores_the_previous_version("zero-downtime");
    blue_green_manual_rollback: manual_rollback_restores_the_previous_version("blue-green");
    simple_manual_rollback: manual_rollback_restores_the_previous_version("simple");
    rolling_update_survives_a_crash: crash_mid_deployment_ends_cleanly("rolling-update");
    zero_downtime_survives_a_crash: crash_mid_deployment_ends_cleanly("zero-downtime");
    blue_green_survives_a_crash: crash_mid_deployment_ends_cleanly("blue-green");
}

#[test]
fn invalid_strategy_parameters_are_refused_before_anything_starts() {
    let server = Server::start("process");
    let image = crate::common::demo_command("v1", "");
    let cases: [(&str, &[&str], &str); 6] = [
        ("zero-downtime", &["--batch-size", "-2"], "batch-size must be at least 1 (got -2)"),
        ("zero-downtime", &["--drain-timeout", "0"], "drain-timeout must be at least 1 second (got 0)"),
        ("rolling-update", &["--max-surge", "150%"], "max-surge must be a count (2) or a percentage from 0% to 100%"),
        ("rolling-update", &["--max-surge", "0", "--max-unavailable", "0"], "max-surge and max-unavailable are both 0"),
        (
            "blue-green",
            &["--verification-timeout", "-5"],
            "verification-timeout, verification-soak and scale-down-delay must be 0 or more",
        ),
        ("blue-green", &["--auto-promote", "maybe"], "auto-promote must be true or false"),
    ];
    for (strategy, extra, expected) in cases {
        let mut args = vec!["app", "deploy", "--name", "web", "--image", &image, "--strategy", strategy];
        args.extend_from_slice(extra);
        let run = server.cli(&args);
        assert_eq!(run.code, 2, "{strategy} {extra:?}: {run:?}");
        assert!(run.stderr.contains(expected), "{strategy} {extra:?}: {}", run.stderr);
    }
    assert!(server.cli_json(&["deployment", "list"]).as_array().unwrap().is_empty());
    assert!(server.cli_json(&["app", "list"]).as_array().unwrap().is_empty(), "nothing was created");
}

#[test]
fn blue_green_rolls_back_inside_the_scale_down_window_in_under_a_second() {
    let server = Server::start("process");
    let v1 = crate::common::demo_command("v1", "");
    let v2 = crate::common::demo_command("v2", "");
    let bg = [
        "--strategy",
        "blue-green",
        "--replicas",
        "3",
        "--health-check-path",
        "/health",
        "--verification-timeout",
        "1",
    ];
    let mut first = vec!["app", "deploy", "--name", "bg", "--image", &v1, "--scale-down-delay", "0"];
    first.extend(bg);
    server.cli(&first).ok();
    let port = server.app_port("bg");
    let mut second = vec![
        "app",
        "deploy",
        "--detach",
        "--output",
        "json",
        "--name",
        "bg",
        "--image",
        &v2,
        "--scale-down-delay",
        "60",
    ];
    second.extend(bg);
    let id = server.cli(&second).ok().json()["id"].as_str().unwrap().to_string();
    // Wait for the switch: green serves, blue idles.
    let deadline = Instant::now() + Duration::from_secs(30);
    while versions_served(port, 1) != vec!["v2"] {
        assert!(Instant::now() < deadline, "green never took traffic");
        std::thread::sleep(Duration::from_millis(50));
    }
    let load = Load::start(port, 2);
    let started = Instant::now();
    server.cli(&["deployment", "rollback", "--id", &id, "--detach"]).ok();
    while versions_served(port, 1) != vec!["v1"] {
        assert!(started.elapsed() < Duration::from_secs(10), "blue never came back");
    }
    let switch_back = started.elapsed();
    let end = server.wait_for(&id, Duration::from_secs(30));
    load.stop().assert_no_failures("blue-green switch back");
    assert_eq!(end["status"], "rolled_back", "{end}");
    assert!(switch_back < Duration::from_secs(1), "the switch back took {switch_back:?}");
    eprintln!("FIGURES blue-green switch back inside the window: {} ms", switch_back.as_millis());
}

#[test]
fn blue_green_fails_before_touching_blue_when_two_environments_do_not_fit() {
    let data = tempfile::tempdir().unwrap();
    // A host that may run 5 replicas: blue has 3, green would need 3 more.
    let server = Server::start_with(data.path(), "process", &["--max-replicas", "5"]);
    let v1 = crate::common::demo_command("v1", "");
    let v2 = crate::common::demo_command("v2", "");
    for image in [&v1, &v2] {
        let run = server.cli(&[
            "app",
            "deploy",
            "--name",
            "big",
            "--image",
            image,
            "--strategy",
            "blue-green",
            "--replicas",
            "3",
            "--verification-timeout",
            "0",
            "--scale-down-delay",
            "0",
            "--output",
            "json",
        ]);
        if image == &v1 {
            run.ok();
        } else {
            assert_eq!(run.code, 1, "{run:?}");
            let error = run.json()["error"].as_str().unwrap().to_string();
            assert!(
                error.contains("not enough room for the green environment") && error.contains("blue was not touched"),
                "{error}"
            );
        }
    }
    let app = server.api("/api/apps/big");
    assert!(app["replicas"].as_array().unwrap().iter().all(|r| r["version"] == "r1"), "{app}");
    assert_eq!(versions_served(server.app_port("big"), 4), vec!["v1"; 4]);
}

#[test]
fn zero_downtime_deploy_is_reachable_by_its_own_command_and_route() {
    let server = Server::start("process");
    let v1 = crate::common::demo_command("v1", "");
    server
        .cli(&["app", "deploy", "--name", "zd", "--image", &v1, "--replicas", "2", "--health-check-path", "/health"])
        .ok();
    let v2 = crate::common::demo_command("v2", "");
    // The product docs' command, word for word but for the image (the process runtime
    // ignores --health-check-port, and says so in the events).
    let d = server
        .cli(&[
            "app",
            "zero-downtime-deploy",
            "--image",
            &v2,
            "--name",
            "zd",
            "--service",
            "zd-service",
            "--replicas",
            "2",
            "--batch-size",
            "2",
            "--batch-delay",
            "1",
            "--health-check-path",
            "/health",
            "--health-check-port",
            "8080",
            "--health-check-timeout",
            "60",
            "--drain-timeout",
            "30",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!((d["strategy"].as_str(), d["status"].as_str()), (Some("zero-downtime"), Some("completed")));
    let events = server.cli_json(&["deployment", "events", "--id", d["id"].as_str().unwrap()]);
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("--health-check-port 8080 is ignored"))
    );
    // And the API route.
    let spec = serde_json::json!({"app": "zd", "image": v1, "replicas": 2, "health_check_path": "/health", "params": {"batch-size": "1"}});
    let (status, body) =
        server.api_post("/api/deployments/zero-downtime", "application/json", spec.to_string().as_bytes());
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["strategy"], "zero-downtime");
    let end = server.wait_for(body["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(end["status"], "completed");
    assert_eq!(versions_served(server.app_port("zd"), 4), vec!["v1"; 4]);
    let _ = (deploy, flags);
}
