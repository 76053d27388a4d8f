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
    /// The demo images, as services of the Swarm the local engine manages.
    Swarm,
}

impl Images {
    pub fn runtime(self) -> &'static str {
        match self {
            Images::Process => "process",
            Images::Docker => "docker",
            Images::Swarm => "swarm",
        }
    }

    /// Demo version `v` (v1 or v2). Deploy it with `SICK` to make its health check fail.
    pub fn demo(self, v: &str) -> String {
        match self {
            Images::Process => crate::common::demo_command(v, ""),
            Images::Docker | Images::Swarm => format!("hivemind-demo:{v}"),
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

/// Deploys `image` with `strategy` (and the flags it runs with here) on 4 replicas.
pub fn deploy(server: &Server, app: &str, image: &str, strategy: &str, extra: &[&str]) -> crate::common::CliRun {
    let mut args = vec!["--strategy", strategy, "--replicas", "4"];
    args.extend(flags(strategy));
    args.extend_from_slice(extra);
    server.deploy(app, image, &args)
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
    assert_eq!(server.replica_versions(&app), vec!["r2"; 4]);
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
    assert_eq!(server.replica_versions(&app), vec!["r1"; 4]);
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
    assert_eq!(server.replica_versions(&app), vec!["r1"; 4]);
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
    assert_eq!(server.replica_versions(&app).len(), 4);
}

// ---- canary and A/B testing ----

fn canary_flags(interval: &'static str, min_requests: &'static str) -> Vec<&'static str> {
    vec!["--percentage", "20", "--steps", "20,50,100", "--interval", interval, "--min-requests", min_requests]
}

/// A healthy canary walks 20, 50, 100 and completes, with zero failed requests.
pub fn healthy_canary_completes(images: Images) {
    let server = Server::start(images.runtime());
    deploy(&server, "cn", &images.demo("v1"), "simple", &[]).ok();
    let port = server.app_port("cn");
    let load = Load::start(port, 4);
    let started = Instant::now();
    let d = deploy(&server, "cn", &images.demo("v2"), "canary", &canary_flags("2", "30")).ok().json();
    let took = started.elapsed();
    let report = load.stop();
    eprintln!(
        "FIGURES canary (healthy, {}): 20, 50, 100% with two analyses in {:.1} s, {} requests, {} failed",
        images.runtime(),
        took.as_secs_f64(),
        report.ok + report.failures.len() as u64,
        report.failures.len()
    );
    assert_eq!(d["status"], "completed", "{d}");
    report.assert_no_failures("healthy canary");
    let events = server.cli_json(&["deployment", "events", "--id", d["id"].as_str().unwrap()]);
    let passes =
        events.as_array().unwrap().iter().filter(|e| e["message"].as_str().unwrap().contains(": pass")).count();
    assert_eq!(passes, 2, "an analysis passed at 20% and at 50%: {events}");
    assert_eq!(versions_served(port, 8), vec!["v2"; 8]);
    assert_eq!(server.replica_versions("cn"), vec!["r2"; 4]);
}

/// A canary that fails 20% of its requests is rolled back at its first analysis, and the
/// event log names the metric, both values and the verdict.
pub fn failing_canary_rolls_back(images: Images) {
    let server = Server::start(images.runtime());
    deploy(&server, "cf", &images.demo("v1"), "simple", &[]).ok();
    let port = server.app_port("cf");
    let load = Load::start(port, 4);
    let mut flags = canary_flags("30", "30");
    flags.extend(["--env", "DEMO_ERROR_RATE=0.2"]);
    let started = Instant::now();
    let run = deploy(&server, "cf", &images.demo("v2"), "canary", &flags);
    let took = started.elapsed();
    let report = load.stop();
    assert_eq!(run.code, 1, "{run:?}");
    let d = run.json();
    assert_eq!(d["status"], "failed", "{d}");
    let error = d["error"].as_str().unwrap();
    for word in [
        "canary analysis failed at 20%",
        "error rate",
        "(canary,",
        "(stable,",
        "two-proportion z",
        "significantly higher",
    ] {
        assert!(error.contains(word), "`{word}` missing from: {error}");
    }
    eprintln!(
        "FIGURES canary (failing, {}): rolled back at its first analysis in {:.1} s",
        images.runtime(),
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(25), "the rollback waited for the 30 s interval: {took:?}");
    // The only failures are the canary's own injected 500s.
    assert!(
        report.failures.iter().all(|f| f.starts_with("500")),
        "{:?}",
        &report.failures[..report.failures.len().min(5)]
    );
    assert!(report.ok > 0);
    assert_eq!(versions_served(port, 8), vec!["v1"; 8]);
    assert_eq!(server.replica_versions("cf"), vec!["r1"; 4]);
}

/// A canary with too little traffic pauses as inconclusive instead of passing.
pub fn quiet_canary_is_inconclusive(images: Images) {
    let server = Server::start(images.runtime());
    deploy(&server, "cq", &images.demo("v1"), "simple", &[]).ok();
    let flags = canary_flags("1", "50");
    let d = deploy(&server, "cq", &images.demo("v2"), "canary", &flags).ok().json();
    assert_eq!(d["status"], "awaiting_approval", "{d}");
    assert!(d["message"].as_str().unwrap().contains("inconclusive"), "{d}");
    server.cli(&["deployment", "abort", "--id", d["id"].as_str().unwrap()]).ok();
}

/// Three variants at 50/30/20: the split lands within 3 points, clients stick, and a
/// manual select-winner makes one the release with zero failed requests.
pub fn ab_test_with_manual_winner(images: Images) {
    let server = Server::start(images.runtime());
    deploy(&server, "ab", &images.demo("v1"), "simple", &[]).ok();
    let port = server.app_port("ab");
    let load = Load::start(port, 2);
    let variants = match images {
        Images::Process => [
            ("red", crate::common::demo_command("red", "")),
            ("green", crate::common::demo_command("green", "")),
            ("blue", crate::common::demo_command("blue", "")),
        ],
        Images::Docker | Images::Swarm => [
            ("red", "hivemind-demo:v1".into()),
            ("green", "hivemind-demo:v2".into()),
            ("blue", "hivemind-demo:v3".into()),
        ],
    };
    let shares = [50, 30, 20];
    let specs: Vec<String> =
        variants.iter().zip(shares).map(|((n, i), p)| format!("name={n},image={i},percentage={p}")).collect();
    let mut args = vec![
        "app",
        "deploy",
        "--detach",
        "--output",
        "json",
        "--name",
        "ab",
        "--strategy",
        "ab-testing",
        "--replicas",
        "2",
        "--duration",
        "3600",
        "--health-check-path",
        "/health",
    ];
    for s in &specs {
        args.extend(["--variant", s.as_str()]);
    }
    let started = Instant::now();
    let id = server.cli(&args).ok().json()["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.api("/api/apps/ab")["split"].as_array().unwrap().len() != 3 {
        assert!(Instant::now() < deadline, "the variants never got traffic");
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    // New clients split by the percentages.
    let answers = versions_served(port, 3000);
    let texts = match images {
        Images::Process => ["red", "green", "blue"],
        Images::Docker | Images::Swarm => ["v1", "v2", "v3"],
    };
    let mut got_shares = Vec::new();
    for (text, share) in texts.iter().zip(shares) {
        let got = answers.iter().filter(|a| a == text).count() as f64 / answers.len() as f64 * 100.0;
        assert!((got - share as f64).abs() <= 3.0, "{text}: {got:.1}% for {share}%");
        got_shares.push(format!("{got:.1}%"));
    }
    eprintln!(
        "FIGURES A/B ({}): 3 variants serving in {:.1} s; 3,000 new clients split {} for 50/30/20",
        images.runtime(),
        took.as_secs_f64(),
        got_shares.join("/")
    );
    // Sticky clients keep their variant.
    for _ in 0..20 {
        let (cookie, first) = crate::common::sticky_get(port, None);
        for _ in 0..30 {
            assert_eq!(crate::common::sticky_get(port, Some(&cookie)).1, first, "a sticky client changed variant");
        }
    }
    let metrics = server.cli_json(&["metrics", "get", "--deployment-id", &id, "--variant", "green"]);
    assert_eq!(metrics["versions"].as_array().unwrap().len(), 1, "{metrics}");
    assert!(metrics["versions"][0]["requests"].as_u64().unwrap() > 0, "{metrics}");
    server.cli(&["deployment", "select-winner", "--id", &id, "--variant", "green"]).ok();
    let end = server.wait_for(&id, Duration::from_secs(60));
    load.stop().assert_no_failures("A/B test");
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["winner"], "green");
    let app = server.api("/api/apps/ab");
    assert_eq!(app["release"]["version"], "green");
    assert_eq!(server.replica_versions("ab"), vec!["green"; 2]);
    assert_eq!(versions_served(port, 6), vec![texts[1]; 6]);
}

/// 20 replicas of 10 killed with SIGKILL over 60 s (a random one of the older half each
/// time, so kills spread over the slots), under a load loop through the router: no request
/// fails, and each time the healer has all 10 healthy again within 10 s.
pub fn replicas_killed_at_random_come_back_under_load(images: Images) {
    let server = Server::start(images.runtime());
    server.deploy("kills", &images.demo("v1"), &["--replicas", "10"]).ok();
    let load = Load::start(server.app_port("kills"), 2);
    let started = Instant::now();
    let mut recoveries = Vec::new();
    for kill in 0..20u32 {
        let app = server.api("/api/apps/kills");
        let mut replicas: Vec<(i64, String, String)> = app["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let text = |k: &str| r[k].as_str().unwrap().to_string();
                (r["started_at_ms"].as_i64().unwrap(), text("id"), text("handle"))
            })
            .collect();
        replicas.sort();
        let (_, victim, handle) = replicas[fastrand::usize(..replicas.len() / 2)].clone();
        match images {
            Images::Process => unsafe {
                libc::kill(handle.parse().unwrap(), libc::SIGKILL);
            },
            Images::Docker => crate::common::docker_kill(&handle),
            // The handle is the replica's service: kill its task's container.
            Images::Swarm => crate::common::docker_kill(&crate::common::swarm_container(&handle)),
        }
        let killed_at = Instant::now();
        loop {
            let app = server.api("/api/apps/kills");
            let replicas = app["replicas"].as_array().unwrap();
            let healthy = replicas.iter().filter(|r| r["healthy"] == true && r["id"] != victim.as_str()).count();
            if healthy == 10 && replicas.len() == 10 {
                break;
            }
            assert!(killed_at.elapsed() < Duration::from_secs(20), "kill {kill}: not healed after 20 s: {app}");
            std::thread::sleep(Duration::from_millis(50));
        }
        recoveries.push(killed_at.elapsed());
        let next = Duration::from_secs(3) * (kill + 1);
        std::thread::sleep(next.saturating_sub(started.elapsed()));
    }
    let report = load.stop();
    recoveries.sort();
    eprintln!(
        "{}: 20 kills healed in {:.1} s median, {:.1} s at most; {} requests, {} failed",
        images.runtime(),
        recoveries[10].as_secs_f64(),
        recoveries[19].as_secs_f64(),
        report.ok + report.failures.len() as u64,
        report.failures.len()
    );
    report.assert_no_failures("random kills");
    assert!(recoveries[19] < Duration::from_secs(10), "the slowest heal took {:?}", recoveries[19]);
    let events: Vec<String> = server
        .api("/api/apps/kills/events")
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().into())
        .collect();
    assert!(events.iter().filter(|e| e.contains(" exited (")).count() >= 20, "{events:#?}");
}
