//! Compiles every crate under `plugins/` to a wasm32-wasip2 component and embeds the
//! components in the binary (see `plugins::builtin`).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap();
    let plugins = root.join("plugins");
    for watched in ["plugins", "sdk"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    check_wasm_target();

    // A target dir of its own, beside the workspace's, so this nested cargo never waits on
    // the lock of the build that runs this script, and stays warm between builds.
    let target_dir = env::var_os("HIVEMIND_PLUGINS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("wasm-plugins"));
    // Strategies and hooks enable different features of the sdk, and features unify
    // within one cargo invocation: build each kind in its own.
    let hook_args: Vec<String> = plugin_crates(&plugins)
        .into_iter()
        .filter(|name| is_hook(&plugins.join(name)))
        .flat_map(|hook| ["-p".to_string(), hook])
        .collect();
    for packages in [Vec::new(), hook_args] {
        let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--release", "--target", TARGET, "--manifest-path"])
            .arg(plugins.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .args(&packages);
        // The outer build's flags are for the host, not for wasm.
        for var in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "CARGO_TARGET_DIR",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_BUILD_RUSTFLAGS",
        ] {
            build.env_remove(var);
        }
        let status = build.status().expect("could not run cargo to build the built-in plugins");
        if !status.success() {
            panic!("building the built-in plugins under plugins/ for {TARGET} failed; the errors are above");
        }
    }

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let mut entries = String::new();
    for name in plugin_crates(&plugins) {
        let file = format!("{}.wasm", name.replace('-', "_"));
        let built = target_dir.join(TARGET).join("release").join(&file);
        let embedded = out_dir.join(&file);
        fs::copy(&built, &embedded).unwrap_or_else(|e| panic!("missing {}: {e}", built.display()));
        entries.push_str(&format!("    ({name:?}, include_bytes!({:?})),\n", embedded.display().to_string()));
    }
    fs::write(
        out_dir.join("builtin_plugins.rs"),
        format!("/// (crate name, component bytes) of every built-in plugin.\npub static BUILTIN: &[(&str, &[u8])] = &[\n{entries}];\n"),
    )
    .unwrap();
}

/// Fails the build with the fix in the message when the wasm target is missing.
fn check_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc).args(["--print", "sysroot"]).output().expect("could not run rustc");
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if !Path::new(&sysroot).join("lib/rustlib").join(TARGET).join("lib").is_dir() {
        panic!(
            "\n\nThe {TARGET} Rust target is not installed, and Hivemind's built-in plugins are compiled to it.\n\
             Fix: run `rustup target add {TARGET}`\n\
             (offline: `../shared/toolchain/ensure-wasm-target.sh`, which unpacks a bundled copy for rustc 1.95.0).\n\n"
        );
    }
}

/// Whether the crate in `dir` is a hook: it enables the sdk's `hook` feature.
fn is_hook(dir: &Path) -> bool {
    fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| t.contains(r#"features = ["hook"]"#))
}

/// The package names of the crates under `plugins/`, sorted.
fn plugin_crates(plugins: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in fs::read_dir(plugins).unwrap().flatten() {
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = fs::read_to_string(&manifest) else { continue };
        let name = text
            .lines()
            .find_map(|l| {
                l.trim().strip_prefix("name").map(|r| r.trim_start_matches([' ', '=']).trim_matches('"').to_string())
            })
            .unwrap_or_else(|| panic!("{} has no package name", manifest.display()));
        names.push(name);
    }
    names.sort();
    names
}
