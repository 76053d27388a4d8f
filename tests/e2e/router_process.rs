//! The data plane outlives the control plane: `hivemind router` as a process of its own.
//! `serve` stopped or killed under load, with a deployment under way or not; the router
//! upgraded under load; the router killed under load; the router started alone from the
//! table it kept on disk. The load is real HTTP through the app's port, both as new
//! connections and as keep-alive connections (as wrk sends).

use crate::common::{Load, LoadReport, Server, demo_command, process_runs, router_pid, versions_served, wait_until};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn deploy(server: &Server, version: &str, extra: &[&str]) -> crate::common::CliRun {
    let mut args =
        vec!["--replicas", "4", "--strategy", "rolling-update", "--max-surge", "1", "--max-unavailable", "0"];
    args.extend_from_slice(extra);
    server.deploy("web", &demo_command(version, ""), &args)
}

/// Both kinds of load at once: a new connection per request, and keep-alive connections.
struct BothLoads(Load, Load);

impl BothLoads {
    fn start(port: u16) -> BothLoads {
        BothLoads(Load::start(port, 2), Load::keep_alive(port, 2))
    }

    fn stop(self, what: &str) -> (LoadReport, LoadReport) {
        let (fresh, kept) = (self.0.stop(), self.1.stop());
        eprintln!(
            "{what}: {} requests on new connections ({} failed), {} on keep-alive connections ({} failed)",
            fresh.ok + fresh.failures.len() as u64,
            fresh.failures.len(),
            kept.ok + kept.failures.len() as u64,
            kept.failures.len()
        );
        (fresh, kept)
    }

    fn assert_no_failures(self, what: &str) {
        let (fresh, kept) = self.stop(what);
        fresh.assert_no_failures(&format!("{what}, new connections"));
        kept.assert_no_failures(&format!("{what}, keep-alive connections"));
    }
}

/// A counter of the server's /metrics, summed over the lines that start with `prefix`.
fn metric(server: &Server, prefix: &str) -> u64 {
    let (status, text) = server.get("/metrics");
    assert_eq!(status, 200, "{text}");
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum()
}

/// The requests the router answered for app `web`, over every version and status class.
fn served(server: &Server) -> u64 {
    metric(server, "hivemind_router_requests_total{app=\"web\"")
}

fn app_events(server: &Server) -> Vec<String> {
    server
        .cli_json(&["app", "events", "--name", "web"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

/// `serve` stopped (SIGTERM) and killed (SIGKILL), each in steady state and in the middle
/// of a rolling update, under load: the router process serves throughout, no request
/// fails, and the deployment under way completes after the restart.
#[test]
fn serve_stopped_or_killed_under_load_fails_no_request() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(data.path(), "process");
    deploy(&server, "v1", &[]).ok();
    let port = server.app_port("web");
    let router = router_pid(data.path()).expect("serve started a router process");
    let mut serving = "v1";

    for (phase, signal) in
        [("steady", "SIGTERM"), ("steady", "SIGKILL"), ("rolling update", "SIGTERM"), ("rolling update", "SIGKILL")]
    {
        let what = format!("serve {signal} in {phase}");
        let load = BothLoads::start(port);
        std::thread::sleep(Duration::from_millis(300));
        let under_way = (phase == "rolling update").then(|| {
            let next = if serving == "v1" { "v2" } else { "v1" };
            let id = deploy(&server, next, &["--detach"]).ok().json()["id"].as_str().unwrap().to_string();
            wait_until("the rolling update to start a replica", Duration::from_secs(30), || {
                server.events(&id).iter().any(|e| e["message"].as_str().unwrap_or("").starts_with("scaled"))
            });
            let d = server.api(&format!("/api/deployments/{id}"));
            assert_eq!(d["completed"], false, "{what}: the deployment ended before the restart: {d}");
            (id, next)
        });
        if signal == "SIGTERM" {
            server.stop()
        } else {
            server.kill()
        }
        // No control plane at all for a moment: the router alone serves.
        std::thread::sleep(Duration::from_millis(500));
        server = Server::start_in(data.path(), "process");
        assert!(server.log().contains("adopted the router process"), "{what}: {}", server.log());
        if let Some((id, next)) = under_way {
            let end = server.wait_for(&id, Duration::from_secs(90));
            assert_eq!(end["status"], "completed", "{what}: {end}");
            serving = next;
        }
        std::thread::sleep(Duration::from_millis(300));
        load.assert_no_failures(&what);
        assert!(versions_served(port, 8).iter().all(|v| v == serving), "{what}: not all on {serving}");
        assert_eq!(router_pid(data.path()), Some(router), "{what}: the router process was replaced");
    }
}

/// `hivemind router upgrade` under load: the new process takes the listeners over, the
/// old one finishes and exits, no request fails, and the counts carry on.
#[test]
fn router_upgrade_under_load_fails_no_request_and_keeps_the_counts() {
    let server = Server::start("process");
    deploy(&server, "v1", &[]).ok();
    let port = server.app_port("web");
    let old = router_pid(&server.data_dir).unwrap();

    let load = BothLoads::start(port);
    std::thread::sleep(Duration::from_millis(500));
    let before = served(&server);
    let upgraded = server.cli(&["router", "upgrade", "--data-dir", server.data_dir.to_str().unwrap()]).ok();
    assert!(upgraded.stdout.contains(&format!("(was {old})")), "{}", upgraded.stdout);
    let new = router_pid(&server.data_dir).unwrap();
    assert_ne!(new, old);
    wait_until("the old router process to exit", Duration::from_secs(35), || !process_runs(old));
    std::thread::sleep(Duration::from_millis(300));
    // The control plane talks to the new process: a deployment goes through it.
    deploy(&server, "v2", &[]).ok();
    std::thread::sleep(Duration::from_millis(300));
    load.assert_no_failures("router upgrade");

    assert!(versions_served(port, 8).iter().all(|v| v == "v2"));
    assert!(served(&server) >= before, "the counts went back across the upgrade");
    assert_eq!(metric(&server, "hivemind_router_process_restarts_total"), 0, "an upgrade is not a restart");
    assert!(process_runs(new));
}

/// The router process killed under load: `serve` starts another within a second, says
/// so in every app's events and in /metrics, and the counts never go backwards. The
/// requests that were on the killed process's connections fail: the one window that
/// remains, measured here.
#[test]
fn router_killed_under_load_is_back_within_a_second() {
    let server = Server::start("process");
    deploy(&server, "v1", &[]).ok();
    let port = server.app_port("web");
    let load = BothLoads::start(port);
    std::thread::sleep(Duration::from_millis(500));
    // Counts are pulled every 100 ms; wait for a pull to see the traffic.
    wait_until("the counts to show the load", Duration::from_secs(5), || served(&server) > 0);
    let before = served(&server);

    let killed = router_pid(&server.data_dir).unwrap();
    let at = Instant::now();
    unsafe { libc::kill(killed, libc::SIGKILL) };
    loop {
        let (status, _) = crate::common::http_get(&format!("http://127.0.0.1:{port}/"));
        if status == 200 && router_pid(&server.data_dir) != Some(killed) {
            break;
        }
        assert!(at.elapsed() < Duration::from_secs(5), "no router serves 5 s after the kill");
        std::thread::sleep(Duration::from_millis(5));
    }
    let back = at.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let (fresh, kept) = load.stop("router SIGKILL");
    eprintln!(
        "router SIGKILL: serving again after {} ms; {} failed requests ({} on new connections, {} on keep-alive ones)",
        back.as_millis(),
        fresh.failures.len() + kept.failures.len(),
        fresh.failures.len(),
        kept.failures.len()
    );
    assert!(back < Duration::from_secs(1), "serving again only after {back:?}");

    wait_until("the restart in /metrics", Duration::from_secs(5), || {
        metric(&server, "hivemind_router_process_restarts_total") == 1
    });
    assert_eq!(metric(&server, "hivemind_router_process_up"), 1);
    assert!(
        app_events(&server).iter().any(|e| e.contains("the router process stopped answering")),
        "{:?}",
        app_events(&server)
    );
    assert!(served(&server) >= before, "the counts went back across the restart");
    assert!(versions_served(port, 4).iter().all(|v| v == "v1"));
}

/// After a reboot (every process gone but the replicas), the router started alone serves
/// the last table it kept, before any control plane is up; `serve` then adopts it.
#[test]
fn the_router_alone_serves_the_table_it_kept() {
    let data = tempfile::tempdir().unwrap();
    let mut first = Server::start_in(data.path(), "process");
    deploy(&first, "v1", &[]).ok();
    let port = first.app_port("web");
    first.kill();
    drop(first);
    crate::common::stop_router(data.path());
    wait_until("the port to close", Duration::from_secs(5), || {
        crate::common::http_get(&format!("http://127.0.0.1:{port}/")).0 == 0
    });

    let mut router = start_router(data.path());
    wait_until("the router alone to serve", Duration::from_secs(10), || {
        crate::common::http_get(&format!("http://127.0.0.1:{port}/")).1.trim() == "v1"
    });
    let table: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.path().join("router-table.json")).unwrap()).unwrap();
    assert_eq!(table["apps"][0]["name"], "web", "{table}");

    // A second router on the same data dir refuses, and says what to do instead.
    let second =
        Command::new(env!("CARGO_BIN_EXE_hivemind")).args(["router", "--data-dir"]).arg(data.path()).output().unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("hivemind router upgrade"), "{second:?}");

    let server = Server::start_in(data.path(), "process");
    assert!(server.log().contains("adopted the router process"), "{}", server.log());
    deploy(&server, "v2", &[]).ok();
    assert!(versions_served(port, 8).iter().all(|v| v == "v2"));
    assert_eq!(router_pid(data.path()), Some(router.id() as i32));
    drop(server);
    let _ = router.wait();
}

fn start_router(data_dir: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_hivemind"))
        .args(["router", "--data-dir"])
        .arg(data_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// `--router-mode embedded` keeps the router inside `serve`: no router process.
#[test]
fn embedded_router_mode_serves_from_inside_serve() {
    let server = Server::start_with_flags("process", &["--router-mode", "embedded"]);
    deploy(&server, "v1", &[]).ok();
    assert!(versions_served(server.app_port("web"), 4).iter().all(|v| v == "v1"));
    assert_eq!(router_pid(&server.data_dir), None, "embedded mode started a router process");
    assert_eq!(metric(&server, "hivemind_router_process_up"), 0);
}
