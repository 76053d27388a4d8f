//! A control plane that survives losing a server: several `hivemind serve` on one real
//! PostgreSQL, one leading. The leader is killed (SIGKILL) or paused (SIGSTOP) in the
//! middle of a deployment under load through the app's router; a follower takes over and
//! finishes it, no step is taken twice, no request fails. The database going away makes
//! the leader step down while the router serves on, and it comes back on its own. A
//! SQLite install moves to Postgres with its history.
//!
//! The servers share one data dir, as servers on one machine do: one router process
//! (the data plane of the node), the token, the plugins' bytes.

use crate::common::postgres::{self, Postgres, postgres_available};
use crate::common::{Load, LoadReport, Server, demo_command, versions_served, wait_until};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// The lease the tests use: short, so that a failover takes seconds, not ten.
const LEASE: [&str; 4] = ["--lease", "2s", "--lease-renew", "500ms"];

fn member(data_dir: &Path, url: &str, name: &str) -> Server {
    let mut flags = vec!["--database-url", url, "--server-name", name];
    flags.extend_from_slice(&LEASE);
    Server::start_with(data_dir, "process", &flags)
}

/// The cluster as a server sees it, or None while it cannot say (no leader to ask, the
/// server restarting).
fn cluster(server: &Server) -> Option<Value> {
    let (status, body) = server.get("/api/cluster");
    (status == 200).then(|| serde_json::from_str(&body).unwrap())
}

fn leader(server: &Server) -> Option<String> {
    cluster(server).and_then(|c| c["leader"].as_str().map(str::to_string))
}

fn wait_for_leader(server: &Server, other_than: Option<&str>, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(name) = leader(server).filter(|n| Some(n.as_str()) != other_than) {
            // The leader answers the API once its engine runs: wait for that too.
            if server.get("/api/apps").0 == 200 {
                return name;
            }
        }
        assert!(Instant::now() < deadline, "no leader within {timeout:?}: {:?}\n{}", cluster(server), server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until a deployment ends, asking through `server`, patient with the moments when
/// no server leads (a follower answers 503 then).
fn wait_for_end(server: &Server, id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = server.get(&format!("/api/deployments/{id}"));
        if status == 200 {
            let d: Value = serde_json::from_str(&body).unwrap();
            if d["completed"] == true {
                return d;
            }
            // None of these deployments has a gate: waiting for approval is a verdict.
            assert_ne!(d["status"], "awaiting_approval", "{d}\n{:#?}", server.events(id));
        }
        assert!(Instant::now() < deadline, "deployment {id} did not end within {timeout:?}: {body}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The steps each event says were taken, per phase: `step N of the P phase` and
/// `steps A to B of the P phase`. A step taken twice (by two leaders) shows up twice.
fn steps_taken(events: &[Value]) -> Vec<(String, u64)> {
    let mut taken = Vec::new();
    for e in events {
        let message = e["message"].as_str().unwrap_or_default();
        let words: Vec<&str> = message.split_whitespace().collect();
        let phase_of = |at: usize| words.get(at).map(|p| p.to_string()).unwrap_or_default();
        match words.as_slice() {
            ["step", n, "of", "the", ..] => taken.push((phase_of(4), n.parse().unwrap())),
            ["steps", a, "to", b, "of", "the", ..] => {
                let (a, b): (u64, u64) = (a.parse().unwrap(), b.trim_end_matches(':').parse().unwrap());
                taken.extend((a..=b).map(|n| (phase_of(6), n)));
            }
            _ => {}
        }
    }
    taken
}

fn assert_no_step_twice(events: &[Value], what: &str) {
    let taken = steps_taken(events);
    let unique: BTreeSet<&(String, u64)> = taken.iter().collect();
    assert_eq!(unique.len(), taken.len(), "{what}: a step was taken twice: {taken:?}\n{events:#?}");
    assert!(!taken.is_empty(), "{what}: no step events: {events:#?}");
}

/// The version that serves once a v1 → v2 deployment `end`ed. v2 is as healthy as v1: it
/// completes, unless the machine's load made its latency look worse and the analysis
/// rolled it back, the other right ending.
fn version_serving_after(end: &Value, events: &[Value], what: &str) -> &'static str {
    match end["status"].as_str() {
        Some("completed") => "v2",
        Some("rolled_back") => "v1",
        _ => panic!("{what}: {end}\n{events:#?}"),
    }
}

fn report(load: Load, what: &str) -> LoadReport {
    let r = load.stop();
    eprintln!("{what}: {} requests through the router, {} failed", r.ok + r.failures.len() as u64, r.failures.len());
    r
}

/// Three servers; the leader is killed while `strategy` runs under load.
fn leader_killed_mid_deployment(strategy: &[&str], what: &str) {
    if !postgres_available(what) {
        return;
    }
    let url = postgres::shared().database();
    let data = tempfile::tempdir().unwrap();
    let mut s1 = member(data.path(), &url, "s1");
    assert_eq!(wait_for_leader(&s1, None, Duration::from_secs(20)), "s1");
    let s2 = member(data.path(), &url, "s2");
    let s3 = member(data.path(), &url, "s3");
    wait_until("three servers in the cluster", Duration::from_secs(10), || {
        cluster(&s3).is_some_and(|c| c["servers"].as_array().unwrap().len() == 3)
    });
    let c = cluster(&s2).unwrap();
    assert_eq!(
        (c["leader"].as_str(), c["this_server"].as_str(), c["database"].as_str()),
        (Some("s1"), Some("s2"), Some("postgres"))
    );

    // A follower forwards: the first release is deployed through s2.
    let base = ["--replicas", "3"];
    s2.deploy("web", &demo_command("v1", ""), &base).ok();
    let port = s2.app_port("web");
    let load = Load::start(port, 2);
    std::thread::sleep(Duration::from_millis(300));

    let mut args = base.to_vec();
    args.extend_from_slice(strategy);
    args.push("--detach");
    let id = s3.deploy("web", &demo_command("v2", ""), &args).ok().json()["id"].as_str().unwrap().to_string();
    // Killed once a few steps are taken, and for a canary once its first analysis window
    // is open: the new leader must judge that window with the router's counts (which it
    // adopts), not with zeros.
    wait_until("the deployment to take a few steps", Duration::from_secs(30), || {
        let events = s2.events(&id);
        steps_taken(&events).len() >= 3
            && (!strategy.contains(&"canary")
                || events.iter().any(|e| e["message"].as_str().unwrap_or("").contains("analysing for")))
    });
    let d = s2.api(&format!("/api/deployments/{id}"));
    assert_eq!(d["completed"], false, "{what}: it ended before the kill: {d}");

    let killed = Instant::now();
    s1.kill();
    let new_leader = wait_for_leader(&s2, Some("s1"), Duration::from_secs(30));
    let takeover = killed.elapsed();
    eprintln!(
        "{what}: leader s1 SIGKILLed; {new_leader} took over and answers as the leader after {takeover:?} (lease 2 s)"
    );

    let end = wait_for_end(&s2, &id, Duration::from_secs(120));
    assert!(
        !s2.events(&id).iter().any(|e| e["message"].as_str().unwrap_or("").contains("inconclusive")),
        "{what}: the analysis after the takeover saw no traffic: {:#?}",
        s2.events(&id)
    );
    let serving = version_serving_after(&end, &s2.events(&id), what);
    eprintln!("{what}: the deployment ended {}", end["status"]);
    std::thread::sleep(Duration::from_millis(300));
    report(load, what).assert_no_failures(what);
    assert!(versions_served(port, 8).iter().all(|v| v == serving), "{what}");

    let events = s2.events(&id);
    assert_no_step_twice(&events, what);
    // Each takeover resumes the deployment once ("s2 took over …; resuming … at step N").
    // There is usually one; on a loaded machine the new leader may miss its own 2 s lease
    // and hand over again, which is the lease doing its job: then every takeover in the
    // log is one the lease recorded, each by another server than the one before.
    let takeovers: Vec<String> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.contains("took over as the cluster's leader") && m.contains("resuming"))
        .map(String::from)
        .collect();
    let names: Vec<&str> = takeovers.iter().map(|t| t.split(' ').next().unwrap()).collect();
    assert!(
        !takeovers.is_empty() && names.windows(2).all(|w| w[0] != w[1]),
        "{what}: each takeover resumed it once: {events:#?}"
    );
    if takeovers.len() > 1 {
        eprintln!("{what}: {} takeovers (a new leader missed its lease under load): {takeovers:?}", takeovers.len());
    }
    let last_leader = takeovers.last().unwrap().split(' ').next().unwrap().to_string();
    let c = cluster(&s3).unwrap();
    assert_eq!(c["leader"].as_str(), Some(last_leader.as_str()), "{c}");
    assert_eq!(takeovers[0].split(' ').next(), Some(new_leader.as_str()));
    let failovers = c["failovers"].as_u64().unwrap();
    assert!(c["epoch"].as_i64().unwrap() >= 2 && failovers == takeovers.len() as u64, "{c}");
    let leader = if last_leader == "s2" { &s2 } else { &s3 };
    let (_, metrics) = leader.get("/metrics");
    assert!(metrics.contains("hivemind_leader{server=\"") && metrics.contains("\"} 1"), "{metrics}");
    // The metric counts this server's own takeovers.
    let own = takeovers.iter().filter(|t| t.split(' ').next() == Some(last_leader.as_str())).count();
    assert!(metrics.contains(&format!("hivemind_failovers_total {own}")), "{metrics}");
    let out = s2.cli(&["cluster", "status"]).ok();
    assert!(out.stdout.contains(&format!("{last_leader} since")), "{}", out.stdout);
}

#[test]
fn leader_killed_mid_canary_under_load_a_follower_finishes_it() {
    leader_killed_mid_deployment(
        // A share and a threshold the load loop meets in a one-second window even on a
        // busy machine: the test is about the failover, not the analysis's sensitivity.
        &["--strategy", "canary", "--steps", "25,50,75,100", "--interval", "1", "--min-requests", "5"],
        "canary, leader killed",
    );
}

#[test]
fn leader_killed_mid_rolling_update_under_load_a_follower_finishes_it() {
    leader_killed_mid_deployment(
        &["--strategy", "rolling-update", "--max-surge", "1", "--max-unavailable", "0"],
        "rolling update, leader killed",
    );
}

/// A deployment steered through a follower (pause, resume) is steered at once: the
/// follower forwards to the leader. The leader stopped (SIGTERM) gives its lease up, and a
/// follower takes over well before the lease (the default, 10 s) would have run out.
#[test]
fn a_follower_steers_at_once_and_a_stopped_leader_hands_over_without_waiting_for_its_lease() {
    if !postgres_available("stopped leader") {
        return;
    }
    let url = postgres::shared().database();
    let data = tempfile::tempdir().unwrap();
    let defaults =
        |name: &str| Server::start_with(data.path(), "process", &["--database-url", &url, "--server-name", name]);
    let mut s1 = defaults("s1");
    assert_eq!(wait_for_leader(&s1, None, Duration::from_secs(20)), "s1");
    let s2 = defaults("s2");
    s2.deploy("web", &demo_command("v1", ""), &["--replicas", "2"]).ok();
    let load = Load::start(s2.app_port("web"), 1);
    let canary = [
        "--replicas",
        "2",
        "--strategy",
        "canary",
        "--steps",
        "50,100",
        "--interval",
        "1",
        "--min-requests",
        "10",
        "--detach",
    ];
    let id = s2.deploy("web", &demo_command("v2", ""), &canary).ok().json()["id"].as_str().unwrap().to_string();

    let paused = s2.cli_json(&["deployment", "pause", "--id", &id]);
    assert_eq!(paused["status"], "paused", "{paused}");
    assert_eq!(s1.api(&format!("/api/deployments/{id}"))["status"], "paused", "the leader has it at once");
    let resumed = s2.cli_json(&["deployment", "resume", "--id", &id]);
    assert_eq!(resumed["status"], "in_progress", "{resumed}");

    let stopped = Instant::now();
    s1.stop();
    assert_eq!(wait_for_leader(&s2, Some("s1"), Duration::from_secs(30)), "s2");
    let took = stopped.elapsed();
    eprintln!("stopped leader: s2 leads and answers {took:?} after SIGTERM of s1 (lease 10 s)");
    assert!(took < Duration::from_secs(8), "a stopped leader gives its lease up: {took:?}");
    let c = cluster(&s2).unwrap();
    assert_eq!(c["failovers"].as_u64(), Some(0), "a lease given up is no failover: {c}");
    assert_eq!(wait_for_end(&s2, &id, Duration::from_secs(60))["status"], "completed");
    report(load, "stopped leader").assert_no_failures("stopped leader");
}

/// The leader is paused (SIGSTOP) past its lease in the middle of a canary: the follower
/// takes over and finishes it. Resumed, the old leader finds itself deposed: it writes
/// nothing, pushes nothing to the router, and rejoins as a follower on the same address.
#[test]
fn a_paused_leader_is_deposed_writes_nothing_and_rejoins_as_a_follower() {
    if !postgres_available("paused leader") {
        return;
    }
    let url = postgres::shared().database();
    let data = tempfile::tempdir().unwrap();
    let s1 = member(data.path(), &url, "s1");
    assert_eq!(wait_for_leader(&s1, None, Duration::from_secs(20)), "s1");
    let s2 = member(data.path(), &url, "s2");
    s1.deploy("web", &demo_command("v1", ""), &["--replicas", "2"]).ok();
    let port = s1.app_port("web");
    let load = Load::start(port, 2);

    // As in the killed-leader test: a share and a threshold the load loop meets in a window
    // even on a busy machine; the test is about the deposed leader, not the analysis.
    let canary = [
        "--replicas",
        "2",
        "--strategy",
        "canary",
        "--steps",
        "25,50,100",
        "--interval",
        "1",
        "--min-requests",
        "5",
        "--detach",
    ];
    let id = s2.deploy("web", &demo_command("v2", ""), &canary).ok().json()["id"].as_str().unwrap().to_string();
    wait_until("a first step", Duration::from_secs(30), || !steps_taken(&s2.events(&id)).is_empty());

    let pid = s1.pid().expect("s1 runs");
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    let paused = Instant::now();
    assert_eq!(wait_for_leader(&s2, Some("s1"), Duration::from_secs(30)), "s2");
    eprintln!("paused leader: s2 leads {:?} after SIGSTOP of s1 (lease 2 s)", paused.elapsed());
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };

    // Resumed, s1 steps down and restarts itself as a follower, on the same API address.
    // Until it notices, the old process answers too (and reads from the database that s2
    // leads): wait for the restarted one, which says it does not lead.
    wait_until("s1 to rejoin as a follower", Duration::from_secs(30), || {
        s1.log().contains("restarting as a follower")
            && s1.get("/metrics").1.contains("hivemind_leader{server=\"s1\"} 0")
            && cluster(&s1).is_some_and(|c| {
                c["this_server"] == "s1"
                    && c["leader"] == "s2"
                    && c["servers"].as_array().unwrap().iter().any(|s| s["name"] == "s1" && s["role"] == "follower")
            })
    });
    let log = s1.log();
    assert!(log.contains("this server steps down"), "{log}");

    let end = wait_for_end(&s1, &id, Duration::from_secs(120));
    let serving = version_serving_after(&end, &s2.events(&id), "paused leader");
    std::thread::sleep(Duration::from_millis(300));
    report(load, "paused leader").assert_no_failures("paused leader");
    let events = s2.events(&id);
    assert_no_step_twice(&events, "paused leader");
    assert!(versions_served(port, 8).iter().all(|v| v == serving), "{end}");
}

/// The database goes away under the leader: it steps down, the router keeps serving the
/// app, and when the database is back the server leads again on its own.
#[test]
fn the_database_going_away_stops_the_leader_not_the_traffic() {
    if !postgres_available("database away") {
        return;
    }
    let pg = Postgres::start();
    pg.execute("CREATE DATABASE hivemind");
    let url = pg.url("hivemind");
    let data = tempfile::tempdir().unwrap();
    let s1 = member(data.path(), &url, "s1");
    assert_eq!(wait_for_leader(&s1, None, Duration::from_secs(20)), "s1");
    s1.deploy("web", &demo_command("v1", ""), &["--replicas", "2"]).ok();
    let port = s1.app_port("web");
    let load = Load::start(port, 2);
    std::thread::sleep(Duration::from_millis(300));

    pg.stop();
    wait_until("the leader to step down", Duration::from_secs(20), || s1.log().contains("this server steps down"));
    std::thread::sleep(Duration::from_secs(1));
    pg.start_again();
    assert_eq!(wait_for_leader(&s1, None, Duration::from_secs(60)), "s1");
    std::thread::sleep(Duration::from_millis(300));
    report(load, "database away").assert_no_failures("database away: the router serves without the control plane");
    // It drives again: a deployment goes through.
    s1.deploy("web", &demo_command("v2", ""), &["--replicas", "2", "--strategy", "rolling-update"]).ok();
    assert!(versions_served(port, 6).iter().all(|v| v == "v2"));
}

#[test]
fn a_server_given_an_unreachable_database_says_which_and_stops() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hivemind"))
        .args(["serve", "--api-addr", "127.0.0.1:0", "--runtime", "process", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .args(["--database-url", "postgres://hivemind:hunter2@127.0.0.1:1/hivemind"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("connecting to the database postgres://hivemind:***@127.0.0.1:1/hivemind"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// `store migrate` moves a SQLite install with history into Postgres; the server on
/// Postgres shows the same deployments and events, and adopts the replicas that run.
#[test]
fn store_migrate_moves_a_sqlite_install_to_postgres_with_its_history() {
    if !postgres_available("store migrate") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut lite = Server::start_on_sqlite(data.path(), "process");
    lite.deploy("web", &demo_command("v1", ""), &["--replicas", "2"]).ok();
    lite.deploy("web", &demo_command("v2", ""), &["--replicas", "2", "--strategy", "rolling-update"]).ok();
    lite.cli(&["cicd", "configure-deployment", "--pipeline", "prod", "--strategy", "canary"]).ok();
    let history = lite.cli_json(&["deployment", "list", "--app", "web"]);
    let last = history[0]["id"].as_str().unwrap().to_string();
    let events = lite.events(&last);
    lite.stop();

    let url = postgres::shared().database();
    let dir = data.path().to_str().unwrap();
    let out = lite.cli(&["store", "migrate", "--data-dir", dir, "--to", &url]).ok();
    assert!(out.stdout.contains("deployments") && out.stdout.contains("copied"), "{}", out.stdout);
    let again = lite.cli(&["store", "migrate", "--data-dir", dir, "--to", &url]);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("only into an empty database"), "{}", again.stderr);

    let pg = member(data.path(), &url, "s1");
    wait_for_leader(&pg, None, Duration::from_secs(20));
    assert_eq!(pg.cli_json(&["deployment", "list", "--app", "web"]), history);
    let moved = pg.events(&last);
    assert_eq!(moved[..events.len()], events[..], "the same events, ids included");
    assert_eq!(pg.cli_json(&["cicd", "list"]).as_array().map(|a| a.len()), Some(1));
    // The replicas carry the cluster id the install had: adopted, not orphans.
    let app = pg.api("/api/apps/web");
    assert_eq!(app["replicas"].as_array().unwrap().len(), 2, "{app}");
    assert!(versions_served(pg.app_port("web"), 4).iter().all(|v| v == "v2"));
    // And it goes on: a new deployment on Postgres.
    pg.deploy("web", &demo_command("v3", ""), &["--replicas", "2", "--strategy", "rolling-update"]).ok();
}

/// The router checks the fencing token itself: a table pushed under a lease epoch older
/// than one it has taken is refused, so even a deposed leader that tried to push would
/// change nothing.
#[test]
fn the_router_refuses_a_table_from_an_older_lease_epoch() {
    use std::io::{BufRead, BufReader, Write};
    let data = tempfile::tempdir().unwrap();
    let mut router = std::process::Command::new(env!("CARGO_BIN_EXE_hivemind"))
        .args(["router", "--data-dir"])
        .arg(data.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let socket = data.path().join("router.sock");
    wait_until("the router's control socket", Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    let stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut apply = |epoch: u64| -> Value {
        let request = serde_json::json!({"op": "apply", "table": {"apps": []}, "leader_epoch": epoch});
        writeln!(&stream, "{request}").unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    };
    assert_eq!(apply(5)["result"], "applied");
    let refused = apply(3);
    assert_eq!(refused["result"], "error", "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("lease epoch 3") && message.contains("epoch 5"), "{message}");
    assert_eq!(apply(5)["result"], "applied", "the same leader goes on");
    assert_eq!(apply(6)["result"], "applied", "a newer leader takes over");
    assert_eq!(apply(5)["result"], "error");
    let _ = router.kill();
    let _ = router.wait();
}
