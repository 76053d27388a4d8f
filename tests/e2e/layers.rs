//! The house's rules: the CLI crate is built without the server's parts (the crate
//! boundary holds it, and `cargo tree` shows it); inside the host, each area imports
//! only the areas below it (`tests/layers/check-layers.py`); no import cycle between the
//! modules of one area (`tests/layers/check-module-cycles.py`), which crate boundaries
//! cannot hold by themselves; and no Rust source file over 600 lines (a file that long
//! holds more than one concern).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_cli_crate_depends_on_the_model_and_an_http_client_only() {
    let out = Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .args(["tree", "--offline", "--locked", "-p", "hivemind-cli", "-e", "normal", "--prefix", "none"])
        .current_dir(repo())
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(crates.contains(&"hivemind-model") && crates.contains(&"reqwest"), "{tree}");
    // The server's crate and what only it needs: the sandbox, the database, Docker.
    for server_side in [
        "hivemind",
        "hivemind-store",
        "hivemind-router",
        "hivemind-runtime",
        "hivemind-plugins",
        "wasmtime",
        "sqlx",
        "bollard",
        "axum",
    ] {
        assert!(!crates.contains(&server_side), "hivemind-cli depends on {server_side}:\n{tree}");
    }
}

#[test]
fn each_area_of_the_host_imports_only_the_areas_below_it() {
    let out = Command::new("python3").arg(repo().join("tests/layers/check-layers.py")).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn no_module_imports_its_way_back_to_itself() {
    let out = Command::new("python3").arg(repo().join("tests/layers/check-module-cycles.py")).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn no_rust_source_file_is_over_600_lines() {
    fn walk(dir: &Path, long: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                // Build output (a plugin built in its own folder has a target/ there).
                if name != "target" && !name.to_string_lossy().starts_with('.') {
                    walk(&path, long);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                if lines > 600 {
                    long.push(format!("{} has {lines} lines", path.display()));
                }
            }
        }
    }
    let mut long = Vec::new();
    for dir in [
        "host",
        "cli",
        "model",
        "store",
        "router",
        "ports",
        "runtime",
        "health",
        "plugin-host",
        "sdk",
        "demo",
        "tests",
        "plugins",
        "examples",
        "bench",
    ] {
        walk(&repo().join(dir), &mut long);
    }
    assert!(long.is_empty(), "split these by concern:\n{}", long.join("\n"));
}
