//! The healer, as a user sees it: replicas killed at random come back under load, a
//! release whose replicas crash backs off and says so, and `app scale` fails no request.

use crate::common::{Load, Server, demo_command, versions_served, wait_until};
use crate::scenarios::Images;
use serde_json::Value;
use std::time::Duration;

#[test]
fn replicas_killed_at_random_come_back_under_load() {
    crate::scenarios::replicas_killed_at_random_come_back_under_load(Images::Process);
}

fn app_events(server: &Server, app: &str) -> Vec<(i64, String)> {
    let events = server.cli_json(&["app", "events", "--name", app]);
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["at_ms"].as_i64().unwrap(), e["message"].as_str().unwrap().into()))
        .collect()
}

/// The release's replicas start crashing (the file their command needs is gone): each
/// replacement dies at once, and the restarts are spaced as the back-off says (at once,
/// 1 s, 2 s, ...). `app get` says crash_looping, with how the replica ended. A good
/// deployment then replaces the release.
#[test]
fn a_release_whose_replicas_crash_backs_off_and_shows_crash_looping() {
    let server = Server::start_with_flags("process", &["--probe-interval", "0.25"]);
    let flag = server.data_dir.join("may-start");
    std::fs::write(&flag, "").unwrap();
    let v1 = format!("sh -c 'test -f {} && exec {}'", flag.display(), demo_command("v1", ""));
    server.deploy("loop", &v1, &[]).ok();
    std::fs::remove_file(&flag).unwrap();
    let pid = server.api("/api/apps/loop")["replicas"][0]["handle"].as_str().unwrap().parse().unwrap();
    unsafe { libc::kill(pid, libc::SIGKILL) };

    wait_until("four deaths", Duration::from_secs(20), || {
        app_events(&server, "loop").iter().filter(|(_, e)| e.contains(" exited (")).count() >= 4
    });
    let events = app_events(&server, "loop");
    let deaths: Vec<i64> = events.iter().filter(|(_, e)| e.contains(" exited (")).map(|(at, _)| *at).collect();
    assert!(events[0].1.contains("exited (killed by signal 9)"), "{events:#?}");
    assert!(
        events.iter().any(|(_, e)| e.contains("exited (exited with code 1); crash-looping: restart 2 in 1 s")),
        "{events:#?}"
    );
    let gaps: Vec<i64> = deaths.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, back_off) in gaps.iter().zip([0, 1_000, 2_000]) {
        assert!(*gap >= back_off && *gap < back_off + 1_500, "the deaths came {gaps:?} ms apart");
    }

    let app = server.api("/api/apps/loop");
    let looping = &app["crash_looping"][0];
    assert!(looping["restarts"].as_u64().unwrap() >= 3, "{app}");
    assert_eq!(looping["last_exit"], "exited with code 1", "{app}");
    let shown = server.cli(&["app", "get", "--name", "loop"]).ok().stdout;
    assert!(shown.contains("crash_looping: a replica of r1 died"), "{shown}");
    let metrics = server.get("/metrics").1;
    assert!(metrics.contains("hivemind_replicas_crash_looping{app=\"loop\"} 1"), "{metrics}");
    assert!(
        metrics.contains("hivemind_replica_restarts_total{app=\"loop\",version=\"r1\",reason=\"exited\"}"),
        "{metrics}"
    );

    // A good release replaces it.
    let d = server.deploy("loop", &demo_command("v2", ""), &["--strategy", "rolling-update"]).ok().json();
    assert_eq!(d["status"], "completed", "{d}");
    wait_until("the crash loop to end", Duration::from_secs(5), || {
        server.api("/api/apps/loop")["crash_looping"].as_array().unwrap().is_empty()
    });
    assert_eq!(versions_served(server.app_port("loop"), 4), vec!["v2"; 4]);
}

/// Scaling up and down under load through the router: no request fails, and each replica
/// scaled away is drained before it stops.
#[test]
fn app_scale_up_and_down_under_load_fails_no_request() {
    let server = Server::start("process");
    server.deploy("web", &demo_command("v1", ""), &["--replicas", "2"]).ok();
    let load = Load::start(server.app_port("web"), 2);
    let healthy = |server: &Server| -> usize {
        let app: Value = server.api("/api/apps/web");
        app["replicas"].as_array().unwrap().iter().filter(|r| r["healthy"] == true).count()
    };
    let up = server.cli_json(&["app", "scale", "--name", "web", "--replicas", "5"]);
    assert_eq!(up["release"]["replicas"], 5, "{up}");
    wait_until("5 healthy replicas", Duration::from_secs(20), || healthy(&server) == 5);
    server.cli(&["app", "scale", "--name", "web", "--replicas", "2"]).ok();
    wait_until("2 replicas", Duration::from_secs(30), || server.replica_versions("web").len() == 2);
    load.stop().assert_no_failures("scaling");
    let events = app_events(&server, "web");
    assert!(events.iter().any(|(_, e)| e == "scaled r1 from 2 to 5 replicas by request"), "{events:#?}");
    let drained = events.iter().filter(|(_, e)| e.ends_with("drained and stopped")).count();
    assert_eq!(drained, 3, "{events:#?}");
    let refused = server.cli(&["app", "scale", "--name", "web", "--replicas", "0"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("replicas must be from 1 to app `web`'s replica quota"), "{}", refused.stderr);
}
