//! The sandbox holds: plugins that loop forever, eat memory, panic, or reach for another
//! app each fail their own step with a clear error, while the server keeps serving and a
//! deployment running at the same time completes.

use crate::common::{Server, demo_command, test_plugin, versions_served};
use std::time::Duration;

#[test]
fn hostile_plugins_fail_their_own_step_and_nothing_else() {
    let server = Server::start("process");
    let demo = demo_command("v1", "");
    server
        .cli(&[
            "app",
            "deploy",
            "--name",
            "steady",
            "--image",
            &demo,
            "--replicas",
            "2",
            "--health-check-path",
            "/health",
        ])
        .ok();
    let steady_port = server.app_port("steady");
    let victim = server.api("/api/apps/steady")["replicas"][0]["id"].as_str().unwrap().to_string();

    for plugin in ["spin", "hog", "panicker", "trespasser"] {
        let path = test_plugin(plugin);
        let installed = server.cli_json(&["plugin", "install", path.to_str().unwrap()]);
        assert_eq!(installed["name"], format!("test-{plugin}"));
    }

    // A well-behaved deployment runs beside the hostile ones.
    let detach = |app: &str, strategy: &str, extra: &[&str]| -> String {
        let mut args = vec![
            "app",
            "deploy",
            "--detach",
            "--output",
            "json",
            "--name",
            app,
            "--image",
            &demo,
            "--strategy",
            strategy,
        ];
        args.extend_from_slice(extra);
        server.cli(&args).ok().json()["id"].as_str().unwrap().to_string()
    };
    let bystander = detach("bystander", "simple", &["--replicas", "2", "--health-check-path", "/health"]);
    let param = format!("victim={victim}");
    let hostile = [
        (detach("evil-spin", "test-spin", &[]), "ran out of fuel"),
        (detach("evil-hog", "test-hog", &[]), "more memory than its limit"),
        (detach("evil-panic", "test-panicker", &[]), "panicked at"),
        (detach("evil-reach", "test-trespasser", &["--param", &param]), "containers.stop: replica"),
    ];

    for (id, expected) in &hostile {
        let d = server.wait_for(id, Duration::from_secs(60));
        assert_eq!(d["status"], "failed", "{d}");
        let error = d["error"].as_str().unwrap();
        eprintln!("{id}: {error}");
        assert!(error.contains(expected), "{id}: expected `{expected}` in: {error}");
        if expected.starts_with("containers.stop") {
            assert!(error.contains("belongs to app `steady`"), "{error}");
        }
        if expected.starts_with("panicked") {
            assert!(error.contains("the test plugin panics on purpose"), "{error}");
        }
    }
    let done = server.wait_for(&bystander, Duration::from_secs(60));
    assert_eq!(done["status"], "completed", "{done}");

    // The server and the apps are untouched.
    assert_eq!(server.get("/healthz").0, 200);
    assert_eq!(versions_served(server.app_port("bystander"), 4), vec!["v1"; 4]);
    assert_eq!(versions_served(steady_port, 4), vec!["v1"; 4]);
    let steady = server.api("/api/apps/steady");
    assert!(
        steady["replicas"].as_array().unwrap().iter().any(|r| r["id"] == victim.as_str()),
        "the victim was stopped: {steady}"
    );
}
