//! Plugins trusted on purpose: minisign signatures made with the real `minisign` tool (and
//! with `hivemind plugin sign`), checked by a server that requires them on every path a
//! component takes in (a file through the CLI, the API, an OCI registry, the watched
//! plugins directory), each refusal with its own message; and plugins published to and
//! installed from a registry over HTTPS with a test CA and credentials.

use crate::common::registry::{Registry, RegistryOptions};
use crate::common::{Server, TestCa, test_plugin, tools_available, wait_until};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A minisign key pair made by the real tool, without a password (`-W`).
struct KeyPair {
    public: PathBuf,
    secret: PathBuf,
    /// The key ID, as minisign prints it in the public key's comment (hex, without
    /// leading zeros).
    id: String,
}

fn minisign(args: &[&str], dir: &Path) -> String {
    let out = std::process::Command::new("minisign")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "minisign {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

impl KeyPair {
    fn new(dir: &Path, name: &str) -> KeyPair {
        let (public, secret) = (dir.join(format!("{name}.pub")), dir.join(format!("{name}.key")));
        minisign(&["-G", "-W", "-p", public.to_str().unwrap(), "-s", secret.to_str().unwrap()], dir);
        let text = std::fs::read_to_string(&public).unwrap();
        let id = text.lines().next().unwrap().rsplit(' ').next().unwrap().to_string();
        assert!((1..=16).contains(&id.len()), "{text}");
        KeyPair { public, secret, id }
    }

    /// Signs `file` with the real tool, writing FILE.minisig.
    fn sign(&self, file: &Path, comment: &str) {
        let dir = file.parent().unwrap();
        minisign(&["-S", "-s", self.secret.to_str().unwrap(), "-m", file.to_str().unwrap(), "-t", comment], dir);
    }
}

fn signature_of(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.minisig", file.display()))
}

/// A copy of the noop test strategy at `dir/name` (signatures name their file).
fn component(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(test_plugin("noop"), &path).unwrap();
    path
}

/// `component`, changed after it was signed: one byte of its code flipped.
fn tamper(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(file, bytes).unwrap();
}

fn installed_names(server: &Server) -> Vec<String> {
    let list = server.cli_json(&["plugin", "list"]);
    list.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// What each refusal says, given the trusted key and the stranger's.
struct Refusals {
    unsigned: String,
    unknown: String,
    tampered: String,
}

impl Refusals {
    fn new(team: &KeyPair, stranger: &KeyPair) -> Refusals {
        Refusals {
            unsigned: format!(
                "the component is unsigned, and this server requires a signature by key ID {} ({})",
                team.id,
                team.public.display()
            ),
            unknown: format!(
                "signed by key ID {}, which this server does not trust; it trusts key ID {}",
                stranger.id, team.id
            ),
            tampered: format!(
                "the signature by key ID {} ({}) does not match this component",
                team.id,
                team.public.display()
            ),
        }
    }
}

#[test]
fn a_server_that_requires_signatures_takes_only_what_a_trusted_key_signed_on_every_install_path() {
    if !tools_available("signatures", &["minisign"]) {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (team, stranger) = (KeyPair::new(keys.path(), "team"), KeyPair::new(keys.path(), "stranger"));
    let refusals = Refusals::new(&team, &stranger);
    let server = Server::start_with_flags(
        "process",
        &["--plugin-trust", "require-signed", "--trusted-key", team.public.to_str().unwrap()],
    );
    let before = installed_names(&server);
    let dir = tempfile::tempdir().unwrap();

    // 1. A file, through the CLI (which takes FILE.minisig along).
    let unsigned = component(dir.path(), "unsigned.wasm");
    let foreign = component(dir.path(), "foreign.wasm");
    stranger.sign(&foreign, "not ours");
    let tampered = component(dir.path(), "tampered.wasm");
    team.sign(&tampered, "team build 41");
    tamper(&tampered);
    for (file, expected) in
        [(&unsigned, &refusals.unsigned), (&foreign, &refusals.unknown), (&tampered, &refusals.tampered)]
    {
        let run = server.cli(&["plugin", "install", file.to_str().unwrap()]);
        assert_eq!(run.code, 2, "{}: {run:?}", file.display());
        assert!(run.stderr.contains(expected.as_str()), "{}: expected `{expected}` in {}", file.display(), run.stderr);
    }
    assert_eq!(installed_names(&server), before, "nothing was installed");

    let signed = component(dir.path(), "noop.wasm");
    team.sign(&signed, "team build 42");
    let run = server.cli(&["plugin", "install", signed.to_str().unwrap()]).ok();
    assert!(
        run.stdout.contains(&format!("signed by key ID {} (trusted key {})", team.id, team.public.display())),
        "{}",
        run.stdout
    );
    let inspected = server.cli_json(&["plugin", "inspect", "test-noop"]);
    assert_eq!(inspected["signature"]["key_id"], team.id.as_str(), "{inspected}");
    assert_eq!(inspected["signature"]["verified"], true);
    assert_eq!(inspected["signature"]["comment"], "team build 42");
    let table = server.cli(&["plugin", "inspect", "test-noop"]).ok().stdout;
    assert!(table.contains(&format!("signed by key ID {}", team.id)) && table.contains("team build 42"), "{table}");
    assert!(server.cli(&["plugin", "list"]).ok().stdout.contains(&team.id));
    // Kept across a restart, and checked again then.
    let mut server = server;
    let data_dir = server.data_dir.clone();
    server.stop();
    let server = Server::start_with(
        &data_dir,
        "process",
        &["--plugin-trust", "require-signed", "--trusted-key", team.public.to_str().unwrap()],
    );
    assert_eq!(server.cli_json(&["plugin", "inspect", "test-noop"])["signature"]["key_id"], team.id.as_str());
    server.cli(&["plugin", "remove", "test-noop"]).ok();

    // `hivemind plugin sign` writes what the real tool verifies, and the server takes it.
    let ours = component(dir.path(), "ours.wasm");
    let run = server
        .cli(&[
            "plugin",
            "sign",
            ours.to_str().unwrap(),
            "--key",
            team.secret.to_str().unwrap(),
            "--comment",
            "by hivemind",
        ])
        .ok();
    assert!(run.stdout.contains(&format!("with key ID {}", team.id)), "{}", run.stdout);
    let verified = minisign(&["-V", "-p", team.public.to_str().unwrap(), "-m", ours.to_str().unwrap()], dir.path());
    assert!(verified.contains("Trusted comment: by hivemind"), "{verified}");
    let moved = dir.path().join("elsewhere.sig");
    std::fs::rename(signature_of(&ours), &moved).unwrap();
    let run = server.cli(&["plugin", "install", ours.to_str().unwrap(), "--signature", moved.to_str().unwrap()]);
    assert!(run.ok().stdout.contains(&team.id));
    server.cli(&["plugin", "remove", "test-noop"]).ok();

    // 2. The API: the signature's text in the `signature` query parameter.
    let bytes = std::fs::read(&signed).unwrap();
    let signature = std::fs::read_to_string(signature_of(&signed)).unwrap();
    let (status, body) = server.api_post("/api/plugins", "application/wasm", &bytes);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(&refusals.unsigned), "{body}");
    let query = |text: &str| format!("/api/plugins?signature={}", percent_encode(text));
    let foreign_signature = std::fs::read_to_string(signature_of(&foreign)).unwrap();
    let (status, body) = server.api_post(&query(&foreign_signature), "application/wasm", &bytes);
    assert!(status == 400 && body["error"]["message"].as_str().unwrap().contains(&refusals.unknown), "{status} {body}");
    let mut changed = bytes.clone();
    changed[100] ^= 0x01;
    let (status, body) = server.api_post(&query(&signature), "application/wasm", &changed);
    assert!(
        status == 400 && body["error"]["message"].as_str().unwrap().contains(&refusals.tampered),
        "{status} {body}"
    );
    let (status, body) = server.api_post(&query(&signature), "application/wasm", &bytes);
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["signature"]["key_id"].as_str(), body["signature"]["verified"].as_bool()),
        (Some(team.id.as_str()), Some(true))
    );
    server.cli(&["plugin", "remove", "test-noop"]).ok();

    // 3. An OCI registry: the signature is published with the component, as an annotation.
    let registry_dir = tempfile::tempdir().unwrap();
    if let Some(registry) = Registry::start(registry_dir.path()) {
        let reference = |tag: &str| format!("oci://127.0.0.1:{}/team/noop:{tag}", registry.port);
        let published = server.cli(&["plugin", "publish", signed.to_str().unwrap(), &reference("signed")]).ok();
        assert!(published.stdout.contains("with its signature"), "{}", published.stdout);
        server.cli(&["plugin", "publish", unsigned.to_str().unwrap(), &reference("unsigned")]).ok();
        server.cli(&["plugin", "publish", foreign.to_str().unwrap(), &reference("foreign")]).ok();
        // The team's signature, published with a component it was not made for.
        let swapped = signature_of(&signed);
        server
            .cli(&[
                "plugin",
                "publish",
                tampered.to_str().unwrap(),
                &reference("tampered"),
                "--signature",
                swapped.to_str().unwrap(),
            ])
            .ok();
        for (tag, expected) in
            [("unsigned", &refusals.unsigned), ("foreign", &refusals.unknown), ("tampered", &refusals.tampered)]
        {
            let run = server.cli(&["plugin", "install", &reference(tag)]);
            assert_eq!(run.code, 2, "{tag}: {run:?}");
            assert!(run.stderr.contains(expected.as_str()), "{tag}: expected `{expected}` in {}", run.stderr);
        }
        let installed = server.cli_json(&["plugin", "install", &reference("signed")]);
        assert_eq!(installed["signature"]["key_id"], team.id.as_str(), "{installed}");
        server.cli(&["plugin", "remove", "test-noop"]).ok();
    }

    // 4. The watched plugins directory: FILE.wasm with FILE.wasm.minisig beside it.
    let plugins_dir = server.data_dir.join("plugins");
    std::fs::create_dir_all(&plugins_dir).unwrap();
    for file in [&unsigned, &foreign, &tampered] {
        let name = file.file_name().unwrap().to_str().unwrap();
        if signature_of(file).exists() {
            std::fs::copy(signature_of(file), plugins_dir.join(format!("{name}.minisig"))).unwrap();
        }
        std::fs::copy(file, plugins_dir.join(name)).unwrap();
    }
    for (name, expected) in [
        ("unsigned.wasm", &refusals.unsigned),
        ("foreign.wasm", &refusals.unknown),
        ("tampered.wasm", &refusals.tampered),
    ] {
        wait_until(&format!("the server to refuse {name} in the plugins dir"), Duration::from_secs(15), || {
            server
                .log()
                .lines()
                .any(|l| l.contains(name) && l.contains("does not load") && l.contains(expected.as_str()))
        });
    }
    assert_eq!(installed_names(&server), before, "nothing from the plugins dir was loaded");
    // A signature that arrives after its component: the component is tried again.
    std::fs::copy(&signed, plugins_dir.join("late.wasm")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::copy(signature_of(&signed), plugins_dir.join("late.wasm.minisig")).unwrap();
    wait_until("the plugins dir's signed component to load", Duration::from_secs(15), || {
        installed_names(&server).contains(&"test-noop".to_string())
    });
    assert_eq!(server.cli_json(&["plugin", "inspect", "test-noop"])["signature"]["verified"], true);
}

#[test]
fn the_default_policy_takes_unsigned_plugins_and_says_so_but_never_a_broken_signature() {
    if !tools_available("signatures", &["minisign"]) {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (team, stranger) = (KeyPair::new(keys.path(), "team"), KeyPair::new(keys.path(), "stranger"));
    // require-signed without a key could take nothing: refused before the server starts.
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hivemind"))
        .args(["serve", "--plugin-trust", "require-signed", "--data-dir", data.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("needs at least one --trusted-key FILE"), "{stderr}");

    let server = Server::start_with_flags("process", &["--trusted-key", team.public.to_str().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let unsigned = component(dir.path(), "noop.wasm");
    let run = server.cli(&["plugin", "install", unsigned.to_str().unwrap()]).ok();
    assert!(run.stdout.contains("unsigned"), "{}", run.stdout);
    let inspected = server.cli_json(&["plugin", "inspect", "test-noop"]);
    assert!(inspected.get("signature").is_none(), "{inspected}");
    // The same component, signed afterwards and installed again, is shown signed.
    team.sign(&unsigned, "signed afterwards");
    let run = server.cli(&["plugin", "install", unsigned.to_str().unwrap()]).ok();
    assert!(run.stdout.contains(&format!("signed by key ID {} (trusted key", team.id)), "{}", run.stdout);
    server.cli(&["plugin", "remove", "test-noop"]).ok();

    let foreign = component(dir.path(), "foreign.wasm");
    stranger.sign(&foreign, "not ours");
    let run = server.cli(&["plugin", "install", foreign.to_str().unwrap()]).ok();
    assert!(
        run.stdout
            .contains(&format!("signed by key ID {}, which this server does not trust: not verified", stranger.id)),
        "{}",
        run.stdout
    );
    let inspected: Value = server.cli_json(&["plugin", "inspect", "test-noop"]);
    assert_eq!(
        (inspected["signature"]["verified"].as_bool(), inspected["signature"].get("trusted_key")),
        (Some(false), None)
    );
    server.cli(&["plugin", "remove", "test-noop"]).ok();

    let tampered = component(dir.path(), "tampered.wasm");
    team.sign(&tampered, "team build 41");
    tamper(&tampered);
    let run = server.cli(&["plugin", "install", tampered.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("does not match this component"), "{}", run.stderr);
}

#[test]
fn a_plugin_round_trips_through_a_registry_over_https_with_a_test_ca_and_credentials() {
    if !tools_available("https registry", &["minisign", "htpasswd", "openssl"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert, key) = ca.issue_for("registry", "DNS:localhost,IP:127.0.0.1");
    let htpasswd = dir.path().join("htpasswd");
    let out = std::process::Command::new("htpasswd").args(["-Bbn", "publisher", "s3cret pass"]).output().unwrap();
    assert!(out.status.success());
    std::fs::write(&htpasswd, out.stdout).unwrap();
    let options = RegistryOptions { tls: Some((&cert, &key)), htpasswd: Some(&htpasswd) };
    let Some(registry) = Registry::start_with(dir.path(), options) else { return };
    let keys = tempfile::tempdir().unwrap();
    let team = KeyPair::new(keys.path(), "team");
    let server = Server::start_with_flags(
        "process",
        &["--plugin-trust", "require-signed", "--trusted-key", team.public.to_str().unwrap()],
    );
    let signed = component(dir.path(), "noop.wasm");
    team.sign(&signed, "team build 42");
    let reference = format!("oci://127.0.0.1:{}/team/noop:1.0.0", registry.port);
    let ca_pem = ca.path("ca.pem");
    let publish = |extra: &[&str], stdin: &str, env: &[(&str, &str)]| {
        let mut args = vec!["plugin", "publish", signed.to_str().unwrap(), reference.as_str()];
        args.extend_from_slice(extra);
        server.cli_with(&args, stdin, env)
    };
    let no_docker = [("DOCKER_CONFIG", dir.path().to_str().unwrap())];

    // The registry's certificate is from a CA the system does not know.
    let run = publish(&[], "", &no_docker);
    assert!(run.code != 0 && run.stderr.contains("--ca-cert"), "{run:?}");
    // Trusted, but no credentials, then the wrong ones.
    let run = publish(&["--ca-cert", &ca_pem], "", &no_docker);
    assert!(run.code != 0 && run.stderr.contains("asks for credentials"), "{run:?}");
    let run = publish(&["--ca-cert", &ca_pem, "--username", "publisher", "--password-stdin"], "wrong\n", &no_docker);
    assert!(run.code != 0 && run.stderr.contains("refused the credentials of publisher"), "{run:?}");
    let run =
        publish(&["--ca-cert", &ca_pem, "--username", "publisher", "--password-stdin"], "s3cret pass\n", &no_docker);
    assert!(run.code == 0 && run.stdout.contains("with its signature"), "{run:?}");

    // Installed with the credentials `docker login` would have stored.
    let docker = tempfile::tempdir().unwrap();
    let auth = {
        let out = std::process::Command::new("openssl")
            .args(["base64", "-A"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut out = out;
        out.stdin.take().unwrap().write_all(b"publisher:s3cret pass").unwrap();
        String::from_utf8(out.wait_with_output().unwrap().stdout).unwrap()
    };
    std::fs::write(
        docker.path().join("config.json"),
        serde_json::json!({ "auths": { format!("127.0.0.1:{}", registry.port): { "auth": auth.trim() } } }).to_string(),
    )
    .unwrap();
    let run = server.cli_with(
        &["plugin", "install", &reference, "--ca-cert", &ca_pem, "--output", "json"],
        "",
        &[("DOCKER_CONFIG", docker.path().to_str().unwrap())],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("(digest verified)"), "{}", run.stderr);
    let installed = run.json();
    assert_eq!(
        (installed["name"].as_str(), installed["signature"]["key_id"].as_str()),
        (Some("test-noop"), Some(team.id.as_str()))
    );
    assert!(installed["source"].as_str().unwrap().contains("@sha256:"), "{installed}");
}
