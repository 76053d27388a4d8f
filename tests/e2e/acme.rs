//! Automatic certificates: a real ACME flow against Let's Encrypt's test server, pebble,
//! with pebble-challtestsrv answering every name with 127.0.0.1. The HTTP-01 challenges
//! are answered by the server's HTTP entrypoint; the certificates pebble issues are
//! checked with a real TLS client against pebble's root, and renewed under load.

use crate::common::{Server, TestCa, free_port, http_get_as, tools_available, wait_until};
use crate::entrypoint::{curl_https, deploy};
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// pebble and its DNS, stopped when dropped.
struct Pebble {
    children: Vec<Child>,
    directory: String,
    management: u16,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Pebble {
    /// Starts pebble, validating HTTP-01 on `http_port`, issuing certificates valid for
    /// `validity_s` seconds; its own HTTPS certificate is signed by `ca`.
    fn start(ca: &TestCa, http_port: u16, validity_s: u64) -> Pebble {
        let (cert, key) = ca.issue_for("pebble", "DNS:localhost,IP:127.0.0.1");
        let (acme, management, dns, dns_management, tls) =
            (free_port(), free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": cert, "privateKey": key,
            "httpPort": http_port, "tlsPort": tls,
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_s,
        }});
        let config_path = ca.path("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = |name: &str| Stdio::from(std::fs::File::create(ca.path(name)).unwrap());
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}"), "-management", &format!("127.0.0.1:{dns_management}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("starting pebble-challtestsrv");
        let pebble = Command::new("pebble")
            .args(["-config", &config_path, "-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("starting pebble");
        let pebble = Pebble {
            children: vec![dns_server, pebble],
            directory: format!("https://127.0.0.1:{acme}/dir"),
            management,
        };
        wait_until("pebble to answer", Duration::from_secs(20), || {
            Command::new("curl")
                .args(["-sSf", "--cacert", &ca.path("ca.pem"), &pebble.directory])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        pebble
    }

    /// The root pebble signs with (a new one each start), as PEM.
    fn root(&self, ca: &TestCa) -> String {
        let url = format!("https://127.0.0.1:{}/roots/0", self.management);
        let out = Command::new("curl").args(["-sSf", "--cacert", &ca.path("ca.pem"), &url]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

/// A TLS client that trusts only `root_pem`, as a browser trusting pebble would.
fn tls_client(root_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut config = config;
    // Every connection a full handshake: a resumed session would show the certificate of
    // the session it resumes, not the one served now.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// GET / over a new TLS connection (a full handshake, so the certificate in force now):
/// (status, body, the certificate's serial-bearing DER length is not needed: its bytes).
fn https_get(client: &Arc<rustls::ClientConfig>, port: u16, host: &str) -> Result<(u16, String, Vec<u8>), String> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
    let connection = rustls::ClientConnection::new(client.clone(), name).map_err(|e| e.to_string())?;
    let socket = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // A peer that closes without close_notify after a complete answer is fine.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    let leaf = tls.conn.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.trim().to_string()).unwrap_or_default();
    Ok((status, body, leaf))
}

/// The value of the /metrics line that starts with `series ` (name and labels).
fn metric(server: &Server, series: &str) -> u64 {
    let (_, metrics) = server.get("/metrics");
    let prefix = format!("{series} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn issued_total(server: &Server) -> u64 {
    metric(server, "hivemind_acme_certificates_issued_total")
}

#[test]
fn acme_issues_certificates_through_http01_and_renews_them_under_load() {
    if !tools_available("the ACME test", &["pebble", "pebble-challtestsrv", "openssl", "curl"]) {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (http, https) = (free_port(), free_port());
    let ca = TestCa::new();
    let pebble_directory_port = free_port();
    // The server starts before pebble: its first attempt fails and is retried.
    let unreachable = format!("https://127.0.0.1:{pebble_directory_port}/dir");
    let data = tempfile::tempdir().unwrap();
    let flags = [
        "--http-addr",
        &format!("127.0.0.1:{http}"),
        "--https-addr",
        &format!("127.0.0.1:{https}"),
        "--acme-directory",
        &unreachable,
        "--acme-email",
        "ops@example.test",
        "--acme-ca-root",
        &ca.path("ca.pem"),
        // pebble's certificates live 60 s here: renewed 20 s after they are issued.
        "--acme-renew-before",
        "40s",
    ];
    let mut server = Server::start_with(data.path(), "process", &flags);
    deploy(&server, "shop", "shop", &["--host", "shop.example.test", "--tls", "acme", "--redirect-https"]).ok();
    let events = |server: &Server, app: &str| server.cli(&["app", "events", "--name", app]).stdout;
    wait_until("the failed ACME attempt in the app's events", Duration::from_secs(20), || {
        events(&server, "shop").contains("could not get a certificate for shop.example.test through ACME")
    });
    assert!(
        events(&server, "shop").contains(&unreachable),
        "the message names the directory: {}",
        events(&server, "shop")
    );
    assert!(metric(&server, "hivemind_acme_failures_total") >= 1, "the failure is counted in /metrics");
    // What served before goes on serving: plain HTTP answers (with the redirect).
    assert_eq!(http_get_as(http, "shop.example.test", "/").0, 308);

    // Now a real directory (the server's flags point at it from here on).
    server.stop();
    let pebble = Pebble::start(&ca, http, 60);
    let flags: Vec<String> =
        flags.iter().map(|f| if *f == unreachable { pebble.directory.clone() } else { f.to_string() }).collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    server = Server::start_with(data.path(), "process", &flags);
    deploy(&server, "api", "api", &["--host", "api.example.test", "--tls", "acme"]).ok();
    wait_until("certificates for both hosts", Duration::from_secs(60), || {
        let list = server.cli_json(&["cert", "list"]);
        list.as_array().is_some_and(|certs| certs.len() == 2)
    });
    let root = pebble.root(&ca);
    let root_path = ca.path("pebble-root.pem");
    std::fs::write(&root_path, &root).unwrap();
    assert_eq!(curl_https(&root_path, https, "shop.example.test", "/", "--http2"), (0, "2".into(), "shop".into()));
    assert_eq!(curl_https(&root_path, https, "api.example.test", "/", "--http2"), (0, "2".into(), "api".into()));
    // Plain HTTP: shop redirects to HTTPS (its port named), api answers; unknown hosts get 404.
    let (status, body) = http_get_as(http, "shop.example.test", "/cart?x=1");
    assert_eq!(status, 308, "{body}");
    assert!(body.contains(&format!("https://shop.example.test:{https}/cart?x=1")), "{body}");
    let (status, body) = http_get_as(http, "api.example.test", "/");
    assert_eq!((status, body.trim()), (200, "api"));
    assert_eq!(http_get_as(http, "unknown.example.test", "/").0, 404);
    assert!(events(&server, "api").contains("certificate for api.example.test issued through ACME"));

    // Renewal under load: new TLS connections to both hosts, each checked against
    // pebble's root, while the certificates are renewed.
    let client = tls_client(&root);
    let first = https_get(&client, https, "shop.example.test").unwrap().2;
    let before = issued_total(&server);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = ["shop.example.test", "api.example.test"]
        .into_iter()
        .map(|host| {
            let (client, stop) = (client.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut ok, mut failures) = (0u64, Vec::new());
                let deadline = std::time::Instant::now() + Duration::from_secs(90);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && std::time::Instant::now() < deadline {
                    match https_get(&client, https, host) {
                        Ok((200, _, _)) => ok += 1,
                        Ok((status, body, _)) => failures.push(format!("{status} {body}")),
                        Err(e) => failures.push(e),
                    }
                }
                (ok, failures)
            })
        })
        .collect();
    wait_until("both certificates renewed", Duration::from_secs(60), || issued_total(&server) >= before + 2);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failures) = (0, Vec::new());
    for thread in load {
        let (o, f) = thread.join().unwrap();
        ok += o;
        failures.extend(f);
    }
    eprintln!("ACME renewal under load: {} HTTPS requests, {} failed", ok + failures.len() as u64, failures.len());
    assert!(
        failures.is_empty(),
        "{} of {} failed: {:?}",
        failures.len(),
        ok + failures.len() as u64,
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 0);
    let renewed = https_get(&client, https, "shop.example.test").unwrap().2;
    assert_ne!(renewed, first, "the renewed certificate is served");
    let expiry = metric(&server, "hivemind_certificate_expiry_timestamp_seconds{host=\"shop.example.test\"}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(expiry > now, "the served certificate's expiry in /metrics ({expiry}) is in the future ({now})");
}
