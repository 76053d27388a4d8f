//! Least privilege (issue 41), checked as a reviewer would: what a replica's and a job's
//! process really hold (`/proc/PID/environ`, its uid), what another user of the host can
//! read of a used data dir, and every place a secret could show up (each API answer, the
//! event stream, `diagnose`, the CLI's output, the server's log).

use crate::common::{Server, demo_command, http_request_with, versions_served};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The variables a process holds, as `NAME=value`.
fn environ(pid: &str) -> Vec<String> {
    let raw =
        std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_else(|e| panic!("reading pid {pid}'s environ: {e}"));
    raw.split(|b| *b == 0).filter(|v| !v.is_empty()).map(|v| String::from_utf8_lossy(v).into_owned()).collect()
}

/// The handle (pid, with the process runtime) of each of an app's replicas.
fn replica_pids(server: &Server, app: &str) -> Vec<String> {
    let app = server.api(&format!("/api/apps/{app}"));
    app["replicas"].as_array().unwrap().iter().map(|r| r["handle"].as_str().unwrap().to_string()).collect()
}

/// What the documented rule lets a replica hold: the server's PATH, HOME, LANG and TZ,
/// the release's own variables, and what Hivemind sets.
const HIVEMIND_SETS: [&str; 7] =
    ["PORT", "HOST", "HIVEMIND_SERVER", "HIVEMIND_APP", "HIVEMIND_VERSION", "HIVEMIND_DEPLOYMENT", "HIVEMIND_REPLICA"];
const INHERITED: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];

fn running_as_root(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(std::env::var_os("HIVEMIND_REQUIRE_DOCKER").is_none(), "{test} needs root, which CI has");
        eprintln!("{test}: skipped, not root");
    }
    root
}

#[test]
fn replicas_and_jobs_hold_their_release_environment_and_none_of_the_servers() {
    // The server runs with HIVEMIND_LOG (and the test's own variables, CARGO_* among them).
    let server = Server::start("process");
    let d = server
        .deploy("web", &demo_command("v1", ""), &["--env", "GREETING=hello", "--pre-hook", "command:env"])
        .ok()
        .json();
    let pids = replica_pids(&server, "web");
    assert!(!pids.is_empty());
    for pid in &pids {
        let vars = environ(pid);
        assert!(vars.contains(&"GREETING=hello".to_string()), "{vars:?}");
        for var in &vars {
            let name = var.split('=').next().unwrap();
            assert!(
                name == "GREETING" || HIVEMIND_SETS.contains(&name) || INHERITED.contains(&name),
                "replica {pid} holds the server's {var}"
            );
        }
    }
    // The job's `env` printed what it got, into the deployment's events.
    let events = server.events(d["id"].as_str().unwrap());
    let job = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .find(|m| m.contains("pre hook `command:env` passed"))
        .unwrap_or_else(|| panic!("no event of the job: {events:?}"))
        .to_string();
    assert!(job.contains("GREETING=hello"), "{job}");
    for leaked in ["HIVEMIND_LOG", "CARGO_", "RUST_"] {
        assert!(!job.contains(leaked), "the job held the server's {leaked}: {job}");
    }
}

#[test]
fn with_run_as_nobody_a_replica_runs_as_nobody_and_a_job_cannot_read_the_token() {
    if !running_as_root("run_as") {
        return;
    }
    let server = Server::start_with_flags("process", &["--run-as", "nobody"]);
    server.deploy("web", &demo_command("v1", ""), &[]).ok();
    for pid in replica_pids(&server, "web") {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap().to_string();
        assert!(uids.split_whitespace().skip(1).all(|u| u == "65534"), "replica {pid} runs as {uids}");
        let groups = status.lines().find(|l| l.starts_with("Groups:")).unwrap().to_string();
        assert!(!groups.split_whitespace().skip(1).any(|g| g == "0"), "replica {pid} kept root's group: {groups}");
    }
    // A pre hook that reads the server's token fails, and nothing changes.
    let hook = format!("command:cat {}", server.data_dir.join("token").display());
    let run = server.deploy("web", &demo_command("v2", ""), &["--pre-hook", &hook]);
    assert_ne!(run.code, 0, "{run:?}");
    let d = run.json();
    let said: String = server.events(d["id"].as_str().unwrap()).iter().map(|e| format!("{}\n", e["message"])).collect();
    assert!(said.contains("Permission denied"), "{said}");
    assert!(!said.contains(&server.token), "the job read the token");
    assert_eq!(versions_served(server.app_port("web"), 4), vec!["v1"; 4]);
}

/// Every file and folder under `dir` that someone other than its owner may read, write
/// or enter (links are not followed).
fn open_to_others(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.permissions().mode() & 0o077 != 0 {
            found.push(format!("{} {:o}", path.display(), meta.permissions().mode() & 0o7777));
        }
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    found
}

#[test]
fn a_used_data_dir_is_its_owners_alone_and_an_old_open_one_is_closed_up() {
    let temp = tempfile::tempdir().unwrap();
    // Another user may reach the data dir's parent, as /var/lib is.
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = temp.path().join("data");
    // An install of an older version: the dir 0755, a log 0644.
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(dir.join("logs")).unwrap();
    std::fs::write(dir.join("logs").join("old.log"), "an old replica's output").unwrap();
    std::fs::set_permissions(dir.join("logs").join("old.log"), std::fs::Permissions::from_mode(0o644)).unwrap();

    let server = Server::start_in(&dir, "process");
    let secret = format!("s3cret-{}", std::process::id());
    server
        .deploy("web", &demo_command("v1", ""), &["--secret", &format!("DB_PASSWORD={secret}"), "--replicas", "2"])
        .ok();
    server.deploy("web", &demo_command("v2", ""), &["--secret", &format!("DB_PASSWORD={secret}")]).ok();
    assert!(server.log().contains("were readable by others; they are now its owner's only"), "{}", server.log());
    assert_eq!(open_to_others(&dir), Vec::<String>::new(), "files of the data dir others may open");

    if running_as_root("data dir as nobody") {
        // As another user: nothing of the data dir can be read, the secret found nowhere.
        let grep = Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "grep", "-r", "-l", &secret])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(grep.stdout.is_empty(), "nobody read the secret in {}", String::from_utf8_lossy(&grep.stdout));
        assert!(String::from_utf8_lossy(&grep.stderr).contains("Permission denied"), "{grep:?}");
    }
}

#[test]
fn a_secret_reaches_its_replicas_and_no_answer_event_page_or_log() {
    let server = Server::start("process");
    let secret = format!("pw-{}-{}", std::process::id(), crate::common::free_port());
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), "file-secret-value\n").unwrap();
    let from_file = format!("API_KEY={}", secret_file.path().display());
    let d = server
        .deploy(
            "web",
            &demo_command("v1", ""),
            &[
                "--secret",
                &format!("DB_PASSWORD={secret}"),
                "--secret-file",
                &from_file,
                "--env",
                "PLAIN=shown",
                "--pre-hook",
                "command:echo the job sees ${#DB_PASSWORD} characters; echo and prints $DB_PASSWORD",
            ],
        )
        .ok()
        .json();
    let id = d["id"].as_str().unwrap().to_string();
    // The replicas and the job have it.
    let vars = environ(&replica_pids(&server, "web")[0]);
    assert!(vars.contains(&format!("DB_PASSWORD={secret}")), "{vars:?}");
    assert!(vars.contains(&"API_KEY=file-secret-value".to_string()), "{vars:?}");
    // Answers show a fingerprint, and plain variables as they are.
    let shown = &d["spec"]["secrets"];
    assert!(shown["DB_PASSWORD"].as_str().unwrap().starts_with("sha256:"), "{d}");
    assert_eq!(d["spec"]["env"]["PLAIN"], "shown");

    // Every place a value could show up.
    let mut seen = String::new();
    for path in [
        "/api/deployments".to_string(),
        format!("/api/deployments/{id}"),
        format!("/api/deployments/{id}/events"),
        format!("/api/deployments/{id}/diagnose?verbose=true"),
        format!("/api/deployments/{id}/metrics"),
        "/api/apps".to_string(),
        "/api/apps/web".to_string(),
        "/api/apps/web/events".to_string(),
        "/metrics".to_string(),
        "/".to_string(),
    ] {
        let (status, body) = server.get(&path);
        assert!(status < 400, "{path}: {status} {body}");
        seen += &body;
    }
    // The event stream of the deployment, for a moment.
    let stream = Command::new("curl")
        .args(["-sN", "--max-time", "2", "-H", &format!("Authorization: Bearer {}", server.token)])
        .arg(format!("{}/api/deployments/{id}/events/stream", server.url))
        .output()
        .unwrap();
    let stream = String::from_utf8_lossy(&stream.stdout).into_owned();
    assert!(stream.contains("event:"), "the stream said nothing: {stream}");
    seen += &stream;
    for args in [
        vec!["deployment", "get", "--id", &id],
        vec!["deployment", "get", "--id", &id, "--output", "yaml"],
        vec!["deployment", "diagnose", "--id", &id, "--verbose"],
        vec!["app", "get", "--name", "web"],
        vec!["deployment", "events", "--id", &id],
    ] {
        let run = server.cli(&args);
        seen += &run.stdout;
        seen += &run.stderr;
    }
    seen += &server.log();
    for value in [secret.as_str(), "file-secret-value"] {
        assert!(!seen.contains(value), "a secret's value was shown");
    }
    assert!(seen.contains("the job sees") && seen.contains("and prints ***"), "the job ran with it, masked");

    // A release brought back by a rollback runs with its secrets, as it did.
    let v2 = server.deploy("web", &demo_command("v2", ""), &[]).ok().json();
    assert!(!environ(&replica_pids(&server, "web")[0]).iter().any(|v| v.starts_with("DB_PASSWORD=")));
    let rollback =
        server.cli(&["deployment", "rollback", "--id", v2["id"].as_str().unwrap(), "--output", "json"]).ok().json();
    let rollback_id = rollback["id"].as_str().unwrap();
    assert_eq!(server.wait_for(rollback_id, Duration::from_secs(60))["status"], "completed");
    assert!(environ(&replica_pids(&server, "web")[0]).contains(&format!("DB_PASSWORD={secret}")));
}

#[test]
fn an_unauthenticated_client_learns_nothing_of_the_host() {
    let server = Server::start("process");
    let (status, body) = http_request_with("GET", &format!("{}/api/apps", server.url), None, None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("HIVEMIND_TOKEN"), "it still says what to do: {body}");
    let data_dir = server.data_dir.display().to_string();
    assert!(!body.contains(&data_dir) && !body.contains("/tmp"), "the answer names a path: {body}");
}

#[test]
fn a_hooks_escape_sequences_are_shown_escaped_not_obeyed() {
    let server = Server::start("process");
    // A title change, a bell and a screen clear, as a hostile or careless hook prints them.
    let hook = r"command:printf '\033]0;owned\007\033[2Jcleared'";
    let run = server.cli(&[
        "app",
        "deploy",
        "--name",
        "web",
        "--image",
        &demo_command("v1", ""),
        "--health-check-path",
        "/health",
        "--pre-hook",
        hook,
    ]);
    let run = run.ok();
    assert!(
        !run.stdout.contains('\x1b') && !run.stdout.contains('\x07'),
        "raw escapes reached the terminal: {:?}",
        run.stdout
    );
    assert!(run.stdout.contains(r"\x1b]0;owned\x07\x1b[2Jcleared"), "{}", run.stdout);
}

#[test]
fn a_hook_plugin_has_only_the_powers_granted_when_it_was_installed() {
    let server = Server::start_with_flags("process", &["--hook-allowed-hosts", "127.0.0.1:*"]);
    let hook = crate::common::test_plugin("hostile_hook");
    let hook = hook.to_str().unwrap();
    // Unsigned, installed with no --allow: it may ask for jobs and http, and has neither.
    let installed = server.cli(&["plugin", "install", hook]).ok();
    assert!(installed.stdout.contains("granted: nothing (it can ask for jobs, http"), "{}", installed.stdout);
    let view = server.cli_json(&["plugin", "inspect", "test-hostile-hook"]);
    assert_eq!(view["grants"], serde_json::json!([]), "{view}");
    assert_eq!(view["asks_for"], serde_json::json!(["jobs", "http"]), "{view}");
    server.deploy("web", &demo_command("v1", ""), &[]).ok();

    let job = "plugin:test-hostile-hook job echo the job ran";
    let run = server.deploy("web", &demo_command("v2", ""), &["--pre-hook", job]);
    assert_ne!(run.code, 0, "{run:?}");
    let d = run.json();
    let error = d["error"].as_str().unwrap_or_default();
    assert!(error.contains("was not granted `jobs`") && error.contains("--allow jobs"), "{d}");
    assert_eq!(versions_served(server.app_port("web"), 4), vec!["v1"; 4]);

    // Granted jobs by installing it again: the job runs. HTTP is still not granted.
    let again = server.cli_json(&["plugin", "install", hook, "--allow", "jobs"]);
    assert_eq!(again["grants"], serde_json::json!(["jobs"]), "{again}");
    let d = server.deploy("web", &demo_command("v2", ""), &["--pre-hook", job]).ok().json();
    let said: String = server.events(d["id"].as_str().unwrap()).iter().map(|e| format!("{}\n", e["message"])).collect();
    assert!(said.contains("the job exited 0: the job ran"), "{said}");
    let post = format!("plugin:test-hostile-hook post http://127.0.0.1:{}/", crate::common::free_port());
    let run = server.deploy("web", &demo_command("v3", ""), &["--pre-hook", &post]);
    assert_ne!(run.code, 0);
    let error = run.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("was not granted `http:127.0.0.1:") && error.contains("--allow http:127.0.0.1:"), "{error}");

    // The grants survive a restart of the server.
    let mut server = server;
    let data = server.data_dir.clone();
    server.stop();
    let restarted = Server::start_with(&data, "process", &["--hook-allowed-hosts", "127.0.0.1:*"]);
    let view = restarted.cli_json(&["plugin", "inspect", "test-hostile-hook"]);
    assert_eq!(view["grants"], serde_json::json!(["jobs"]), "{view}");
    // The built-ins come with theirs.
    assert_eq!(restarted.cli_json(&["plugin", "inspect", "command"])["grants"], serde_json::json!(["jobs"]));
    assert_eq!(restarted.cli_json(&["plugin", "inspect", "webhook"])["grants"], serde_json::json!(["http"]));
    assert_eq!(restarted.cli_json(&["plugin", "inspect", "canary"])["asks_for"], serde_json::json!([]));
}

#[test]
fn with_a_certificate_the_api_speaks_https_only_and_the_cli_follows() {
    let ca = crate::common::TestCa::new();
    let (cert, key) = ca.issue_for("api", "DNS:localhost,IP:127.0.0.1");
    let server = Server::start_with_flags("process", &["--api-tls-cert", &cert, "--api-tls-key", &key]);
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    let trust = ca.path("ca.pem");
    let env = [("HIVEMIND_SERVER_CA_CERT", trust.as_str())];

    // The CLI, trusting the CA, deploys and follows the deployment's stream over HTTPS.
    let image = demo_command("v1", "");
    let deploy = ["app", "deploy", "--name", "web", "--image", &image, "--health-check-path", "/health"];
    let run = server.cli_with(&deploy, "", &env);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("completed"), "{}", run.stdout);
    // Without the CA: refused, saying what to give.
    let run = server.cli(&["app", "list"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--server-ca-cert"), "{}", run.stderr);
    // Plain HTTP to the port gets nothing in clear; HTTPS with the CA gets the API, in HTTP/2.
    let plain = server.url.replacen("https://", "http://", 1);
    let curl = |args: &[&str]| {
        let out = Command::new("curl").args(["-s", "--max-time", "5"]).args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (_, clear) = curl(&[&format!("{plain}/healthz")]);
    assert!(!clear.contains("ok"), "the API answered in clear: {clear:?}");
    let (ok, said) = curl(&["--cacert", &trust, "-w", " %{http_version}", &format!("{}/healthz", server.url)]);
    assert!(ok && said == "ok\n 2", "{said:?}");
    let authorized = format!("Authorization: Bearer {}", server.token);
    let (_, apps) = curl(&["--cacert", &trust, "-H", &authorized, &format!("{}/api/apps", server.url)]);
    assert!(apps.contains("\"web\""), "{apps}");
}

#[test]
fn only_the_preview_key_reaches_a_version_without_traffic_on_the_apps_port_and_the_entrypoint() {
    let http = crate::common::free_port();
    let server = Server::start_with_flags("process", &["--http-addr", &format!("127.0.0.1:{http}")]);
    server.deploy("web", &demo_command("v1", ""), &["--host", "web.test"]).ok();
    // Blue-green waiting for approval: green, r2, has no traffic.
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
    let waiting = server.deploy("web", &demo_command("v2", ""), &gate).ok().json();
    assert_eq!(waiting["status"], "awaiting_approval", "{waiting}");
    let key = server.cli(&["app", "preview-key", "--name", "web"]).ok().stdout.trim().to_string();
    let port = server.app_port("web");
    for (door, port) in [("the app's port", port), ("the HTTP entrypoint", http)] {
        for _ in 0..5 {
            assert_eq!(
                crate::common::raw_get(port, "web.test", "x-hivemind-variant: r2\r\n"),
                "v1",
                "{door}: the header alone"
            );
            let guess = "x-hivemind-variant: r2\r\nx-hivemind-preview: 00000000000000000000000000000000\r\n";
            assert_eq!(crate::common::raw_get(port, "web.test", guess), "v1", "{door}: a guessed key");
            let with_key = format!("x-hivemind-variant: r2\r\nx-hivemind-preview: {key}\r\n");
            assert_eq!(crate::common::raw_get(port, "web.test", &with_key), "v2", "{door}: the key");
            let cookie = format!("x-hivemind-variant: r2\r\nCookie: a=b; hivemind_preview={key}\r\n");
            assert_eq!(crate::common::raw_get(port, "web.test", &cookie), "v2", "{door}: the key as a cookie");
        }
    }
    // An app that does not exist has no key to give.
    assert!(server.cli(&["app", "preview-key", "--name", "nope"]).stderr.contains("no app named `nope`"));
}
