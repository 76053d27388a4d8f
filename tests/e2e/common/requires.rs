//! Whether what a test needs is here (a Docker engine, tools, Python modules): run it, or
//! skip it unless CI asks for a failure.

use std::process::Command;

/// Whether to run Docker tests: yes when the engine answers; a skip otherwise, unless
/// HIVEMIND_REQUIRE_DOCKER=1 (as in CI) turns the skip into a failure.
pub fn docker_available(test: &str) -> bool {
    let answers = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !answers {
        if std::env::var("HIVEMIND_REQUIRE_DOCKER").as_deref() == Ok("1") {
            panic!("{test}: HIVEMIND_REQUIRE_DOCKER=1 but no Docker engine answers `docker info`");
        }
        eprintln!("{test}: no Docker engine answers; skipped (set HIVEMIND_REQUIRE_DOCKER=1 to make this a failure)");
    }
    answers
}

/// Whether python3 can import every one of `modules` (test tools from PyPI): yes, or a
/// skip, unless HIVEMIND_REQUIRE_TOOLS=1 (as in CI) turns the skip into a failure.
pub fn python_modules_available(test: &str, modules: &[&str], install: &str) -> bool {
    let script = modules.iter().map(|m| format!("import {m}")).collect::<Vec<_>>().join("; ");
    let ok = Command::new("python3").args(["-c", &script]).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        if std::env::var("HIVEMIND_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{test}: HIVEMIND_REQUIRE_TOOLS=1 but python3 cannot import {modules:?}; {install}");
        }
        eprintln!(
            "{test}: python3 cannot import {modules:?}; skipped ({install}, or set HIVEMIND_REQUIRE_TOOLS=1 to make this a failure)"
        );
    }
    ok
}

/// Whether every one of `tools` is on the PATH: yes, or a skip, unless
/// HIVEMIND_REQUIRE_TOOLS=1 (as in CI) turns the skip into a failure.
pub fn tools_available(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        // Found if it starts at all (`openssl --version` exits 1: its flag is `version`).
        .filter(|tool| Command::new(tool).arg("--version").output().is_err())
        .collect();
    if !missing.is_empty() {
        if std::env::var("HIVEMIND_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!(
                "{test}: HIVEMIND_REQUIRE_TOOLS=1 but {missing:?} cannot be run; apt-get install {}",
                missing.join(" ")
            );
        }
        eprintln!("{test}: {missing:?} cannot be run; skipped (set HIVEMIND_REQUIRE_TOOLS=1 to make this a failure)");
    }
    missing.is_empty()
}
