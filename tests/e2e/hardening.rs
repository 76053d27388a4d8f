//! The hardening of issue 13, as a new user and an attacker found the gaps: the docs'
//! canary past its deadline, plugin output and state without bounds, lost trap causes,
//! plugin failures as server errors, failed rollbacks, steps without a pause, aborts that
//! waited, one replica pool for all apps, port races. The hostile strategy
//! (tests/plugins/hostile) picks its attack with `--param mode=...`.

use crate::common::{Load, Server, demo_command, test_plugin, versions_served, wait_until};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A server with the hostile strategy installed.
fn hostile_server(flags: &[&str]) -> Server {
    let server = Server::start_with_flags("process", flags);
    server.cli(&["plugin", "install", test_plugin("hostile").to_str().unwrap()]).ok();
    server
}

/// Starts a deployment of the hostile strategy in `mode` and returns its id.
fn hostile(server: &Server, app: &str, mode: &str, extra: &[&str]) -> String {
    let image = demo_command("v2", "");
    let param = format!("mode={mode}");
    let mut args = vec!["--detach", "--strategy", "test-hostile", "--param", &param];
    args.extend_from_slice(extra);
    let run = server.deploy(app, &image, &args);
    run.ok().json()["id"].as_str().unwrap().to_string()
}

/// The product docs' canary (`--steps 20,50,100 --interval 300`, 900 s over a 600 s
/// deadline), scaled down in time: it makes progress at every step, so it completes.
#[test]
fn the_docs_canary_shape_completes_past_its_progress_deadline() {
    let server = Server::start("process");
    server.deploy("web", &demo_command("v1", ""), &["--replicas", "2"]).ok();
    let load = Load::start(server.app_port("web"), 1);
    let started = Instant::now();
    let flags = [
        "--strategy",
        "canary",
        "--steps",
        "20,50,100",
        "--interval",
        "4",
        "--min-requests",
        "5",
        "--progress-deadline",
        "6",
        "--replicas",
        "2",
    ];
    let run = server.deploy("web", &demo_command("v2", ""), &flags);
    load.stop().assert_no_failures("the canary");
    let d = run.ok().json();
    assert_eq!(d["status"], "completed", "{d}");
    assert!(started.elapsed() > Duration::from_secs(8), "the canary ran past its 6 s deadline");
    assert_eq!(versions_served(server.app_port("web"), 4), vec!["v2"; 4]);
}

/// A strategy that asks to be called again at once, forever, changing nothing: it is
/// stuck, so it fails at its deadline, having taken at most 20 steps a second and left
/// one line for all of them.
#[test]
fn a_strategy_that_never_pauses_is_paced_and_its_repeated_steps_are_one_event() {
    let server = hostile_server(&[]);
    server.deploy("web", &demo_command("v1", ""), &[]).ok();
    let id = hostile(&server, "web", "busy", &["--progress-deadline", "3"]);
    let d = server.wait_for(&id, Duration::from_secs(30));
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["error"].as_str().unwrap().starts_with("progress deadline exceeded: no progress for 3 s"), "{d}");
    let log = server.events(&id);
    let repeated: Vec<&str> = log
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.contains("of the deploy phase: continue in 0 ms"))
        .collect();
    assert_eq!(repeated.len(), 1, "one line for the repeated steps: {repeated:?}");
    assert!(repeated[0].starts_with("steps 1 to ") && repeated[0].ends_with(" times)"), "{}", repeated[0]);
    let steps: u64 = repeated[0].rsplit('(').next().unwrap().trim_end_matches(" times)").parse().unwrap();
    assert!((10..=70).contains(&steps), "3 s at most 20 steps a second: {steps} steps");
    assert!(log.len() < 30, "{} events for {steps} steps", log.len());
}

/// A strategy writing 1 MiB under a new key every step is stopped at 4 MiB, with a
/// message that says so; its state is gone once the deployment ends.
#[test]
fn plugin_state_is_bounded_and_deleted_when_the_deployment_ends() {
    let server = hostile_server(&[]);
    server.deploy("web", &demo_command("v1", ""), &[]).ok();
    let id = hostile(&server, "web", "state-keys", &[]);
    let d = server.wait_for(&id, Duration::from_secs(30));
    assert_eq!(d["status"], "failed", "{d}");
    let error = d["error"].as_str().unwrap();
    assert!(error.contains("state.set: a deployment's state holds at most 4 MiB in all"), "{error}");
    assert_eq!(versions_served(server.app_port("web"), 2), vec!["v1"; 2]);

    let data_dir = server.data_dir.clone();
    let left = std::thread::spawn(move || {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let store = crate::common::open_store(&data_dir).await.unwrap();
            store.plugin_state_sizes(&id).await.unwrap()
        })
    })
    .join()
    .unwrap();
    assert!(left.is_empty(), "a finished deployment's state is deleted: {left:?}");
}

/// Over 1 MiB in one value: through the SDK's typed state, and through the raw
/// capability. Both say which limit, not just "it trapped".
#[test]
fn a_state_value_over_1_mib_fails_with_the_limit_in_the_message() {
    let server = hostile_server(&[]);
    server.deploy("web", &demo_command("v1", ""), &[]).ok();
    let sdk = hostile(&server, "web", "big-state", &[]);
    let d = server.wait_for(&sdk, Duration::from_secs(30));
    let error = d["error"].as_str().unwrap();
    assert!(error.contains("the strategy's state is") && error.contains("at most 1 MiB per value"), "{error}");

    let raw = hostile(&server, "web", "raw-big-value", &[]);
    let d = server.wait_for(&raw, Duration::from_secs(30));
    let error = d["error"].as_str().unwrap();
    assert!(error.contains("state.set: a value may hold at most 1 MiB; `big` has 2097152 bytes"), "{error}");
    assert!(!error.contains("wasm backtrace"), "{error}");
}

/// A stack overflowed by large frames says so (and where), in a step and in validate();
/// in validate() it is the plugin's fault: a 4xx naming it, exit 2, nothing created.
#[test]
fn a_stack_overflow_says_so_and_in_validate_is_a_4xx_naming_the_plugin() {
    let server = hostile_server(&[]);
    server.deploy("web", &demo_command("v1", ""), &[]).ok();
    let id = hostile(&server, "web", "deep-step", &[]);
    let d = server.wait_for(&id, Duration::from_secs(30));
    let error = d["error"].as_str().unwrap();
    assert!(error.contains("out of bounds") && error.contains("stack"), "{error}");
    assert!(error.contains("hostile::deep"), "the message says where: {error}");

    let run = server.deploy(
        "fresh",
        &demo_command("v1", ""),
        &["--strategy", "test-hostile", "--param", "mode=deep-validate"],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("strategy test-hostile 0.1.0 failed while checking the deployment")
            && run.stderr.contains("out of bounds"),
        "{}",
        run.stderr
    );
    let spec = serde_json::json!({"app": "fresh", "image": demo_command("v1", ""), "strategy": "test-hostile",
        "params": {"mode": "deep-validate"}});
    let (status, body) = server.api_post("/api/apps/deploy", "application/json", spec.to_string().as_bytes());
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "plugin_failed", "{body}");
    assert_eq!(server.get("/api/apps/fresh").0, 404, "nothing was created");
}

/// 10 MiB in a failure reason, an approval reason, a progress message and log lines is
/// stored cut, marked, and small.
#[test]
fn plugin_output_is_bounded_and_marked_where_it_was_cut() {
    let server = hostile_server(&[]);
    server.deploy("web", &demo_command("v1", ""), &[]).ok();
    let marker = "… [truncated, 10485760 bytes]";

    let id = hostile(&server, "web", "shout-failed", &[]);
    let d = server.wait_for(&id, Duration::from_secs(30));
    let error = d["error"].as_str().unwrap();
    assert!(error.len() < 5000 && error.ends_with(marker), "{} bytes: {}", error.len(), &error[error.len() - 60..]);

    let id = hostile(&server, "web", "shout-await", &[]);
    wait_until("awaiting approval", Duration::from_secs(20), || {
        server.api(&format!("/api/deployments/{id}"))["status"] == "awaiting_approval"
    });
    let message = server.api(&format!("/api/deployments/{id}"))["message"].as_str().unwrap().to_string();
    assert!(message.len() < 5200 && message.contains(marker), "{} bytes", message.len());
    server.cli(&["deployment", "abort", "--id", &id]).ok();
    server.wait_for(&id, Duration::from_secs(30));

    let id = hostile(&server, "web", "shout-report", &[]);
    wait_until("a few steps", Duration::from_secs(20), || {
        server.api(&format!("/api/deployments/{id}"))["attempt"].as_u64().unwrap() >= 3
    });
    let d = server.api(&format!("/api/deployments/{id}"));
    let message = d["message"].as_str().unwrap();
    assert!(message.len() < 1100 && message.contains(marker), "{} bytes", message.len());
    let lines: Vec<Value> = server.events(&id);
    let longest = lines.iter().map(|e| e["message"].as_str().unwrap().len()).max().unwrap();
    assert!(longest < 2100, "the longest event is {longest} bytes");
    assert!(lines.iter().any(|e| e["message"].as_str().unwrap().ends_with("… [truncated, 2621440 bytes]")));
    server.cli(&["deployment", "abort", "--id", &id]).ok();
    server.wait_for(&id, Duration::from_secs(30));

    let (status, list) = server.get("/api/deployments?app=web");
    assert_eq!(status, 200);
    assert!(list.len() < 200_000, "deployment list is {} bytes", list.len());
}

/// The strategy moves all traffic to the new release, stops the old one, fails, and its
/// rollback fails too: the host restores the previous release itself.
#[test]
fn when_a_rollback_fails_the_host_restores_the_previous_release() {
    let server = hostile_server(&[]);
    server.deploy("web", &demo_command("v1", ""), &["--replicas", "2"]).ok();
    let port = server.app_port("web");
    let id = hostile(&server, "web", "bad-rollback", &["--replicas", "2"]);
    let d = server.wait_for(&id, Duration::from_secs(60));
    assert_eq!(d["status"], "failed", "{d}");
    let message = d["message"].as_str().unwrap();
    assert!(message.contains("the strategy's rollback failed too"), "{message}");
    assert!(message.contains("the host restored it: r1 serves again on 2 replicas"), "{message}");
    assert_eq!(d["error"], "the new release is bad, on purpose");
    let app = server.api("/api/apps/web");
    assert_eq!(app["release"]["version"], "r1", "{app}");
    assert!(app["degraded"].is_null(), "{app}");
    assert_eq!(app["split"], serde_json::json!([["r1", 100]]), "{app}");
    assert_eq!(server.replica_versions("web"), vec!["r1", "r1"]);
    assert_eq!(versions_served(port, 4), vec!["v1"; 4]);
}

/// When even the host cannot bring the previous release back (it no longer starts), the
/// app says it is degraded, and its release is what the router really serves.
#[test]
fn when_the_host_cannot_restore_either_the_app_says_it_is_degraded_and_what_serves() {
    let server = hostile_server(&[]);
    let flag = server.data_dir.join("v1-may-start");
    std::fs::write(&flag, "").unwrap();
    let v1 = format!("sh -c 'test -f {} && exec {}'", flag.display(), demo_command("v1", ""));
    server.deploy("web", &v1, &["--replicas", "2"]).ok();
    std::fs::remove_file(&flag).unwrap();
    let id = hostile(&server, "web", "bad-rollback", &["--replicas", "2", "--health-check-timeout", "3"]);
    let d = server.wait_for(&id, Duration::from_secs(60));
    assert_eq!(d["status"], "failed", "{d}");
    let message = d["message"].as_str().unwrap();
    assert!(message.contains("the host could not restore r1"), "{message}");
    assert!(message.contains("app web is degraded"), "{message}");
    let app = server.api("/api/apps/web");
    let degraded = app["degraded"].as_str().expect("the app says it is degraded");
    assert!(degraded.contains("r2 serves all traffic"), "{degraded}");
    assert_eq!(app["release"]["version"], "r2", "app get agrees with the router: {app}");
    assert_eq!(versions_served(server.app_port("web"), 4), vec!["v2"; 4]);
    let shown = server.cli(&["app", "get", "--name", "web"]).ok().stdout;
    assert!(shown.contains("degraded"), "{shown}");

    // The next release that serves makes the app healthy again.
    server.deploy("web", &demo_command("v3", ""), &["--replicas", "2", "--strategy", "rolling-update"]).ok();
    assert!(server.api("/api/apps/web")["degraded"].is_null());
}

/// Abort, pause and rollback interrupt a step that waits on slow host calls (here 100
/// reads of a metrics endpoint that takes 1.5 s each), instead of waiting up to 60 s.
#[test]
fn abort_and_pause_interrupt_a_step_that_waits_on_host_calls() {
    let server = hostile_server(&[]);
    server.deploy("web", &demo_command("v1", ""), &[]).ok();
    let slow = ["--param", "metrics-endpoint=/slow?ms=1500"];
    for action in ["pause", "abort"] {
        let id = hostile(&server, "web", "stall", &slow);
        wait_until("the stalling step", Duration::from_secs(20), || {
            server.replica_versions("web").iter().any(|v| v != "r1")
        });
        std::thread::sleep(Duration::from_millis(1500));
        let asked = Instant::now();
        let d = server.cli_json(&["deployment", action, "--id", &id]);
        assert_eq!(d["status"], if action == "pause" { "paused" } else { "rolling_back" }, "{d}");
        wait_until("the step's interruption", Duration::from_secs(5), || {
            server.events(&id).iter().any(|e| e["message"].as_str().unwrap().contains("was interrupted after"))
        });
        assert!(asked.elapsed() < Duration::from_secs(5), "{action} acted in {:?}", asked.elapsed());
        if action == "pause" {
            server.cli(&["deployment", "abort", "--id", &id]).ok();
        }
        let end = server.wait_for(&id, Duration::from_secs(30));
        assert_eq!(end["status"], "aborted", "{end}");
        assert_eq!(server.replica_versions("web"), vec!["r1"]);
    }
}

/// One app's strategy cannot take every replica of the host: it is held to its quota,
/// and the error says which; another app deploys beside it.
#[test]
fn each_app_has_a_replica_quota_that_leaves_room_for_the_others() {
    let server = hostile_server(&["--max-replicas", "8"]);
    let id = hostile(&server, "greedy", "greedy", &[]);
    let d = server.wait_for(&id, Duration::from_secs(30));
    assert_eq!(d["status"], "failed", "{d}");
    let error = d["error"].as_str().unwrap();
    assert!(error.contains("would pass app `greedy`'s quota of 4 replicas"), "{error}");
    assert!(error.contains("--replica-quota"), "{error}");
    server.deploy("other", &demo_command("v1", ""), &["--replicas", "4"]).ok();

    let run = server.deploy("big", &demo_command("v1", ""), &["--replicas", "5"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("its replica quota is 4"), "{}", run.stderr);
    let run = server.deploy("big", &demo_command("v1", ""), &["--replicas", "5", "--replica-quota", "9"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("replica quota must be 1 to the server's --max-replicas, 8"), "{}", run.stderr);
    // A quota of its own, within the host's limit: 4 run, 4 more fit.
    let run = server.deploy("big", &demo_command("v1", ""), &["--replicas", "4", "--replica-quota", "6"]);
    let d = run.ok().json();
    assert_eq!(d["status"], "completed", "{d}");
    assert_eq!(server.api("/api/apps/big")["replica_quota"], 6);
}

/// Many apps deployed at once without --port: every router and replica gets a port of
/// its own (bench/concurrent-deploys.sh does 100, three times, and prints figures).
#[test]
fn apps_deployed_at_once_never_collide_on_ports() {
    let server = Server::start("process");
    let image = demo_command("v1", "");
    let url = server.url.clone();
    let token = server.token.clone();
    let threads: Vec<_> = (0..30)
        .map(|i| {
            let (url, token, image) = (url.clone(), token.clone(), image.clone());
            std::thread::spawn(move || {
                let spec =
                    serde_json::json!({"app": format!("app{i}"), "image": image, "health_check_path": "/health"});
                crate::common::http_request_with(
                    "POST",
                    &format!("{url}/api/apps/deploy"),
                    Some(("application/json", spec.to_string().as_bytes())),
                    Some(&token),
                )
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in threads {
        let (status, body) = t.join().unwrap();
        assert_eq!(status, 201, "{body}");
        ids.push(serde_json::from_str::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string());
    }
    for id in ids {
        let d = server.wait_for(&id, Duration::from_secs(60));
        assert_eq!(d["status"], "completed", "{d}");
    }
    let apps = server.api("/api/apps");
    let mut ports: Vec<u64> = apps.as_array().unwrap().iter().map(|a| a["port"].as_u64().unwrap()).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 30);
}

/// Blue-green switches as soon as green is verified, not after its whole window; a soak
/// is asked for explicitly, and may not be longer than the window.
#[test]
fn blue_green_switches_once_green_is_verified_unless_asked_to_soak() {
    let server = Server::start("process");
    let flags = ["--strategy", "blue-green", "--scale-down-delay", "0", "--replicas", "2"];
    server.deploy("web", &demo_command("v1", ""), &flags).ok();
    let switched_after = |d: &Value| -> Duration {
        let id = d["id"].as_str().unwrap();
        let log = server.events(id);
        let created = log[0]["at_ms"].as_i64().unwrap();
        let switch = log
            .iter()
            .find(|e| e["message"].as_str().unwrap().starts_with("switched all traffic to green"))
            .unwrap_or_else(|| panic!("no switch in {log:?}"));
        Duration::from_millis((switch["at_ms"].as_i64().unwrap() - created) as u64)
    };
    // The default window is 30 s: a healthy green switches long before it ends.
    let d = server.deploy("web", &demo_command("v2", ""), &flags).ok().json();
    assert_eq!(d["status"], "completed", "{d}");
    let quick = switched_after(&d);
    assert!(quick < Duration::from_secs(15), "switched after {quick:?}");

    let mut soaked = flags.to_vec();
    soaked.extend(["--verification-soak", "3"]);
    let d = server.deploy("web", &demo_command("v3", ""), &soaked).ok().json();
    assert!(switched_after(&d) >= Duration::from_secs(3), "the soak lasted: {:?}", switched_after(&d));
    assert_eq!(versions_served(server.app_port("web"), 2), vec!["v3"; 2]);

    let mut too_long = flags.to_vec();
    too_long.extend(["--verification-soak", "40"]);
    let run = server.deploy("web", &demo_command("v1", ""), &too_long);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("verification-soak 40 s is longer than verification-timeout 30 s"), "{}", run.stderr);
}

/// Rolling back a completed deployment brings the old release back at once: the
/// strategy knows it is a rollback (plugin API 0.1.1) and skips its manual gate.
#[test]
fn a_rollback_of_a_completed_deployment_skips_the_strategys_gate() {
    let server = Server::start("process");
    let gated = ["--strategy", "blue-green", "--auto-promote", "false", "--scale-down-delay", "0"];
    let mut id = String::new();
    for version in ["v1", "v2"] {
        let d = server.deploy("web", &demo_command(version, ""), &gated).ok().json();
        assert_eq!(d["status"], "awaiting_approval", "the gate holds a deployment: {d}");
        id = d["id"].as_str().unwrap().to_string();
        server.cli(&["deployment", "promote", "--id", &id]).ok();
        assert_eq!(server.wait_for(&id, Duration::from_secs(30))["status"], "completed");
    }
    let run = server.cli(&["deployment", "rollback", "--id", &id, "--output", "json"]);
    let rollback = run.ok().json();
    assert_eq!(rollback["status"], "completed", "no gate held the rollback: {rollback}");
    assert_eq!(versions_served(server.app_port("web"), 2), vec!["v1"; 2]);
}

/// Each inconclusive canary window needs a promotion of its own: one promotion does not
/// wave the next window through.
#[test]
fn every_inconclusive_canary_window_needs_its_own_promotion() {
    let server = Server::start("process");
    server.deploy("web", &demo_command("v1", ""), &[]).ok();
    let quiet = ["--strategy", "canary", "--steps", "20,50,100", "--interval", "1", "--min-requests", "1000"];
    let d = server.deploy("web", &demo_command("v2", ""), &quiet).ok().json();
    assert_eq!(d["status"], "awaiting_approval", "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    assert!(d["message"].as_str().unwrap().contains("canary analysis at 20% inconclusive"), "{d}");
    server.cli(&["deployment", "promote", "--id", &id]).ok();
    wait_until("the next window", Duration::from_secs(20), || {
        let d = server.api(&format!("/api/deployments/{id}"));
        d["status"] == "awaiting_approval"
            && d["message"].as_str().unwrap().contains("canary analysis at 50% inconclusive")
    });
    assert_eq!(server.api(&format!("/api/deployments/{id}"))["promotions"], 1);
    server.cli(&["deployment", "abort", "--id", &id]).ok();
}

/// A component built against plugin API 0.1.0, without the SDK, runs on this host.
#[test]
fn a_plugin_built_for_api_0_1_0_still_loads_and_deploys() {
    let server = Server::start("process");
    let installed = server.cli_json(&["plugin", "install", test_plugin("legacy").to_str().unwrap()]);
    assert_eq!(installed["api_version"], "0.1.0", "{installed}");
    let d = server.deploy("web", &demo_command("v1", ""), &["--strategy", "test-legacy", "--replicas", "2"]);
    assert_eq!(d.ok().json()["status"], "completed");
    assert_eq!(versions_served(server.app_port("web"), 2), vec!["v1"; 2]);
    let builtin = server.cli_json(&["plugin", "inspect", "canary"]);
    assert_eq!(builtin["api_version"], "0.1.1", "{builtin}");
}
