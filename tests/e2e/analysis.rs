//! Canary analysis and A/B testing end to end with the process runtime, under load
//! through the router (tests/docker.rs runs the same scenarios on Docker).

use crate::common::{Load, Server, demo_command};
use crate::scenarios::Images;
use std::time::Duration;

#[test]
fn a_healthy_canary_walks_its_steps_and_completes() {
    crate::scenarios::healthy_canary_completes(Images::Process);
}

#[test]
fn a_canary_with_a_20_percent_error_rate_rolls_back_at_its_first_analysis() {
    crate::scenarios::failing_canary_rolls_back(Images::Process);
}

#[test]
fn a_canary_without_enough_traffic_pauses_as_inconclusive() {
    crate::scenarios::quiet_canary_is_inconclusive(Images::Process);
}

#[test]
fn an_ab_test_of_three_variants_splits_sticks_and_takes_the_chosen_winner() {
    crate::scenarios::ab_test_with_manual_winner(Images::Process);
}

/// Two variants, one failing 30% of its requests: with --winner-metric error-rate the
/// other wins on its own. Two identical variants: no winner is declared.
#[test]
fn automatic_winner_selection_needs_a_significant_difference() {
    for (bad_flags, expect_winner) in [("--error-rate 0.3", true), ("", false)] {
        let server = Server::start("process");
        server
            .cli(&[
                "app",
                "deploy",
                "--name",
                "auto",
                "--image",
                &demo_command("v1", ""),
                "--health-check-path",
                "/health",
            ])
            .ok();
        let port = server.app_port("auto");
        let good = format!("name=good,image={},percentage=50", demo_command("good", ""));
        let other = format!("name=other,image={},percentage=50", demo_command("other", bad_flags));
        let load = Load::start(port, 4);
        let d = server
            .cli(&[
                "app",
                "deploy",
                "--output",
                "json",
                "--name",
                "auto",
                "--strategy",
                "ab-testing",
                "--variant",
                &good,
                "--variant",
                &other,
                "--duration",
                "3",
                "--winner-metric",
                "error-rate",
                "--health-check-path",
                "/health",
            ])
            .ok()
            .json();
        let report = load.stop();
        if expect_winner {
            assert_eq!(d["status"], "completed", "{d}");
            assert_eq!(d["winner"], "good");
            assert!(report.failures.iter().all(|f| f.starts_with("500")), "only the bad variant's own errors");
        } else {
            assert_eq!(d["status"], "awaiting_approval", "{d}");
            assert!(d["message"].as_str().unwrap().contains("no significant winner"), "{d}");
            report.assert_no_failures("identical variants");
            let metrics = server.cli_json(&["metrics", "get", "--deployment-id", d["id"].as_str().unwrap()]);
            assert_eq!(metrics["versions"].as_array().unwrap().len(), 2);
            assert!(
                metrics["comparisons"].as_array().unwrap().iter().any(|c| c["metric"] == "error-rate"),
                "{metrics}"
            );
            server.cli(&["deployment", "abort", "--id", d["id"].as_str().unwrap()]).ok();
            let end = server.wait_for(d["id"].as_str().unwrap(), Duration::from_secs(30));
            assert_eq!(end["status"], "aborted");
        }
    }
}
