//! `hivemind plugin new`, as a plugin author starts: a strategy and a hook in Rust and in
//! Python, each written, built with its real toolchain (cargo for wasm32-wasip2,
//! componentize-py), its own test run, then installed on a running server and used.

use crate::common::{Server, demo_command, target_dir, tools_available, versions_served};
use std::path::Path;
use std::process::Command;

fn run(command: &mut Command, what: &str) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// Writes project `name` with `plugin new` and builds it; returns its component.
fn new_and_build(server: &Server, dir: &Path, name: &str, flags: &[&str]) -> std::path::PathBuf {
    let project = dir.join(name);
    let mut args = vec!["plugin", "new", name, "--dir", project.to_str().unwrap()];
    args.extend_from_slice(flags);
    let wrote = server.cli(&args).ok().stdout;
    assert!(wrote.contains(&format!(" {name} in ")), "{wrote}");
    assert!(project.join("README.md").exists());
    if flags.contains(&"python") {
        let world = if flags.contains(&"--hook") { "hook" } else { "strategy" };
        let tests =
            run(Command::new("python3").args(["-m", "unittest", "-v"]).current_dir(&project), "its Python test");
        assert!(tests.contains("OK"), "{tests}");
        let wasm = project.join(format!("{name}.wasm"));
        run(
            Command::new("componentize-py")
                .args(["-d", "wit", "-w", world, "componentize", "--stub-wasi", "app", "-o"])
                .arg(&wasm)
                .current_dir(&project),
            "componentize-py, as its README says",
        );
        return wasm;
    }
    // One target dir for the Rust projects, so that the SDK's dependencies build once.
    let target = target_dir().join("scaffold-test");
    let tests = run(
        Command::new(env!("CARGO")).args(["test", "--target-dir"]).arg(&target).current_dir(&project),
        "its cargo test",
    );
    assert!(tests.contains("test result: ok. 1 passed"), "{tests}");
    run(
        Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
            .arg(&target)
            .current_dir(&project),
        "cargo build, as its README says",
    );
    target.join(format!("wasm32-wasip2/release/{}.wasm", name.replace('-', "_")))
}

#[test]
fn plugin_new_writes_strategies_and_hooks_in_rust_and_python_that_build_install_and_deploy() {
    if !tools_available("plugin new", &["componentize-py"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start("process");
    server.deploy("web", &demo_command("v1", ""), &["--replicas", "2"]).ok();
    let port = server.app_port("web");
    let mut version = 1;
    for (name, flags) in [
        ("ramp-rs", vec![]),
        ("gate-rs", vec!["--hook"]),
        ("ramp-py", vec!["--lang", "python"]),
        ("gate-py", vec!["--hook", "--lang", "python"]),
    ] {
        let wasm = new_and_build(&server, dir.path(), name, &flags);
        let kind = if flags.contains(&"--hook") { "hook" } else { "strategy" };
        // A hook runs its commands only with the grant, as its README says to install it.
        let readme = std::fs::read_to_string(dir.path().join(name).join("README.md")).unwrap();
        let allow: &[&str] = if kind == "hook" { &["--allow", "jobs"] } else { &[] };
        assert_eq!(readme.contains("--allow jobs"), kind == "hook", "{name}: {readme}");
        let mut install = vec!["plugin", "install", wasm.to_str().unwrap()];
        install.extend_from_slice(allow);
        let installed = server.cli_json(&install);
        assert_eq!((installed["name"].as_str(), installed["kind"].as_str()), (Some(name), Some(kind)), "{installed}");
        version += 1;
        let next = format!("v{version}");
        if kind == "strategy" {
            // The simulator passes it as written.
            let simulated = server.cli(&[
                "plugin",
                "test",
                wasm.to_str().unwrap(),
                "--param",
                "steps=2",
                "--param",
                "interval=1",
                "--brief",
            ]);
            assert!(
                simulated.code == 0 && simulated.stdout.contains("4 of 4 scenarios ended as they should"),
                "{name}: {}",
                simulated.stdout
            );
            let d = server
                .deploy(
                    "web",
                    &demo_command(&next, ""),
                    &["--replicas", "2", "--strategy", name, "--param", "steps=2", "--param", "interval=1"],
                )
                .ok()
                .json();
            assert_eq!(d["status"], "completed", "{name}: {d}");
            let log = server.events(d["id"].as_str().unwrap());
            let moved: Vec<&str> =
                log.iter().filter_map(|e| e["message"].as_str()).filter(|m| m.contains("% of the traffic")).collect();
            assert_eq!(moved.len(), 2, "{name} moved the traffic in two steps: {moved:?}");
            // Its own validation.
            let refused = server.deploy("web", &demo_command("v99", ""), &["--strategy", name, "--param", "steps=0"]);
            assert!(refused.code != 0 && refused.stderr.contains("steps must be"), "{name}: {refused:?}");
        } else {
            // A command that fails stops the deployment before anything changes.
            let hook = format!("plugin:{name} echo no; exit 3");
            let refused = server.deploy("web", &demo_command("v99", ""), &["--pre-hook", &hook]);
            assert_ne!(refused.code, 0, "{name}");
            let failed = server.cli_json(&["deployment", "list", "--app", "web", "--limit", "1"]);
            let error = failed[0]["error"].as_str().unwrap_or_default().to_string();
            assert!(error.contains("`echo no; exit 3` exited 3: no"), "{name}: {failed}");
            let before = format!("v{}", version - 1);
            assert_eq!(versions_served(port, 4), vec![before.as_str(); 4], "{name}: the release before still serves");
            let hook = format!("plugin:{name} echo migrated");
            let d = server.deploy("web", &demo_command(&next, ""), &["--pre-hook", &hook]).ok().json();
            assert_eq!(d["status"], "completed", "{name}: {d}");
            let log = server
                .events(d["id"].as_str().unwrap())
                .iter()
                .filter_map(|e| e["message"].as_str().map(String::from))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(log.contains("`echo migrated` passed: migrated"), "{name}: {log}");
        }
        assert_eq!(versions_served(port, 4), vec![next.as_str(); 4], "{name}");
    }
}
