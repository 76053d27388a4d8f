//! Deployment hooks, as a user runs them: `--pre-hook`, `--verify-hook`, `--post-hook` and
//! `--rollback-hook` with commands, webhooks and hook components, on real servers with
//! real replicas. A tiny HTTP server in the test stands in for the team's webhook.

use crate::common::{Server, demo_binary, demo_command, demo_images, docker_available, test_plugin, versions_served};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Deploys `image` on 2 replicas.
fn deploy(server: &Server, app: &str, image: &str, extra: &[&str]) -> crate::common::CliRun {
    let mut args = vec!["--replicas", "2"];
    args.extend_from_slice(extra);
    server.deploy(app, image, &args)
}

/// The newest deployment of `app`.
fn latest(server: &Server, app: &str) -> Value {
    server.cli_json(&["deployment", "list", "--app", app])[0].clone()
}

fn events(server: &Server, id: &str) -> String {
    let d = server.cli_json(&["deployment", "diagnose", "--id", id]);
    d["timeline"].as_array().unwrap().iter().map(|e| format!("{}\n", e["message"].as_str().unwrap())).collect()
}

fn replica_ids(server: &Server, app: &str) -> Vec<String> {
    let app = server.api(&format!("/api/apps/{app}"));
    let mut ids: Vec<String> =
        app["replicas"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

/// A webhook receiver on loopback: answers every POST with `status` and `body`, after
/// running `check` on the request body; keeps what it received.
struct Receiver {
    port: u16,
    received: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start(status: u16, body: &'static str, check: impl Fn(&str) + Send + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut request = vec![0; length];
                let _ = reader.read_exact(&mut request);
                let request = String::from_utf8_lossy(&request).to_string();
                check(&request);
                kept.lock().unwrap().push(request);
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Receiver { port, received }
    }

    fn url(&self) -> String {
        format!("webhook:http://127.0.0.1:{}/check", self.port)
    }

    fn requests(&self) -> Vec<Value> {
        self.received.lock().unwrap().iter().map(|r| serde_json::from_str(r).unwrap()).collect()
    }
}

/// A server whose hooks may reach every port of 127.0.0.1, with the hostile test hook
/// installed and granted jobs and HTTP (so that the sandbox, not the grants, stops it).
fn hook_server() -> Server {
    let server = Server::start_with_flags("process", &["--hook-allowed-hosts", "127.0.0.1:*"]);
    let hook = test_plugin("hostile_hook");
    server.cli(&["plugin", "install", hook.to_str().unwrap(), "--allow", "jobs", "--allow", "http"]).ok();
    server
}

#[test]
fn a_failing_pre_hook_of_each_kind_stops_the_deployment_before_anything_starts() {
    let server = hook_server();
    deploy(&server, "web", &demo_command("v1", ""), &[]).ok();
    let port = server.app_port("web");
    let before = replica_ids(&server, "web");
    let webhook = Receiver::start(503, "checks failed: the database is down", |_| {});

    let cases = [
        ("echo 'tests failed: 3 of 12' >&2; exit 3".to_string(), "exited 3: tests failed: 3 of 12"),
        (webhook.url(), "answered 503: checks failed: the database is down"),
        ("plugin:test-hostile-hook fail".to_string(), "the hook says no to `fail`"),
    ];
    for (hook, output) in &cases {
        let run = deploy(&server, "web", &demo_command("v2", ""), &["--pre-hook", hook]);
        assert_ne!(run.code, 0, "{hook}: {run:?}");
        let d = latest(&server, "web");
        assert_eq!(d["status"], "failed", "{hook}: {d}");
        let error = d["error"].as_str().unwrap();
        assert!(error.starts_with(&format!("pre hook `{hook}` failed")) && error.contains(output), "{hook}: {error}");
        assert!(d["message"].as_str().unwrap().contains("stopped before it changed anything"), "{d}");
        let log = events(&server, d["id"].as_str().unwrap());
        assert!(log.contains(output), "the event log shows the hook's output: {log}");
        assert!(!log.contains("scaled"), "no replica started: {log}");
        // Nothing was touched: the same v1 replicas serve.
        assert_eq!(replica_ids(&server, "web"), before, "{hook}");
        assert_eq!(versions_served(port, 4), vec!["v1"; 4], "{hook}");
    }
    let sent = webhook.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["stage"], "pre");
    assert_eq!(sent[0]["app"], "web");
    assert_eq!(sent[0]["previous"]["version"], "r1");
}

#[test]
fn hooks_that_pass_let_the_deployment_proceed_and_see_each_stage() {
    let server = hook_server();
    deploy(&server, "web", &demo_command("v1", ""), &[]).ok();
    let port = server.app_port("web");
    let webhook = Receiver::start(200, "ok", |_| {});
    let self_test = format!("{} self-test", demo_binary().display());
    let counter = tempfile::tempdir().unwrap();
    let flaky = format!(
        "n=$(cat {0}/n 2>/dev/null || echo 0); echo $((n+1)) > {0}/n; echo try $((n+1)); [ $n -ge 2 ]",
        counter.path().display()
    );
    let d = deploy(
        &server,
        "web",
        &demo_command("v2", ""),
        &["--pre-hook", &self_test, "--pre-hook", &flaky, "--hook-retries", "2", "--post-hook", &webhook.url()],
    )
    .ok()
    .json();
    assert_eq!(d["status"], "completed", "{d}");
    assert_eq!(versions_served(port, 4), vec!["v2"; 4]);
    let log = events(&server, d["id"].as_str().unwrap());
    assert!(log.contains(&format!("pre hook `{self_test}` passed")) && log.contains("self-test ok"), "{log}");
    assert!(log.contains("failed after") && log.contains("(try 1 of 3)"), "{log}");
    assert!(log.contains(&format!("pre hook `{flaky}` passed")) && log.contains("(try 3 of 3)"), "{log}");
    // The post hook ran once, after v2 served, and was told so.
    let sent = webhook.requests();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["stage"], "post");
    assert_eq!(sent[0]["target"]["version"], "r2");
    // Stored with the deployment, as given.
    let spec = &server.cli_json(&["deployment", "get", "--id", d["id"].as_str().unwrap()])["spec"]["hooks"];
    assert_eq!(spec["pre"][0], self_test.as_str());
    assert_eq!(spec["retries"], 2);
}

#[test]
fn verify_hooks_run_on_the_preview_route_before_traffic_moves() {
    let server = hook_server();
    deploy(&server, "web", &demo_command("v1", ""), &[]).ok();
    let port = server.app_port("web");
    // While the verify hook runs, green answers on its preview route (to a request with
    // the preview key the hook is given) and v1 still serves every ordinary request, and
    // every request that names green without the key.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    let webhook = Receiver::start(200, "verified", move |request| {
        let request: Value = serde_json::from_str(request).unwrap();
        let key = request["params"]["preview-key"].as_str().unwrap_or_default().to_string();
        let keyless = (0..4).map(|_| preview_version(port, None)).collect::<Vec<_>>();
        kept.lock().unwrap().push((preview_version(port, Some(&key)), versions_served(port, 4), keyless));
    });
    let d = deploy(
        &server,
        "web",
        &demo_command("v2", ""),
        &[
            "--strategy",
            "blue-green",
            "--verification-timeout",
            "0",
            "--scale-down-delay",
            "0",
            "--verify-hook",
            &webhook.url(),
        ],
    )
    .ok()
    .json();
    assert_eq!(d["status"], "completed", "{d}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "the verify hook ran once");
    assert_eq!(seen[0].0, "v2", "green answers on its preview route during verification");
    assert_eq!(seen[0].1, vec!["v1"; 4], "no traffic moved before verification passed");
    assert_eq!(seen[0].2, vec!["v1"; 4], "without the preview key, the variant header reaches no 0% version");
    assert_eq!(webhook.requests()[0]["stage"], "verify");
    assert_eq!(versions_served(port, 4), vec!["v2"; 4]);

    // A verify hook that fails: traffic never moves, and the deployment rolls back.
    let failing = Receiver::start(500, "smoke test failed", |_| {});
    let run =
        deploy(&server, "web", &demo_command("v3", ""), &["--strategy", "canary", "--verify-hook", &failing.url()]);
    assert_ne!(run.code, 0);
    let d = latest(&server, "web");
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["error"].as_str().unwrap().contains("verify hook"), "{d}");
    assert_eq!(versions_served(port, 4), vec!["v2"; 4]);
}

/// The version a request for r2 by name (the variant header) is sent to, with the preview
/// key or without.
fn preview_version(port: u16, key: Option<&str>) -> String {
    let key = key.map(|k| format!("x-hivemind-preview: {k}\r\n")).unwrap_or_default();
    crate::common::raw_get(port, "x", &format!("x-hivemind-variant: r2\r\n{key}"))
}

#[test]
fn a_failed_post_hook_is_recorded_or_rolls_back_as_asked() {
    let server = hook_server();
    deploy(&server, "web", &demo_command("v1", ""), &[]).ok();
    let port = server.app_port("web");
    let run = deploy(&server, "web", &demo_command("v2", ""), &["--post-hook", "echo chat is down; exit 1"]);
    let d = run.ok().json();
    assert_eq!(d["status"], "completed", "recorded only: {d}");
    let log = events(&server, d["id"].as_str().unwrap());
    assert!(log.contains("post hook `echo chat is down; exit 1` failed") && log.contains("r2 keeps serving"), "{log}");
    assert_eq!(versions_served(port, 4), vec!["v2"; 4]);

    let run =
        deploy(&server, "web", &demo_command("v3", ""), &["--post-hook", "exit 1", "--post-hook-failure", "rollback"]);
    assert_ne!(run.code, 0);
    let d = latest(&server, "web");
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["error"].as_str().unwrap().contains("--post-hook-failure rollback"), "{d}");
    assert_eq!(versions_served(port, 4), vec!["v2"; 4]);
}

#[test]
fn a_rollback_hook_runs_exactly_once_per_rollback_even_across_a_crash() {
    let data = tempfile::tempdir().unwrap();
    let marks = tempfile::tempdir().unwrap();
    let file = marks.path().join("rollbacks");
    let hook = format!("echo $HIVEMIND_DEPLOYMENT >> {}", file.display());
    let count = |id: &str| std::fs::read_to_string(&file).unwrap_or_default().lines().filter(|l| *l == id).count();
    let mut server = Server::start_in(data.path(), "process");
    deploy(&server, "web", &demo_command("v1", ""), &[]).ok();
    let port = server.app_port("web");

    // An automatic rollback: v2 never gets healthy.
    let sick = ["--rollback-hook", &hook, "--env", "DEMO_FAIL_HEALTH=1", "--health-check-timeout", "2"];
    assert_ne!(deploy(&server, "web", &demo_command("v2", ""), &sick).code, 0);
    let failed = latest(&server, "web");
    assert_eq!(failed["status"], "failed");
    assert_eq!(count(failed["id"].as_str().unwrap()), 1);

    // A rollback by hand of a completed deployment.
    let good = deploy(&server, "web", &demo_command("v3", ""), &["--rollback-hook", &hook]).ok().json();
    let back = server.cli_json(&["deployment", "rollback", "--id", good["id"].as_str().unwrap()]);
    let back = server.wait_for(back["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(back["status"], "completed", "{back}");
    assert_eq!(count(back["id"].as_str().unwrap()), 1);
    assert_eq!(versions_served(port, 4), vec!["v1"; 4]);

    // A crash mid-deployment: the restarted server rolls back, and the hook runs once.
    let slow_sick =
        ["--rollback-hook", &hook, "--env", "DEMO_FAIL_HEALTH=1", "--health-check-timeout", "4", "--detach"];
    deploy(&server, "web", &demo_command("v4", ""), &slow_sick).ok();
    let id = latest(&server, "web")["id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    let mut server = Server::start_in(data.path(), "process");
    let d = server.wait_for(&id, Duration::from_secs(60));
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(count(&id), 1, "once after the restart");
    assert_eq!(versions_served(port, 4), vec!["v1"; 4]);
    // And never again: another restart finds the stage done.
    server.stop();
    let server = Server::start_in(data.path(), "process");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count(&id), 1);
    drop(server);
}

#[test]
fn a_webhook_to_a_host_not_on_the_allowlist_is_refused() {
    // No --hook-allowed-hosts: hooks may reach no host at all.
    let server = Server::start("process");
    deploy(&server, "web", &demo_command("v1", ""), &[]).ok();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("webhook:http://127.0.0.1:{port}/check");
    let run = deploy(&server, "web", &demo_command("v2", ""), &["--pre-hook", &url]);
    assert_eq!(run.code, 2, "{run:?}");
    // The host and the port: a bare 127.0.0.1 would allow port 80 only.
    assert!(
        run.stderr.contains("not on the server's hook allowlist")
            && run.stderr.contains(&format!("--hook-allowed-hosts 127.0.0.1:{port}")),
        "{}",
        run.stderr
    );
    assert_eq!(server.cli_json(&["deployment", "list"]).as_array().unwrap().len(), 1, "nothing was recorded");

    // A hook component granted HTTP that asks the host for the same request is refused at
    // run time, by the server's allowlist.
    server.cli(&["plugin", "install", test_plugin("hostile_hook").to_str().unwrap(), "--allow", "http"]).ok();
    let post = format!("plugin:test-hostile-hook post http://127.0.0.1:{}/", listener.local_addr().unwrap().port());
    assert_ne!(deploy(&server, "web", &demo_command("v2", ""), &["--pre-hook", &post]).code, 0);
    let d = latest(&server, "web");
    assert!(d["error"].as_str().unwrap().contains("not on the server's hook allowlist"), "{d}");
    assert!(listener.accept().is_err(), "nothing reached the listener");
}

#[test]
fn a_hook_that_hangs_is_stopped_at_its_timeout() {
    let server = hook_server();
    deploy(&server, "web", &demo_command("v1", ""), &[]).ok();
    // The marker is in sleep's own argument (600.NNN seconds), so a sleep that outlived
    // its shell would be found below.
    let marker = format!("600.{}", fastrand::u32(1_000_000..));
    for (hook, says) in [
        (format!("sleep {marker}"), "did not finish within the hook's 2 s timeout and was stopped"),
        ("plugin:test-hostile-hook sleep".to_string(), "did not finish within its 2 s timeout"),
    ] {
        let started = Instant::now();
        let run = deploy(&server, "web", &demo_command("v2", ""), &["--pre-hook", &hook, "--hook-timeout", "2"]);
        assert_ne!(run.code, 0);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "stopped at its timeout, not later: {:?}",
            started.elapsed()
        );
        let d = latest(&server, "web");
        assert_eq!(d["status"], "failed");
        assert!(d["error"].as_str().unwrap().contains(says), "{hook}: {d}");
    }
    // The job's processes are gone too.
    let leftover = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .any(|p| std::fs::read(p.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker)));
    assert!(!leftover, "the hanging job was killed");
}

#[test]
fn hostile_hook_components_are_contained() {
    let server = hook_server();
    deploy(&server, "web", &demo_command("v1", ""), &[]).ok();
    let port = server.app_port("web");
    let bait = TcpListener::bind("127.0.0.1:0").unwrap();
    bait.set_nonblocking(true).unwrap();
    let network = format!("plugin:test-hostile-hook network 127.0.0.1:{}", bait.local_addr().unwrap().port());
    for (hook, says) in [
        ("plugin:test-hostile-hook loop".to_string(), "ran out of fuel"),
        ("plugin:test-hostile-hook memory".to_string(), "more memory than its limit"),
        (network, "could not connect"),
    ] {
        assert_ne!(deploy(&server, "web", &demo_command("v2", ""), &["--pre-hook", &hook]).code, 0);
        let d = latest(&server, "web");
        assert!(d["error"].as_str().unwrap().contains(says), "{hook}: {d}");
        assert_eq!(versions_served(port, 2), vec!["v1"; 2], "{hook}");
    }
    assert!(bait.accept().is_err(), "the hook reached no socket");
    assert_eq!(crate::common::http_get(&format!("{}/healthz", server.url)).0, 200, "the server is fine");
}

#[test]
fn a_pre_hook_runs_the_demo_self_test_in_a_one_off_container() {
    if !docker_available("a_pre_hook_runs_the_demo_self_test_in_a_one_off_container") {
        return;
    }
    demo_images();
    a_pre_hook_runs_the_demo_self_test_in_a_one_off_job("docker");
}

/// A pre hook's command runs once in a fresh replica of the new image (a container, or a
/// Swarm job): a failing one stops the deployment, a passing one lets it go on, and no
/// one-off replica is left behind.
pub fn a_pre_hook_runs_the_demo_self_test_in_a_one_off_job(runtime: &str) {
    let server = Server::start(runtime);
    let app = format!("hooked{}", fastrand::u32(..1000));
    deploy(&server, &app, "hivemind-demo:v1", &[]).ok();
    let port = server.app_port(&app);

    // A failing command: the image's entrypoint refuses the flag, and nothing starts.
    let run = deploy(&server, &app, "hivemind-demo:v2", &["--pre-hook", "self-test --error-rate 7"]);
    assert_ne!(run.code, 0);
    let d = latest(&server, &app);
    assert!(d["error"].as_str().unwrap().contains("must be a number between 0 and 1"), "{d}");
    assert_eq!(versions_served(port, 4), vec!["v1"; 4]);

    let d = deploy(&server, &app, "hivemind-demo:v2", &["--pre-hook", "self-test"]).ok().json();
    assert_eq!(d["status"], "completed", "{d}");
    let log = events(&server, d["id"].as_str().unwrap());
    assert!(log.contains("pre hook `self-test` passed") && log.contains("self-test ok: served v2"), "{log}");
    assert_eq!(versions_served(port, 4), vec!["v2"; 4]);
    // The one-off jobs are gone; only the app's replicas remain.
    let listing: &[&str] = match runtime {
        "swarm" => &["service", "ls", "--format", "{{.Name}}"],
        _ => &["ps", "-a", "--format", "{{.Names}}"],
    };
    let out = std::process::Command::new("docker")
        .args(listing)
        .args(["--filter", &format!("label=hivemind.app={app}")])
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!names.contains("-job-"), "{names}");
    assert_eq!(names.lines().count(), 2, "{names}");
}
