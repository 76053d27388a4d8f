//! The deployment engine, as a user drives it through the CLI: pause and resume, abort,
//! promote, auto-rollback, the progress deadline, diagnose, the event stream, one
//! deployment per app, and a server killed at random moments.

use crate::common::{Load, Server, demo_command, versions_served, wait_until};
use serde_json::Value;
use std::time::Duration;

/// Deploys demo `version` on 4 replicas.
fn deploy(server: &Server, app: &str, version: &str, extra: &[&str]) -> crate::common::CliRun {
    let mut args = vec!["--replicas", "4"];
    args.extend_from_slice(extra);
    server.deploy(app, &demo_command(version, ""), &args)
}

/// A zero-downtime deployment slow enough to act on: one replica per batch, a pause
/// between batches.
const SLOW: [&str; 8] =
    ["--strategy", "zero-downtime", "--batch-size", "1", "--batch-delay", "1", "--drain-timeout", "5"];

fn status(server: &Server, id: &str) -> Value {
    server.cli_json(&["deployment", "get", "--id", id])
}

#[test]
fn pause_stops_stepping_and_resume_goes_on() {
    let server = Server::start("process");
    deploy(&server, "web", "v1", &[]).ok();
    let mut args = vec!["--detach"];
    args.extend(SLOW);
    let id = deploy(&server, "web", "v2", &args).ok().json()["id"].as_str().unwrap().to_string();
    wait_until("a few steps", Duration::from_secs(20), || status(&server, &id)["attempt"].as_u64().unwrap() >= 3);

    let paused = server.cli_json(&["deployment", "pause", "--id", &id]);
    assert_eq!(paused["status"], "paused");
    std::thread::sleep(Duration::from_millis(300)); // a step under way when paused finishes
    let at_pause = status(&server, &id);
    let replicas_at_pause = server.replica_versions("web");
    std::thread::sleep(Duration::from_millis(2500));
    let later = status(&server, &id);
    assert_eq!(later["status"], "paused");
    assert_eq!(later["attempt"], at_pause["attempt"], "a paused deployment took steps");
    assert_eq!(server.replica_versions("web"), replicas_at_pause, "a paused deployment changed replicas");

    let resumed = server.cli_json(&["deployment", "resume", "--id", &id]);
    assert_eq!(resumed["status"], "in_progress");
    let end = server.wait_for(&id, Duration::from_secs(60));
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(versions_served(server.app_port("web"), 4), vec!["v2"; 4]);

    // Resuming what is not paused says why not.
    let run = server.cli(&["deployment", "resume", "--id", &id]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("it is completed; only a paused deployment can be resumed"), "{}", run.stderr);
}

#[test]
fn abort_stops_a_deployment_and_puts_the_previous_release_back() {
    let server = Server::start("process");
    deploy(&server, "web", "v1", &[]).ok();
    let port = server.app_port("web");
    let load = Load::start(port, 2);
    let mut args = vec!["--detach"];
    args.extend(SLOW);
    let id = deploy(&server, "web", "v2", &args).ok().json()["id"].as_str().unwrap().to_string();
    wait_until("a replica of r2", Duration::from_secs(20), || {
        server.replica_versions("web").contains(&"r2".to_string())
    });
    let aborted = server.cli_json(&["deployment", "abort", "--id", &id]);
    assert_eq!(aborted["status"], "rolling_back");
    let end = server.wait_for(&id, Duration::from_secs(60));
    load.stop().assert_no_failures("abort");
    assert_eq!(end["status"], "aborted", "{end}");
    assert_eq!(server.replica_versions("web"), vec!["r1"; 4]);
    assert_eq!(versions_served(port, 4), vec!["v1"; 4]);
}

#[test]
fn promote_releases_a_manual_gate() {
    let server = Server::start("process");
    deploy(
        &server,
        "web",
        "v1",
        &["--strategy", "blue-green", "--verification-timeout", "0", "--scale-down-delay", "0"],
    )
    .ok();
    let port = server.app_port("web");
    let gate = [
        "--strategy",
        "blue-green",
        "--verification-timeout",
        "0",
        "--scale-down-delay",
        "0",
        "--auto-promote",
        "false",
    ];
    // The CLI follows the deployment until it waits for approval.
    let waiting = deploy(&server, "web", "v2", &gate).ok().json();
    let id = waiting["id"].as_str().unwrap();
    assert_eq!(waiting["status"], "awaiting_approval");
    assert!(waiting["message"].as_str().unwrap().contains("hivemind deployment promote --id"), "{waiting}");
    // Nothing switched, but green answers on its preview route, to whoever shows the app's
    // preview key; to anyone else, the header is nothing.
    assert_eq!(versions_served(port, 4), vec!["v1"; 4]);
    let key = server.cli(&["app", "preview-key", "--name", "web"]).ok().stdout.trim().to_string();
    assert_eq!(key.len(), 32, "{key}");
    assert_eq!(reqwest::blocking_preview(port, "r2", Some(&format!("x-hivemind-preview: {key}"))), "v2");
    assert_eq!(reqwest::blocking_preview(port, "r2", Some(&format!("cookie: hivemind_preview={key}"))), "v2");
    assert_eq!(reqwest::blocking_preview(port, "r2", None), "v1");
    assert_eq!(
        reqwest::blocking_preview(port, "r2", Some("x-hivemind-preview: 0123456789abcdef0123456789abcdef")),
        "v1"
    );

    let promoted = server.cli_json(&["deployment", "promote", "--id", id]);
    assert_eq!(promoted["status"], "in_progress");
    assert_eq!(server.wait_for(id, Duration::from_secs(30))["status"], "completed");
    assert_eq!(versions_served(port, 4), vec!["v2"; 4]);
    let run = server.cli(&["deployment", "promote", "--id", id]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("only a deployment awaiting approval can be promoted"), "{}", run.stderr);
}

/// GETs `/` with the variant header (and another header, such as the preview key), over a
/// raw connection.
mod reqwest {
    pub fn blocking_preview(port: u16, version: &str, with: Option<&str>) -> String {
        let with = with.map(|h| format!("{h}\r\n")).unwrap_or_default();
        crate::common::raw_get(port, "x", &format!("x-hivemind-variant: {version}\r\n{with}"))
    }
}

#[test]
fn with_auto_rollback_off_a_failure_leaves_things_as_they_are() {
    let server = Server::start("process");
    deploy(&server, "web", "v1", &[]).ok();
    let sick = [
        "--strategy",
        "rolling-update",
        "--env",
        "DEMO_FAIL_HEALTH=1",
        "--health-check-timeout",
        "2",
        "--auto-rollback",
        "false",
    ];
    let run = deploy(&server, "web", "v2", &sick);
    assert_eq!(run.code, 1, "{run:?}");
    let d = run.json();
    assert_eq!(d["status"], "failed");
    assert!(d["message"].as_str().unwrap().contains("auto-rollback is off"), "{d}");
    assert!(
        server.replica_versions("web").contains(&"r2".to_string()),
        "the failed release's replicas stay for inspection"
    );
}

#[test]
fn a_deployment_that_stops_advancing_fails_at_its_progress_deadline() {
    let server = Server::start("process");
    deploy(&server, "web", "v1", &[]).ok();
    // A 30 s pause between batches reports no progress; the deadline is 2 s.
    let stuck = ["--strategy", "zero-downtime", "--batch-size", "1", "--batch-delay", "30", "--progress-deadline", "2"];
    let run = deploy(&server, "web", "v2", &stuck);
    assert_eq!(run.code, 1, "{run:?}");
    let d = run.json();
    assert_eq!(d["status"], "failed");
    assert!(d["error"].as_str().unwrap().starts_with("progress deadline exceeded: no progress for 2 s"), "{d}");
    assert_eq!(server.replica_versions("web"), vec!["r1"; 4]);
}

#[test]
fn diagnose_names_the_cause_in_its_first_lines() {
    let server = Server::start("process");
    deploy(&server, "web", "v1", &[]).ok();
    let run = deploy(&server, "web", "v2", &["--env", "DEMO_FAIL_HEALTH=1", "--health-check-timeout", "2"]);
    let id = run.json()["id"].as_str().unwrap().to_string();
    let text = server.cli(&["deployment", "diagnose", "--id", &id]).ok().stdout;
    let first = text.lines().next().unwrap();
    assert!(first.contains(&format!("deployment {id} of app web is failed")), "{text}");
    assert!(first.contains("health check failed") && first.contains("/health returned 503"), "{text}");
    assert!(
        text.contains("timeline:") && text.contains("replicas of app web now:") && text.contains("errors:"),
        "{text}"
    );
    let verbose = server.cli(&["deployment", "diagnose", "--id", &id, "--verbose"]).ok().stdout;
    assert!(verbose.contains("of the deploy phase: continue in"), "verbose shows the steps: {verbose}");
    let json = server.cli_json(&["deployment", "diagnose", "--id", &id]);
    assert!(json["cause"].as_str().unwrap().contains("health check failed"));
}

#[test]
fn an_app_runs_one_deployment_at_a_time_and_events_stream_as_sse() {
    let server = Server::start("process");
    deploy(&server, "web", "v1", &[]).ok();
    let mut args = vec!["--detach"];
    args.extend(SLOW);
    let id = deploy(&server, "web", "v2", &args).ok().json()["id"].as_str().unwrap().to_string();
    let second = deploy(&server, "web", "v1", &[]);
    assert_eq!(second.code, 2);
    assert!(second.stderr.contains(&format!("app `web` has deployment {id} in progress")), "{}", second.stderr);

    // The event stream runs until the deployment ends.
    let (status, body) = server.get(&format!("/api/deployments/{id}/events/stream"));
    assert_eq!(status, 200);
    assert!(body.contains("event: event") && body.contains("event: status"), "{body}");
    let last_status = body.lines().rfind(|l| l.starts_with("data:") && l.contains("\"status\"")).unwrap();
    assert!(last_status.contains("\"status\":\"completed\""), "{last_status}");
}

/// The server is killed (SIGKILL) at random moments of deployments with three
/// strategies, and restarted on its data dir each time, under load that no kill fails.
#[test]
fn killed_at_random_moments_every_deployment_ends_cleanly() {
    let seed =
        std::env::var("HIVEMIND_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    eprintln!("kill test seed {seed} (HIVEMIND_KILL_SEED={seed} repeats it)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(data.path(), "process");
    deploy(&server, "web", "v1", &["--strategy", "rolling-update"]).ok();
    let port = server.app_port("web");
    let strategies: [(&str, &[&str]); 3] = [
        ("rolling-update", &["--max-surge", "1", "--max-unavailable", "1"]),
        ("blue-green", &["--verification-timeout", "1", "--scale-down-delay", "0"]),
        ("zero-downtime", &["--batch-size", "2", "--batch-delay", "0"]),
    ];
    let mut kills = 0;
    for round in 0..12 {
        let (strategy, flags) = strategies[round % strategies.len()];
        let version = if round % 2 == 0 { "v2" } else { "v1" };
        let mut args = vec!["--detach", "--strategy", strategy];
        args.extend_from_slice(flags);
        let id = deploy(&server, "web", version, &args).ok().json()["id"].as_str().unwrap().to_string();

        // The load runs across the kill and the restart: the router process serves on.
        let load = Load::start(port, 2);
        std::thread::sleep(Duration::from_millis(rng.u64(50..1500)));
        let before = server.cli_json(&["deployment", "events", "--id", &id]);
        server.kill();
        kills += 1;

        server = Server::start_in(data.path(), "process");
        let end = server.wait_for(&id, Duration::from_secs(60));
        load.stop().assert_no_failures(&format!("round {round} ({strategy}), across the kill"));
        let status = end["status"].as_str().unwrap();
        assert!(
            status == "completed" || (status == "failed" && end["message"].as_str().unwrap().contains("serves again")),
            "round {round}: {end}"
        );

        // No event recorded before the kill is lost.
        let after = server.cli_json(&["deployment", "events", "--id", &id]);
        for e in before.as_array().unwrap() {
            assert!(after.as_array().unwrap().contains(e), "round {round}: lost event {e}");
        }
        // The app serves the release the deployment left, on exactly its replicas, and
        // nothing else of this server runs.
        let expected = if status == "completed" { version.to_string() } else { served_before(version) };
        assert!(versions_served(port, 4).iter().all(|v| *v == expected), "round {round}");
        let app = server.api("/api/apps/web");
        let mut recorded: Vec<String> =
            app["replicas"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().into()).collect();
        recorded.sort();
        assert_eq!(recorded.len(), 4, "round {round}: {app}");
        assert_eq!(running_replicas(data.path()), recorded, "round {round}: orphaned replicas");
    }
    assert!(kills >= 10);
}

fn served_before(version: &str) -> String {
    if version == "v2" { "v1".into() } else { "v2".into() }
}

/// The replicas of the server in `data_dir` that really run, by the id in their environment.
fn running_replicas(data_dir: &std::path::Path) -> Vec<String> {
    let dir = data_dir.to_path_buf();
    let server_id = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async { crate::common::open_store(&dir).await.unwrap().server_id().await.unwrap() })
    })
    .join()
    .unwrap();
    let wanted = format!("HIVEMIND_SERVER={server_id}");
    let mut ids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        if unsafe { libc::getpgid(pid) } != pid {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        if vars.contains(&wanted.as_bytes())
            && let Some(id) = vars.iter().find_map(|v| v.strip_prefix(b"HIVEMIND_REPLICA="))
        {
            ids.push(String::from_utf8_lossy(id).to_string());
        }
    }
    ids.sort();
    ids
}

#[test]
fn history_is_kept_per_app_up_to_the_limit() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), "process", &["--history-limit", "2"]);
    for (i, version) in ["v1", "v2", "v1", "v2"].iter().enumerate() {
        deploy(&server, "web", version, &[]).ok();
        if i == 0 {
            deploy(&server, "other", version, &[]).ok();
        }
    }
    let web = server.cli_json(&["deployment", "list", "--app", "web"]);
    let versions: Vec<&str> = web.as_array().unwrap().iter().map(|d| d["target_version"].as_str().unwrap()).collect();
    assert_eq!(versions, vec!["r4", "r3"], "the newest two of web's four deployments remain");
    assert_eq!(
        server.cli_json(&["deployment", "list", "--app", "other"]).as_array().unwrap().len(),
        1,
        "other apps keep theirs"
    );
}
