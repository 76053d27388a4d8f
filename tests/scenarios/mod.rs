//! Strategy scenarios shared by the process-runtime tests (tests/strategies.rs) and the
//! docker-runtime tests (tests/docker.rs): each runs a real server, real replicas and a
//! load loop through the real router.
#![allow(dead_code)]

use crate::common::{Load, Server, versions_served};
use std::time::{Duration, Instant};

/// How a scenario names images: the demo as a process command line, or a Docker image.
#[derive(Clone, Copy)]
pub enum Images {
    Process,
    Docker,
}

impl Images {
    pub fn runtime(self) -> &'static str {
        match self {
            Images::Process => "process",
            Images::Docker => "docker",
        }
    }

    /// Demo version `v` (v1 or v2). Deploy it with `SICK` to make its health check fail.
    pub fn demo(self, v: &str) -> String {
        match self {
            Images::Process => crate::common::demo_command(v, ""),
            Images::Docker => format!("hivemind-demo:{v}"),
        }
    }
}

/// Deployed with this flag, the demo app fails its health check.
pub const SICK: &str = "--env=DEMO_FAIL_HEALTH=1";

/// The flags that make each strategy quick but real in a test.
pub fn flags(strategy: &str) -> Vec<&'static str> {
    match strategy {
        "rolling-update" => vec!["--max-surge", "1", "--max-unavailable", "1", "--drain-timeout", "5"],
        "zero-downtime" => vec!["--batch-size", "2", "--batch-delay", "0", "--drain-timeout", "5"],
        "blue-green" => vec!["--verification-timeout", "1", "--scale-down-delay", "0"],
        _ => vec![],
    }
}

pub fn deploy(server: &Server, app: &str, image: &str, strategy: &str, extra: &[&str]) -> crate::common::CliRun {
    let mut args = vec![
        "app",
        "deploy",
        "--name",
        app,
        "--image",
        image,
        "--strategy",
        strategy,
        "--replicas",
        "4",
        "--health-check-path",
        "/health",
        "--output",
        "json",
    ];
    args.extend(flags(strategy));
    args.extend_from_slice(extra);
    server.cli(&args)
}

fn replica_versions(server: &Server, app: &str) -> Vec<String> {
    let app = server.api(&format!("/api/apps/{app}"));
    let mut v: Vec<String> =
        app["replicas"].as_array().unwrap().iter().map(|r| r["version"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

/// v1 then v2 under load: completes with zero failed requests; prints the figures.
pub fn good_version_completes_without_failed_requests(images: Images, strategy: &str) {
    let server = Server::start(images.runtime());
    let app = format!("good-{}", strategy.replace('-', ""));
    deploy(&server, &app, &images.demo("v1"), strategy, &[]).ok();
    let port = server.app_port(&app);
    let load = Load::start(port, 4);
    let started = Instant::now();
    let d = deploy(&server, &app, &images.demo("v2"), strategy, &[]).ok().json();
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let report = load.stop();
    assert_eq!(d["status"], "completed", "{d}");
    report.assert_no_failures(strategy);
    assert_eq!(versions_served(port, 8), vec!["v2"; 8]);
    assert_eq!(replica_versions(&server, &app), vec!["r2"; 4]);
    eprintln!(
        "FIGURES {strategy} ({}): 4 replicas v1 -> v2 in {:.1} s, {} requests, {} failed",
        images.runtime(),
        took.as_secs_f64(),
        report.ok + report.failures.len() as u64,
        report.failures.len()
    );
}

/// v2 never gets healthy: the strategy rolls back on its own, v1 serves throughout with
/// zero failed requests, and the final replica set is exactly v1's.
pub fn failing_version_rolls_back_without_failed_requests(images: Images, strategy: &str) {
    let server = Server::start(images.runtime());
    let app = format!("sick-{}", strategy.replace('-', ""));
    deploy(&server, &app, &images.demo("v1"), strategy, &[]).ok();
    let port = server.app_port(&app);
    let load = Load::start(port, 4);
    let run = deploy(&server, &app, &images.demo("v2"), strategy, &[SICK, "--health-check-timeout", "3"]);
    std::thread::sleep(Duration::from_millis(200));
    let report = load.stop();
    assert_eq!(run.code, 1, "{run:?}");
    let d = run.json();
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["error"].as_str().unwrap().contains("health check failed"), "{d}");
    report.assert_no_failures(strategy);
    assert_eq!(replica_versions(&server, &app), vec!["r1"; 4]);
    assert_eq!(versions_served(port, 8), vec!["v1"; 8]);
}

/// After a completed deployment, `deployment rollback` brings v1 back.
pub fn manual_rollback_restores_the_previous_version(images: Images, strategy: &str) {
    let server = Server::start(images.runtime());
    let app = format!("back-{}", strategy.replace('-', ""));
    deploy(&server, &app, &images.demo("v1"), strategy, &[]).ok();
    let v2 = deploy(&server, &app, &images.demo("v2"), strategy, &[]).ok().json();
    let port = server.app_port(&app);
    let id = v2["id"].as_str().unwrap();
    let load = Load::start(port, 2);
    let back = server.cli(&["deployment", "rollback", "--id", id, "--output", "json"]).ok().json();
    let report = load.stop();
    assert_eq!(back["status"], "completed", "{back}");
    assert_eq!(back["rollback_of"], id);
    assert_eq!(back["target_version"], "r1");
    assert_eq!(server.cli_json(&["deployment", "status", "--id", id])["status"], "rolled_back");
    assert_eq!(versions_served(port, 8), vec!["v1"; 8]);
    assert_eq!(replica_versions(&server, &app), vec!["r1"; 4]);
    if strategy != "simple" {
        report.assert_no_failures(strategy);
    }
}

/// The server is killed mid-deployment and restarted: the deployment ends completed or
/// rolled back, and the app serves.
pub fn crash_mid_deployment_ends_cleanly(images: Images, strategy: &str) {
    let data = tempfile::tempdir().unwrap();
    let mut first = Server::start_in(data.path(), images.runtime());
    let app = format!("crash-{}", strategy.replace('-', ""));
    deploy(&first, &app, &images.demo("v1"), strategy, &[]).ok();
    let port = first.app_port(&app);
    let d = deploy(&first, &app, &images.demo("v2"), strategy, &["--detach"]).ok().json();
    let id = d["id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(400));
    first.kill();
    let server = Server::start_in(data.path(), images.runtime());
    let end = server.wait_for(&id, Duration::from_secs(60));
    let status = end["status"].as_str().unwrap();
    assert!(
        status == "completed" || (status == "failed" && end["message"].as_str().unwrap().contains("serves again")),
        "{end}"
    );
    let served = versions_served(port, 4);
    assert!(served.iter().all(|v| v == if status == "completed" { "v2" } else { "v1" }), "{served:?}");
    assert_eq!(replica_versions(&server, &app).len(), 4);
}
