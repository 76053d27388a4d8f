//! `hivemind plugin test`, the strategy simulator: the six built-in strategies end every
//! scenario as they should, and the hostile test plugins are reported for what they do,
//! each run in simulated time, without a server.

use crate::common::{target_dir, test_plugin};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// `plugin test FILE ARGS --output json`: the exit code and the report.
fn simulate(file: &Path, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_hivemind"))
        .args(["plugin", "test"])
        .arg(file)
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

fn scenario<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["scenarios"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()
}

fn builtin(name: &str) -> std::path::PathBuf {
    target_dir().join(format!("wasm-plugins/wasm32-wasip2/release/{name}.wasm"))
}

#[test]
fn the_six_built_in_strategies_end_every_simulated_scenario_as_they_should() {
    for name in ["simple", "rolling_update", "zero_downtime", "blue_green", "canary", "ab_testing"] {
        let (code, report) = simulate(&builtin(name), &[]);
        assert_eq!(code, 0, "{name}: {report:#}");
        let scenarios = report["scenarios"].as_array().unwrap();
        assert_eq!(scenarios.len(), 4, "{name}");
        for s in scenarios {
            assert_eq!(s["passed"], true, "{name}, {}: {}", s["name"], s["verdict"]);
        }
        assert_eq!(scenario(&report, "healthy release")["ending"]["ended"], "completed", "{name}");
        let never = scenario(&report, "release that never gets healthy");
        assert_eq!(never["ending"]["ended"], "rolled_back", "{name}");
        let crash = scenario(&report, "server crash between two steps");
        assert!(crash["timeline"].to_string().contains("the server crashed after step 3"), "{name}: {crash}");
        eprintln!("{name}: 4 scenarios in {} ms", report["wall_ms"]);
    }
    // The A/B test runs with variants, and the operator picks the better one.
    let (_, ab) = simulate(&builtin("ab_testing"), &[]);
    assert_eq!(ab["variants"], serde_json::json!(["v2-a", "v2-b"]));
    assert!(scenario(&ab, "error spike at 50%")["verdict"].as_str().unwrap().contains("v2-b serves alone"), "{ab}");

    // A canary that stops at 50% sees the spike there and rolls back; the rolling update,
    // which does not analyse traffic, completes and its users see the errors.
    let (code, canary) = simulate(&builtin("canary"), &["--param", "steps=25,50,75", "--param", "interval=10"]);
    assert_eq!(code, 0, "{canary:#}");
    let spike = scenario(&canary, "error spike at 50%");
    assert_eq!(spike["ending"]["ended"], "rolled_back", "{spike}");
    assert!(spike["timeline"].to_string().contains("rolling back"), "{spike}");
    let (_, rolling) = simulate(&builtin("rolling_update"), &[]);
    let spike = scenario(&rolling, "error spike at 50%");
    let healthy = scenario(&rolling, "healthy release");
    assert_eq!(spike["ending"]["ended"], "completed");
    assert!(spike["failed_requests"].as_u64() > healthy["failed_requests"].as_u64(), "{spike}");
}

#[test]
fn hostile_plugins_are_reported_for_what_they_do() {
    let victim = ["--param", "victim=other-app-1"];
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("spin", vec![], "ran out of fuel (an endless loop?)"),
        ("hog", vec![], "more memory than its limit"),
        ("panicker", vec![], "it panicked"),
        ("trespasser", victim.to_vec(), "replica `other-app-1` belongs to app `other-app`"),
        ("hostile", vec!["--param", "mode=busy"], "500 times in a row and changed nothing: a busy loop"),
        (
            "hostile",
            vec!["--param", "mode=bad-rollback"],
            "the rollback failed too (the rollback fails too, on purpose)",
        ),
        ("hostile", vec!["--param", "mode=deep-step"], "usually its own stack overflowed"),
        ("noop", vec![], "it completed, but the split serves v1"),
    ];
    for (plugin, args, expected) in cases {
        let (code, report) = simulate(&test_plugin(plugin), &args);
        assert_eq!(code, 1, "{plugin} {args:?}: {report:#}");
        let healthy = scenario(&report, "healthy release");
        assert_eq!(healthy["passed"], false, "{plugin}");
        let said = format!("{} {}", healthy["verdict"], healthy["timeline"]);
        assert!(said.contains(expected), "{plugin} {args:?}: expected `{expected}` in {said}");
        eprintln!("{plugin} {args:?}: {} in {} ms", healthy["verdict"], report["wall_ms"]);
    }
    // A hook is not a strategy: said so, and nothing runs.
    let out = Command::new(env!("CARGO_BIN_EXE_hivemind"))
        .args(["plugin", "test"])
        .arg(test_plugin("hostile_hook"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(2) && stderr.contains("simulates strategies"), "{stderr}");
}

/// What a deployment went through, comparable between a server and the simulator: the
/// traffic splits in order and the closing message, with version labels as the simulator
/// names them (`v1`, `v2`), images as `<image>`, and a failure's own words (a probe's
/// address differs) left out.
#[derive(Debug, PartialEq)]
struct Course {
    ended: String,
    splits: Vec<String>,
    last: String,
}

fn normalised(line: &str, images: &[&str]) -> String {
    let mut line = line.to_string();
    for image in images {
        line = line.replace(image, "<image>");
    }
    let line = line.replace("r1", "v1").replace("r2", "v2");
    // "…reason…; rolled back: v1 serves again" keeps what the machine said.
    match line.rfind("; ") {
        Some(at) => line[at + 2..].to_string(),
        None => line,
    }
}

/// The splits a timeline or an event log records, in order.
fn splits<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    lines
        .filter_map(|l| l.strip_prefix("traffic split set to "))
        .map(|s| s.replace("r1", "v1").replace("r2", "v2"))
        .collect()
}

/// The simulator and a real server (process runtime, real replicas, real router), given
/// the same strategy, parameters and replicas, and a release that is healthy or never
/// gets healthy, end alike: the same verdict, the same splits in the same order, the same
/// closing message. Both drive `engine::machine`; this checks the worlds agree too.
#[test]
fn the_simulator_predicts_what_a_real_server_does() {
    let server = crate::common::Server::start("process");
    let v1 = crate::common::demo_command("v1", "");
    let v2 = crate::common::demo_command("v2", "");
    for (strategy, file) in [
        ("simple", "simple"),
        ("rolling-update", "rolling_update"),
        ("zero-downtime", "zero_downtime"),
        ("blue-green", "blue_green"),
    ] {
        let flags = crate::scenarios::flags(strategy);
        let mut params = Vec::new();
        for pair in flags.chunks(2) {
            params.extend(["--param".to_string(), format!("{}={}", pair[0].trim_start_matches("--"), pair[1])]);
        }
        let mut args: Vec<&str> = params.iter().map(String::as_str).collect();
        // Replicas that start at once, as the demo process does (in milliseconds).
        args.extend(["--replicas", "3", "--start-time", "0"]);
        let (_, report) = simulate(&builtin(file), &args);
        for (scenario_name, sick) in [("healthy release", false), ("release that never gets healthy", true)] {
            let simulated = scenario(&report, scenario_name);
            let timeline: Vec<&str> =
                simulated["timeline"].as_array().unwrap().iter().map(|e| e[1].as_str().unwrap()).collect();
            let predicted = Course {
                ended: simulated["ending"]["ended"].as_str().unwrap().to_string(),
                splits: splits(timeline.iter().copied()),
                last: normalised(timeline.last().unwrap(), &["registry.local/sim:v2", "registry.local/sim:v1"]),
            };

            let app = format!("{}-{}", strategy.replace('-', ""), if sick { "sick" } else { "ok" });
            let mut deploy = vec!["--strategy", strategy, "--replicas", "3"];
            deploy.extend(&flags);
            server.deploy(&app, &v1, &deploy).ok();
            if sick {
                deploy.extend([crate::scenarios::SICK, "--health-check-timeout", "3"]);
            }
            let run = server.deploy(&app, &v2, &deploy);
            let d = run.json();
            let id = d["id"].as_str().unwrap();
            let events = server.api(&format!("/api/deployments/{id}/events"));
            let messages: Vec<&str> =
                events.as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap()).collect();
            let ended = match d["status"].as_str().unwrap() {
                // A deploy phase that failed and was rolled back ends `failed` on a server.
                "failed" if d["phase"] == "rollback" => "rolled_back",
                other => other,
            };
            let served = Course {
                ended: ended.to_string(),
                splits: splits(messages.iter().copied()),
                last: normalised(d["message"].as_str().unwrap(), &[&v2, &v1]),
            };
            assert_eq!(
                served, predicted,
                "{strategy}, {scenario_name}: the server (left) and the simulator (right) differ"
            );
        }
    }
}
