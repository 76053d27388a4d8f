//! What the tests build once per test binary: the demo app, its Docker images and the
//! test plugins, with a cargo of their own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET"] {
        cmd.env_remove(var);
    }
    cmd
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The demo app, built once per test binary in a target dir of its own (the outer
/// cargo's dir stays free).
pub fn demo_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = target_dir().join("demo");
        run_ok(
            cargo()
                .args(["build", "--release", "-p", "hivemind-demo", "--target-dir"])
                .arg(&dir)
                .current_dir(repo_root()),
            "building the demo app",
        );
        dir.join("release/hivemind-demo")
    })
}

/// The process-runtime "image" of demo version `version`, with extra flags.
pub fn demo_command(version: &str, flags: &str) -> String {
    format!("{} {version} {flags}", demo_binary().display()).trim().to_string()
}

/// A test plugin from tests/plugins, built once per test binary.
pub fn test_plugin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = target_dir().join("test-plugins");
        // Strategies, then the hook on its own: the two kinds enable different sdk features.
        for packages in [&[][..], &["-p", "hostile-hook"][..]] {
            run_ok(
                cargo()
                    .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
                    .arg(&dir)
                    .args(packages)
                    .current_dir(repo_root().join("tests/plugins")),
                "building the test plugins",
            );
        }
        dir.join("wasm32-wasip2/release")
    });
    dir.join(format!("{name}.wasm"))
}

/// The `test-swap` strategy built as `version` (each version in a target dir of its own), so
/// that a test can install one version of a plugin and then the next.
pub fn swap_plugin(version: &str) -> PathBuf {
    named_swap_plugin("test-swap", version)
}

/// The `test-swap` strategy built under another name, such as a built-in's.
pub fn named_swap_plugin(name: &str, version: &str) -> PathBuf {
    let dir = target_dir().join(format!("test-plugins-{name}-{version}"));
    run_ok(
        cargo()
            .args(["build", "--release", "--target", "wasm32-wasip2", "-p", "swap", "--target-dir"])
            .arg(&dir)
            .env("HIVEMIND_TEST_SWAP_NAME", name)
            .env("HIVEMIND_TEST_SWAP_VERSION", version)
            .current_dir(repo_root().join("tests/plugins")),
        "building the swap test plugin",
    );
    dir.join("wasm32-wasip2/release/swap.wasm")
}

/// Builds the demo images hivemind-demo:v1, :v2 and :v3, FROM scratch, once per test binary.
pub fn demo_images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        run_ok(
            Command::new("bash").arg(repo_root().join("demo/build-image.sh")).args(["v1", "v2", "v3"]),
            "building the demo images",
        )
    });
}
