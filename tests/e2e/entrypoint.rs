//! One front door: `serve --http-addr` is one address for every app, each found by the
//! host names it was deployed with (`--host`), then by the longest path prefix
//! (`--path-prefix`). Real HTTP with real Host headers through the real router process.

use crate::common::{Load, Server, TestCa, demo_command, free_port, http_get_as, router_pid, wait_until};
use std::time::Duration;

/// Deploys the demo, answering `body`, as `app` with `flags`.
pub fn deploy(server: &Server, app: &str, body: &str, flags: &[&str]) -> crate::common::CliRun {
    let mut args = vec!["--replicas", "2", "--strategy", "rolling-update"];
    args.extend_from_slice(flags);
    server.deploy(app, &demo_command(body, ""), &args)
}

/// The requests the router counted for `app`, whichever door they came through.
fn requests(server: &Server, app: &str) -> u64 {
    let (_, metrics) = server.get("/metrics");
    let prefix = format!("hivemind_router_requests_total{{app=\"{app}\"");
    metrics.lines().filter(|l| l.starts_with(&prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum()
}

#[test]
fn apps_share_the_http_entrypoint_by_host_and_path_prefix() {
    let http = free_port();
    let addr = format!("127.0.0.1:{http}");
    let server = Server::start_with_flags("process", &["--http-addr", &addr]);
    deploy(&server, "shop", "shop", &["--host", "shop.example.test", "--host", "WWW.shop.example.test"]).ok();
    deploy(&server, "api", "api", &["--host", "shop.example.test", "--path-prefix", "/api/"]).ok();
    let get = |host: &str, path: &str| {
        let (status, body) = http_get_as(http, host, path);
        (status, body.trim().to_string())
    };
    // The demo answers only `/` (with its name): which app took a request for another
    // path shows in the router's counts, per app.
    let answered_by = |host: &str, path: &str| {
        let before = (requests(&server, "shop"), requests(&server, "api"));
        let (status, _) = http_get_as(http, host, path);
        let after = (requests(&server, "shop"), requests(&server, "api"));
        match (after.0 - before.0, after.1 - before.1) {
            (1, 0) => "shop".to_string(),
            (0, 1) => "api".to_string(),
            counted => format!("status {status}, counted {counted:?}"),
        }
    };

    assert_eq!(get("shop.example.test", "/"), (200, "shop".to_string()));
    assert_eq!(get("WWW.Shop.example.test:80", "/"), (200, "shop".to_string()), "any case, with a port");
    assert_eq!(answered_by("shop.example.test", "/cart"), "shop");
    assert_eq!(answered_by("shop.example.test", "/api"), "api");
    assert_eq!(answered_by("shop.example.test", "/api/orders?page=2"), "api");
    assert_eq!(answered_by("shop.example.test", "/apiary"), "shop", "a prefix is a whole path segment");
    assert_eq!(answered_by("www.shop.example.test", "/api"), "shop", "api is bound to one host only");
    let (status, body) = get("unknown.example.test", "/");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no app is bound to host unknown.example.test"), "{body}");
    // The per-app port keeps working beside the entrypoint.
    let shop_port = server.app_port("shop");
    assert_eq!(http_get_as(shop_port, "anything", "/").1.trim(), "shop");

    // `app get` shows the binding.
    let app = server.cli_json(&["app", "get", "--name", "api"]);
    assert_eq!(app["hosts"], serde_json::json!(["shop.example.test"]), "{app}");
    assert_eq!(app["path_prefix"], "/api", "{app}");

    // A host and prefix another app holds is refused, naming it; nothing changes.
    let taken = deploy(&server, "copy", "copy", &["--host", "shop.example.test"]);
    assert_ne!(taken.code, 0);
    assert!(
        taken.stderr.contains("host shop.example.test (path prefix /) is already bound to app shop"),
        "{}",
        taken.stderr
    );
    assert!(server.cli(&["app", "get", "--name", "copy"]).code != 0, "the refused app was created");
    let bad = deploy(&server, "copy", "copy", &["--host", "shop example"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("`shop example` is not a host name"), "{}", bad.stderr);
    assert_eq!(get("shop.example.test", "/"), (200, "shop".to_string()));

    // Removing an app frees its host names.
    server.cli(&["app", "remove", "--name", "api", "--force"]).ok();
    assert_eq!(answered_by("shop.example.test", "/api"), "shop");
}

/// Behind the entrypoint a rolling update fails no request, a router upgrade hands the
/// entrypoint's sockets over too, and `serve` started again keeps the bindings.
#[test]
fn the_entrypoint_survives_updates_router_upgrades_and_restarts() {
    let http = free_port();
    let addr = format!("127.0.0.1:{http}");
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(data.path(), "process", &["--http-addr", &addr]);
    deploy(&server, "web", "v1", &["--host", "web.example.test"]).ok();

    let load = Load::through_host(http, "web.example.test", 2);
    std::thread::sleep(Duration::from_millis(300));
    deploy(&server, "web", "v2", &[]).ok();
    let old = router_pid(data.path()).unwrap();
    server.cli(&["router", "upgrade", "--data-dir", data.path().to_str().unwrap()]).ok();
    assert_ne!(router_pid(data.path()), Some(old));
    std::thread::sleep(Duration::from_millis(300));
    let report = load.stop();
    eprintln!("entrypoint: {} requests, {} failed", report.ok + report.failures.len() as u64, report.failures.len());
    report.assert_no_failures("a rolling update and a router upgrade behind the entrypoint");
    assert_eq!(http_get_as(http, "web.example.test", "/").1.trim(), "v2");

    server.stop();
    server = Server::start_with(data.path(), "process", &["--http-addr", &addr]);
    wait_until("the entrypoint to answer after a restart", Duration::from_secs(10), || {
        http_get_as(http, "web.example.test", "/").1.trim() == "v2"
    });
    let app = server.cli_json(&["app", "get", "--name", "web"]);
    assert_eq!(app["hosts"], serde_json::json!(["web.example.test"]), "{app}");

    // Started without --http-addr, serve closes the entrypoint: desired state, not history.
    server.stop();
    server = Server::start_with(data.path(), "process", &[]);
    wait_until("the entrypoint to close", Duration::from_secs(10), || {
        http_get_as(http, "web.example.test", "/").0 == 0
    });
    drop(server);
}

/// GETs https://`host`:`port``path` with curl, trusting the CA in `ca_pem`: (exit code, HTTP version, body).
pub fn curl_https(ca_pem: &str, port: u16, host: &str, path: &str, http: &str) -> (i32, String, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", http, "--cacert", ca_pem, "--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(["-w", "\n%{http_version}", &format!("https://{host}:{port}{path}")])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, version) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        out.status.code().unwrap_or(-1),
        version.to_string(),
        format!("{}{}", body.trim(), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn the_https_entrypoint_serves_each_host_its_certificate_over_h2_and_http1() {
    if !crate::common::tools_available("the HTTPS entrypoint test", &["curl", "openssl"]) {
        return;
    }
    let (http, https) = (free_port(), free_port());
    let data = tempfile::tempdir().unwrap();
    let flags = ["--http-addr", &format!("127.0.0.1:{http}"), "--https-addr", &format!("127.0.0.1:{https}")];
    let server = Server::start_with(data.path(), "process", &flags);
    deploy(&server, "shop", "shop", &["--host", "shop.example.test"]).ok();
    deploy(&server, "api", "api", &["--host", "api.example.test"]).ok();
    let ca = TestCa::new();
    for host in ["shop.example.test", "api.example.test"] {
        let (cert, key) = ca.issue(host);
        server.cli(&["cert", "add", "--host", host, "--cert", &cert, "--key", &key]).ok();
    }

    let h2 = |host: &str| curl_https(&ca.path("ca.pem"), https, host, "/", "--http2");
    let each_host_its_app = || {
        assert_eq!(h2("shop.example.test"), (0, "2".into(), "shop".into()));
        assert_eq!(h2("api.example.test"), (0, "2".into(), "api".into()));
    };
    each_host_its_app();
    assert_eq!(
        curl_https(&ca.path("ca.pem"), https, "api.example.test", "/", "--http1.1"),
        (0, "1.1".into(), "api".into())
    );
    // A host with no certificate gets none (the handshake fails), never another host's.
    let (code, _, out) = curl_https(&ca.path("ca.pem"), https, "other.example.test", "/", "--http2");
    assert_ne!(code, 0, "{out}");
    let listed = server.cli_json(&["cert", "list"]);
    let hosts: Vec<&str> = listed.as_array().unwrap().iter().map(|c| c["host"].as_str().unwrap()).collect();
    assert_eq!(hosts, ["api.example.test", "shop.example.test"], "{listed}");
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777
    };
    assert_eq!(mode(&data.path().join("certs/shop.example.test/key.pem")), 0o600);
    assert_eq!(mode(&data.path().join("certs")), 0o700);

    // Bad certificates are refused, naming the host, and what served goes on serving.
    let (shop_cert, shop_key) = (ca.path("shop.example.test.pem"), ca.path("shop.example.test.key"));
    let wrong_host =
        server.cli(&["cert", "add", "--host", "api.example.test", "--cert", &shop_cert, "--key", &shop_key]);
    assert_ne!(wrong_host.code, 0);
    assert!(
        wrong_host.stderr.contains("the certificate is not for api.example.test: it is for shop.example.test"),
        "{}",
        wrong_host.stderr
    );
    let api_key = ca.path("api.example.test.key");
    let wrong_key =
        server.cli(&["cert", "add", "--host", "shop.example.test", "--cert", &shop_cert, "--key", &api_key]);
    assert_ne!(wrong_key.code, 0);
    assert!(wrong_key.stderr.contains("the key does not match the certificate"), "{}", wrong_key.stderr);
    let (old_cert, old_key) = ca.issue_expired("shop.example.test");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let expired = server.cli(&["cert", "add", "--host", "shop.example.test", "--cert", &old_cert, "--key", &old_key]);
    assert_ne!(expired.code, 0);
    assert!(expired.stderr.contains("the certificate for shop.example.test expired at"), "{}", expired.stderr);
    each_host_its_app();

    // ACME needs a directory on the server: refused, saying so, and nothing changes.
    let no_acme = deploy(&server, "api", "api", &["--tls", "acme"]);
    assert_ne!(no_acme.code, 0);
    assert!(no_acme.stderr.contains("--tls acme needs a server started with --acme-directory"), "{}", no_acme.stderr);

    // A new router process loads the certificates itself.
    server.cli(&["router", "upgrade", "--data-dir", data.path().to_str().unwrap()]).ok();
    assert_eq!(
        curl_https(&ca.path("ca.pem"), https, "shop.example.test", "/", "--http2"),
        (0, "2".into(), "shop".into())
    );
    // A removed certificate is no longer served.
    server.cli(&["cert", "remove", "--host", "api.example.test"]).ok();
    assert_ne!(curl_https(&ca.path("ca.pem"), https, "api.example.test", "/", "--http2").0, 0);
}

/// The h2c test backend (`host/examples/h2c_backend.rs`), built once.
fn h2c_backend() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // Beside this test binary's directory: target/debug/examples.
            let exe = std::env::current_exe().unwrap();
            let path = exe.parent().unwrap().parent().unwrap().join("examples/h2c_backend");
            if !path.exists() {
                let status = std::process::Command::new(env!("CARGO"))
                    .args(["build", "-q", "-p", "hivemind", "--example", "h2c_backend"])
                    .status()
                    .unwrap();
                assert!(status.success(), "building the h2c backend");
            }
            path
        })
        .clone()
}

#[test]
fn an_h2c_backend_gets_http2_and_its_trailers_reach_the_client() {
    if !crate::common::tools_available("the h2c test", &["curl", "openssl"]) {
        return;
    }
    let https = free_port();
    let server = Server::start_with_flags("process", &["--https-addr", &format!("127.0.0.1:{https}")]);
    let image = format!("{} grpc", h2c_backend().display());
    server
        .deploy("grpc", &image, &["--backend-protocol", "h2c", "--host", "grpc.example.test", "--replicas", "2"])
        .ok();
    let ca = TestCa::new();
    let (cert, key) = ca.issue("grpc.example.test");
    server.cli(&["cert", "add", "--host", "grpc.example.test", "--cert", &cert, "--key", &key]).ok();

    // Through the HTTPS entrypoint in HTTP/2, as a gRPC client comes: the backend is asked
    // in HTTP/2 and its trailer reaches the client.
    let out = std::process::Command::new("curl")
        .args(["-sS", "-i", "--http2", "--cacert", &ca.path("ca.pem")])
        .args(["--resolve", &format!("grpc.example.test:{https}:127.0.0.1"), "-H", "te: trailers"])
        .arg(format!("https://grpc.example.test:{https}/hello.Greeter/SayHello"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("http/2 200"), "{text}");
    assert!(text.contains("x-protocol: http/2.0"), "the backend was asked in HTTP/2: {text}");
    assert!(text.contains("grpc\n"), "{text}");
    assert!(text.contains("grpc-status: 0"), "the trailer came through: {text}");

    // On the app's own port, an HTTP/1.1 client: the backend is still asked in HTTP/2.
    let port = server.app_port("grpc");
    let (status, body) = http_get_as(port, "grpc.example.test", "/");
    assert_eq!((status, body.trim()), (200, "grpc"));
    let (_, metrics) = server.get("/metrics");
    assert!(metrics.contains("hivemind_router_requests_total{app=\"grpc\""), "{metrics}");
}
