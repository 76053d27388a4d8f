//! `ab-testing`: run two or more variants side by side, each client sticky to its
//! variant (a header forces one), collect per-variant figures for `duration` seconds,
//! then make the winner the release. The winner is picked by a person
//! (`deployment select-winner`) or, with `--winner-metric`, automatically — but only when
//! the best variant is significantly better than every other one.

use hivemind_sdk::prelude::*;
use hivemind_sdk::stats;
use serde::{Deserialize, Serialize};

struct AbTesting;

const ALPHA: f64 = 0.05;

#[derive(Serialize, Deserialize, Default)]
struct State {
    /// When every variant first served (ms since the epoch): collection starts.
    collecting_since: Option<u64>,
    /// The winner, once known.
    winner: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum WinnerMetric {
    ErrorRate,
    P99Latency,
    Goal,
}

struct Settings {
    duration_ms: u64,
    winner_metric: Option<WinnerMetric>,
    goal_counter: Option<String>,
}

fn settings(d: &Deployment) -> Result<Settings> {
    if d.variants.len() < 2 {
        return Err(Error::msg("ab-testing needs at least two --variant name=...,image=...,percentage=..."));
    }
    let duration: i64 = d.get_or("duration", 3600)?;
    if duration < 0 {
        return Err(Error(format!("duration must be 0 or more seconds; got {duration}")));
    }
    let winner_metric = match d.raw("winner-metric") {
        None => None,
        Some("error-rate") => Some(WinnerMetric::ErrorRate),
        Some("p99-latency") => Some(WinnerMetric::P99Latency),
        Some("goal") => Some(WinnerMetric::Goal),
        Some(other) => {
            return Err(Error(format!("winner-metric must be error-rate, p99-latency or goal; got `{other}`")));
        }
    };
    let goal = d.raw("goal");
    let goal_counter = match goal {
        None => None,
        Some(g) if g.starts_with("header:") && g.len() > 7 => None,
        Some(g) => match g.strip_prefix("counter:") {
            Some(name) if !name.is_empty() => Some(name.to_string()),
            _ => {
                return Err(Error(format!(
                    "goal must be header:NAME (a response header) or counter:NAME (an app counter); got `{g}`"
                )));
            }
        },
    };
    if winner_metric == Some(WinnerMetric::Goal) && goal.is_none() {
        return Err(Error::msg("winner-metric goal needs --goal header:NAME or --goal counter:NAME"));
    }
    Ok(Settings { duration_ms: duration as u64 * 1000, winner_metric, goal_counter })
}

/// A variant's figures for the comparison.
struct Figures {
    name: String,
    requests: u64,
    errors: u64,
    goals: u64,
    buckets: Vec<u64>,
    p99_ms: f64,
}

fn figures(d: &Deployment, s: &Settings) -> Result<Vec<Figures>> {
    d.variants
        .iter()
        .map(|v| {
            let c = metrics::snapshot(&v.release.version)?;
            let goals = match &s.goal_counter {
                Some(name) => metrics::app_counter(&v.release.version, name)? as u64,
                None => c.goals,
            };
            Ok(Figures {
                name: v.release.version.clone(),
                requests: c.requests,
                errors: c.status_5xx + c.connection_errors,
                goals,
                buckets: c.latency_buckets.iter().map(|(_, n)| *n).collect(),
                p99_ms: c.p99_ms,
            })
        })
        .collect()
}

/// The best variant by `metric`, if it is significantly better than each other variant
/// (Bonferroni-corrected); otherwise why not.
fn pick(all: &[Figures], metric: WinnerMetric) -> std::result::Result<(String, String), String> {
    let rate = |x: u64, n: u64| if n == 0 { 0.0 } else { x as f64 / n as f64 };
    let score = |f: &Figures| match metric {
        WinnerMetric::ErrorRate => rate(f.errors, f.requests),
        WinnerMetric::P99Latency => f.p99_ms,
        WinnerMetric::Goal => -rate(f.goals, f.requests),
    };
    let best = all.iter().min_by(|a, b| score(a).total_cmp(&score(b))).expect("two variants or more");
    let alpha = ALPHA / (all.len() - 1) as f64;
    let mut evidence = Vec::new();
    for other in all.iter().filter(|f| f.name != best.name) {
        let test = match metric {
            WinnerMetric::ErrorRate => stats::two_proportions(other.errors, other.requests, best.errors, best.requests),
            WinnerMetric::P99Latency => stats::mann_whitney(&other.buckets, &best.buckets),
            WinnerMetric::Goal => stats::two_proportions(best.goals, best.requests, other.goals, other.requests),
        };
        match test {
            Some(t) if t.significant(alpha) => evidence.push(format!("vs {}: p = {:.4}", other.name, t.p)),
            Some(t) => {
                return Err(format!(
                    "{} is best but not significantly better than {} (p = {:.3}, needs < {:.3})",
                    best.name, other.name, t.p, alpha
                ));
            }
            None => return Err(format!("not enough data to compare {} with {}", best.name, other.name)),
        }
    }
    Ok((best.name.clone(), evidence.join(", ")))
}

fn describe(all: &[Figures]) -> String {
    all.iter()
        .map(|f| {
            let pct = |x: u64| if f.requests == 0 { 0.0 } else { x as f64 * 100.0 / f.requests as f64 };
            format!(
                "{}: {} requests, {:.1}% errors, {:.1}% goals, p99 {:.1} ms",
                f.name,
                f.requests,
                pct(f.errors),
                pct(f.goals),
                f.p99_ms
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Strategy for AbTesting {
    const NAME: &'static str = "ab-testing";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str =
        "Run several variants side by side, sticky per client, and make the winner the release";
    type State = State;

    fn validate(d: &Deployment) -> Result<()> {
        settings(d).map(|_| ())
    }

    fn deploy(d: &Deployment, st: &mut State, cx: &StepContext) -> Result<Step> {
        let s = settings(d)?;
        if let Some(w) = &cx.winner {
            st.winner = Some(w.clone());
        }
        if let Some(winner) = st.winner.clone() {
            return promote(d, &winner);
        }

        // Every variant runs, each with its share of the replicas.
        let mut waiting = 0;
        for v in &d.variants {
            let replicas = containers::scale(&v.release.version, v.release.replicas)?;
            let readiness = probe(&replicas)?;
            check_ready_in_time(d, &readiness)?;
            waiting += readiness.waiting.len();
        }
        if waiting > 0 {
            progress::report(5, &format!("starting {} variants: {waiting} replicas not healthy yet", d.variants.len()));
            return Ok(Step::after_ms(200));
        }
        let split: Vec<Weight> =
            d.variants.iter().map(|v| Weight { version: v.release.version.clone(), weight: v.percentage }).collect();
        routing::set_sticky_split(&split)?;
        let since = *st.collecting_since.get_or_insert_with(now_ms);
        let elapsed = now_ms().saturating_sub(since);
        let all = figures(d, &s)?;
        if elapsed < s.duration_ms {
            let percent = (10 + elapsed * 80 / s.duration_ms.max(1)) as u8;
            progress::report(
                percent,
                &format!("collecting, {} s left: {}", (s.duration_ms - elapsed) / 1000, describe(&all)),
            );
            return Ok(Step::after_ms(1000.min((s.duration_ms - elapsed) as u32).max(1)));
        }
        let how = format!("hivemind deployment select-winner --id {} --variant NAME", d.id);
        let Some(metric) = s.winner_metric else {
            return Ok(Step::AwaitApproval(format!(
                "the test ran its {} s ({}); pick the winner with `{how}`",
                s.duration_ms / 1000,
                describe(&all)
            )));
        };
        match pick(&all, metric) {
            Ok((winner, evidence)) => {
                progress::log(progress::Level::Info, &format!("{winner} wins ({evidence}): {}", describe(&all)));
                st.winner = Some(winner.clone());
                promote(d, &winner)
            }
            Err(why) => Ok(Step::AwaitApproval(format!(
                "no significant winner: {why} ({}); pick one with `{how}`",
                describe(&all)
            ))),
        }
    }
}

/// Makes the winner the release: full replicas, all traffic, the others drained and gone.
fn promote(d: &Deployment, winner: &str) -> Result<Step> {
    let replicas = containers::scale(winner, d.target.replicas)?;
    let readiness = probe(&replicas)?;
    check_ready_in_time(d, &readiness)?;
    if !readiness.waiting.is_empty() {
        return Ok(Step::after_ms(200));
    }
    routing::set_split(&[Weight { version: winner.to_string(), weight: 100 }])?;
    let others: Vec<String> = containers::list()?.into_iter().filter(|r| r.version != winner).map(|r| r.id).collect();
    if !drain_and_stop(&others, 30_000)? {
        return Ok(Step::after_ms(100));
    }
    progress::report(100, &format!("{winner} won and serves on {} replicas", d.target.replicas));
    Ok(Step::Done)
}

hivemind_sdk::export_strategy!(AbTesting);
