//! The plugin platform, as a plugin author meets it: strategies installed and upgraded on
//! a running server under load, deployments pinned to the exact version they started
//! with, a watched plugins directory, and components that do not fit refused, each with
//! its own clear error, leaving the registry as it was.

use crate::common::registry::Registry;
use crate::common::{Load, Server, demo_command, named_swap_plugin, swap_plugin, test_plugin, versions_served};
use serde_json::Value;
use std::time::{Duration, Instant};

fn sha256_of(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

/// Deploys demo `version` of app web on 2 replicas; the deployment as it ended.
fn deploy(server: &Server, version: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--replicas", "2"];
    args.extend_from_slice(extra);
    server.deploy("web", &demo_command(version, ""), &args).ok().json()
}

#[test]
fn a_strategy_installed_and_upgraded_under_load_pins_each_deployment_to_its_version() {
    let (v1, v2) = (swap_plugin("1.0.0"), swap_plugin("2.0.0"));
    let (sha1, sha2) = (sha256_of(&v1), sha256_of(&v2));
    assert_ne!(sha1, sha2);
    let server = Server::start("process");
    deploy(&server, "v1", &[]);
    let port = server.app_port("web");
    let load = Load::start(port, 4);

    // Version 1, through the API, while traffic flows.
    let started = Instant::now();
    let (status, installed) = server.api_post("/api/plugins", "application/wasm", &std::fs::read(&v1).unwrap());
    eprintln!("FIGURES upload to usable (API, compile, type-check): {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
    assert_eq!(status, 201, "{installed}");
    assert_eq!((installed["name"].as_str(), installed["sha256"].as_str()), (Some("test-swap"), Some(sha1.as_str())));

    // A deployment with it is under way when version 2 arrives: it keeps version 1.
    let first = deploy(&server, "v2", &["--strategy", "test-swap", "--param", "pause-ms=1500", "--detach"]);
    let first_id = first["id"].as_str().unwrap().to_string();
    let (status, upgraded) = server.api_post("/api/plugins", "application/wasm", &std::fs::read(&v2).unwrap());
    assert_eq!(status, 201, "{upgraded}");
    assert_eq!((upgraded["version"].as_str(), upgraded["sha256"].as_str()), (Some("2.0.0"), Some(sha2.as_str())));
    let first = server.wait_for(&first_id, Duration::from_secs(60));
    assert_eq!(first["status"], "completed", "{first}");
    assert_eq!(
        (first["plugin"]["version"].as_str(), first["plugin"]["sha256"].as_str()),
        (Some("1.0.0"), Some(sha1.as_str()))
    );

    // The next deployment gets version 2.
    let second = deploy(&server, "v3", &["--strategy", "test-swap"]);
    assert_eq!(second["status"], "completed", "{second}");
    assert_eq!(
        (second["plugin"]["version"].as_str(), second["plugin"]["sha256"].as_str()),
        (Some("2.0.0"), Some(sha2.as_str()))
    );

    std::thread::sleep(Duration::from_millis(200));
    let report = load.stop();
    report.assert_no_failures("installing and upgrading a strategy under load");
    assert!(report.ok > 100, "traffic flowed throughout: {} requests", report.ok);
    assert_eq!(versions_served(port, 4), vec!["v3"; 4]);
}

#[test]
fn a_built_in_name_is_taken_only_with_replace_and_given_back_on_remove() {
    let server = Server::start("process");
    let mine = named_swap_plugin("canary", "9.0.0");
    let refused = server.cli(&["plugin", "install", mine.to_str().unwrap()]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("`canary` is the name of a built-in plugin") && refused.stderr.contains("--replace"),
        "{}",
        refused.stderr
    );

    let installed = server.cli_json(&["plugin", "install", "--replace", mine.to_str().unwrap()]);
    assert_eq!((installed["version"].as_str(), installed["origin"].as_str()), (Some("9.0.0"), Some("installed")));
    let d = deploy(&server, "v1", &["--strategy", "canary"]);
    assert_eq!((d["status"].as_str(), d["plugin"]["version"].as_str()), (Some("completed"), Some("9.0.0")), "{d}");

    server.cli(&["plugin", "remove", "canary"]).ok();
    let back = server.cli_json(&["plugin", "inspect", "canary"]);
    assert_eq!((back["origin"].as_str(), back["version"].as_str()), (Some("builtin"), Some("1.0.0")), "{back}");
}

#[test]
fn a_component_dropped_into_the_plugins_dir_is_loaded_and_unloaded_when_removed() {
    let server = Server::start("process");
    let dropped = server.data_dir.join("plugins").join("my-noop.wasm");
    std::fs::create_dir_all(dropped.parent().unwrap()).unwrap();
    let names = || -> Vec<String> {
        server
            .cli_json(&["plugin", "list"])
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let wait = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    std::fs::copy(test_plugin("noop"), &dropped).unwrap();
    wait("the dropped component is loaded", &|| names().contains(&"test-noop".to_string()));
    let source = server.cli_json(&["plugin", "inspect", "test-noop"])["source"].as_str().unwrap().to_string();
    assert!(source.starts_with("plugins dir: ") && source.ends_with("my-noop.wasm"), "{source}");
    // Usable at once.
    let d = server.cli_json(&[
        "deployment",
        "create",
        "--app-name",
        "web",
        "--image",
        &demo_command("v1", ""),
        "--strategy",
        "test-noop",
    ]);
    assert_eq!(d["plugin"]["name"], "test-noop");

    // A file that is not a component is reported and changes nothing.
    std::fs::write(server.data_dir.join("plugins").join("broken.wasm"), b"not wasm").unwrap();
    wait("the broken file is counted", &|| server.get("/metrics").1.contains("hivemind_plugin_load_errors_total 1"));
    assert!(server.log().contains("broken.wasm does not load"), "{}", server.log());

    std::fs::remove_file(&dropped).unwrap();
    wait("the removed component is unloaded", &|| !names().contains(&"test-noop".to_string()));
}

/// A component that exports `step` (so it means to be a strategy) and imports `imports`.
fn strategy_shaped(imports: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
            {imports}
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (export "step" (func $f)))"#
    ))
    .unwrap()
}

#[test]
fn each_kind_of_misfit_component_gets_its_own_error_and_changes_nothing() {
    let server = Server::start("process");
    let before = server.cli_json(&["plugin", "list"]);
    let dir = tempfile::tempdir().unwrap();
    let hook_with_containers = wat::parse_str(
        r#"(component
            (import "hivemind:plugin/containers@0.1.0" (instance (export "capacity" (func (result u32)))))
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (export "run" (func $f)))"#,
    )
    .unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("notes.wasm", b"hello, I am text".to_vec(), "the file is not WebAssembly"),
        ("core.wasm", wat::parse_str("(module)").unwrap(), "a core WebAssembly module, not a component"),
        (
            "empty.wasm",
            wat::parse_str("(component)").unwrap(),
            "the component is not a Hivemind plugin: it exports nothing",
        ),
        (
            "future.wasm",
            strategy_shaped(r#"(import "hivemind:plugin/containers@0.2.0" (instance))"#),
            "built for plugin API 0.2.0 (it imports `hivemind:plugin/containers@0.2.0`), and this host supports plugin API 0.1.0, 0.1.1",
        ),
        (
            "sockets.wasm",
            strategy_shaped(r#"(import "wasi:http/outgoing-handler@0.2.0" (instance (export "handle" (func))))"#),
            "imports something the host does not grant to a hivemind:plugin/strategy",
        ),
        (
            "hook-scaling.wasm",
            hook_with_containers,
            "imports something the host does not grant to a hivemind:plugin/hook",
        ),
        ("half.wasm", strategy_shaped(""), "is not a hivemind:plugin/strategy@0.1 component"),
    ];
    for (name, bytes, expected) in &cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let run = server.cli(&["plugin", "install", path.to_str().unwrap()]);
        assert_eq!(run.code, 2, "{name}: {run:?}");
        assert!(run.stderr.contains(expected), "{name}: expected `{expected}` in: {}", run.stderr);
    }
    assert_eq!(server.cli_json(&["plugin", "list"]), before, "the registry is unchanged");
    let metrics = server.get("/metrics").1;
    assert!(metrics.contains(&format!("hivemind_plugin_load_errors_total {}", cases.len())), "{metrics}");
}

#[test]
fn a_plugin_published_to_an_oci_registry_installs_by_reference_with_its_digest_verified() {
    let dir = tempfile::tempdir().unwrap();
    let Some(registry) = Registry::start(dir.path()) else { return };
    let wasm = swap_plugin("1.0.0");
    let sha = sha256_of(&wasm);
    let server = Server::start("process");
    let reference = format!("oci://127.0.0.1:{}/hivemind/swap:1.0.0", registry.port);

    let published = server.cli(&["plugin", "publish", wasm.to_str().unwrap(), &reference]).ok().stdout;
    assert!(published.contains(&format!("component sha256:{sha}")), "{published}");
    let manifest = published.split("manifest ").nth(1).unwrap().split(',').next().unwrap().to_string();

    let run = server.cli(&["plugin", "install", &reference, "--output", "json"]).ok();
    assert!(run.stderr.contains("(digest verified)"), "{}", run.stderr);
    assert_eq!(run.json()["sha256"], sha.as_str());
    // By digest too: the manifest's digest is checked against the reference.
    let source = server.cli_json(&["plugin", "inspect", "test-swap"])["source"].as_str().unwrap().to_string();
    assert!(source.starts_with(&reference) && source.contains(&format!("@{manifest}")), "where it came from: {source}");
    let by_digest = format!("oci://127.0.0.1:{}/hivemind/swap@{manifest}", registry.port);
    assert_eq!(server.cli(&["plugin", "install", &by_digest, "--output", "json"]).ok().json()["sha256"], sha.as_str());
    // Usable at once.
    let d = deploy(&server, "v1", &["--strategy", "test-swap"]);
    assert_eq!((d["status"].as_str(), d["plugin"]["sha256"].as_str()), (Some("completed"), Some(sha.as_str())));

    // A component altered in the registry's storage is refused, and not installed.
    let blob = dir.path().join(format!("data/docker/registry/v2/blobs/sha256/{}/{sha}/data", &sha[..2]));
    std::fs::write(&blob, b"\0asm not the component that was published").unwrap();
    server.cli(&["plugin", "remove", "test-swap"]).ok();
    let run = server.cli(&["plugin", "install", &reference]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains(&format!("but its manifest says sha256:{sha}")), "{}", run.stderr);
    let missing = server.cli(&["plugin", "install", &format!("oci://127.0.0.1:{}/hivemind/swap:9.9.9", registry.port)]);
    assert!(missing.code != 0 && missing.stderr.contains("404"), "{missing:?}");
    let names = server.cli_json(&["plugin", "list"]);
    assert!(!names.to_string().contains("test-swap"), "{names}");
}
