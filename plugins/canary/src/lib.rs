//! `canary`: run the new version beside the stable one, give it `percentage` of the
//! traffic, and walk through `steps`. At each step it analyses canary against stable on
//! the same window: error rates with a two-proportion z-test, latencies with a
//! Mann-Whitney U test on the router's histograms. Too little traffic is inconclusive
//! and pauses for a person; a significant regression past the limits rolls back at once.

use hivemind_sdk::prelude::*;
use hivemind_sdk::stats;
use serde::{Deserialize, Serialize};

struct Canary;

/// Significance level of both tests.
const ALPHA: f64 = 0.05;

#[derive(Serialize, Deserialize, Default, Clone, Debug)]
struct Window {
    requests: u64,
    errors: u64,
    buckets: Vec<u64>,
    app_requests: f64,
    app_errors: f64,
}

#[derive(Serialize, Deserialize, Default)]
struct State {
    /// Index into the schedule of traffic shares.
    step: usize,
    /// When this step's analysis window began, and the counts then.
    window_start: Option<(u64, Window, Window)>,
    /// The promotions already spent on inconclusive windows: each one needs its own.
    #[serde(default)]
    promotions_used: u32,
}

struct Settings {
    schedule: Vec<u32>,
    interval_ms: u64,
    max_error_rate: f64,
    max_p99_ms: Option<f64>,
    min_requests: u64,
    app_counters: Option<(String, String)>,
}

fn settings(d: &Deployment) -> Result<Settings> {
    let steps = hivemind_sdk::percentages(d.raw("steps").unwrap_or(""))?;
    let percentage: u32 = match d.raw("percentage") {
        None => steps.first().copied().unwrap_or(20),
        Some(raw) => raw
            .trim()
            .trim_end_matches('%')
            .parse::<u32>()
            .ok()
            .filter(|p| (1..=100).contains(p))
            .ok_or_else(|| Error(format!("percentage must be from 1 to 100; got `{raw}`")))?,
    };
    let mut schedule = vec![percentage];
    schedule.extend(steps.into_iter().filter(|s| *s > percentage));
    if schedule.last() != Some(&100) {
        schedule.push(100);
    }
    // A rollback of a completed deployment brings back a release that served before: it
    // goes straight to all traffic, without steps and analysis.
    if context::rollback_of().is_some() {
        schedule = vec![100];
    }
    let interval: i64 = d.get_or("interval", 60)?;
    if interval < 0 {
        return Err(Error(format!("interval must be 0 or more seconds; got {interval}")));
    }
    let max_error_rate: f64 = d.get_or("max-error-rate", 0.01)?;
    if !(0.0..=1.0).contains(&max_error_rate) {
        return Err(Error(format!("max-error-rate is a fraction from 0 to 1 (0.01 = 1%); got {max_error_rate}")));
    }
    let max_p99_ms: Option<f64> = d.get("max-p99-latency-ms")?;
    let min_requests: i64 = d.get_or("min-requests", 50)?;
    if min_requests < 1 {
        return Err(Error(format!("min-requests must be at least 1; got {min_requests}")));
    }
    let app_counters = d.raw("metrics-endpoint").map(|_| {
        (
            d.raw("requests-counter").unwrap_or("http_requests_total").to_string(),
            d.raw("errors-counter").unwrap_or("http_errors_total").to_string(),
        )
    });
    Ok(Settings {
        schedule,
        interval_ms: interval as u64 * 1000,
        max_error_rate,
        max_p99_ms,
        min_requests: min_requests as u64,
        app_counters,
    })
}

fn window(version: &str, app_counters: &Option<(String, String)>) -> Result<Window> {
    let c = metrics::snapshot(version)?;
    let (app_requests, app_errors) = match app_counters {
        Some((requests, errors)) => (metrics::app_counter(version, requests)?, metrics::app_counter(version, errors)?),
        None => (0.0, 0.0),
    };
    Ok(Window {
        requests: c.requests,
        errors: c.status_5xx + c.connection_errors,
        buckets: c.latency_buckets.iter().map(|(_, n)| *n).collect(),
        app_requests,
        app_errors,
    })
}

fn since(now: &Window, start: &Window) -> Window {
    Window {
        requests: now.requests - start.requests.min(now.requests),
        errors: now.errors - start.errors.min(now.errors),
        buckets: now
            .buckets
            .iter()
            .zip(start.buckets.iter().chain(std::iter::repeat(&0)))
            .map(|(a, b)| a - b.min(a))
            .collect(),
        app_requests: (now.app_requests - start.app_requests).max(0.0),
        app_errors: (now.app_errors - start.app_errors).max(0.0),
    }
}

/// The p99 of a window's histogram, given the router's bucket bounds.
fn p99(bounds: &[f64], buckets: &[u64]) -> f64 {
    let pairs: Vec<(f64, u64)> = bounds.iter().copied().zip(buckets.iter().copied()).collect();
    quantile(&pairs, 0.99)
}

/// The upper bounds of the router's latency buckets (the last is infinite, which JSON
/// state could not hold, so they are read fresh rather than saved).
fn bounds(version: &str) -> Result<Vec<f64>> {
    Ok(metrics::snapshot(version)?.latency_buckets.iter().map(|(b, _)| *b).collect())
}

fn quantile(buckets: &[(f64, u64)], q: f64) -> f64 {
    let total: u64 = buckets.iter().map(|(_, c)| c).sum();
    if total == 0 {
        return 0.0;
    }
    let rank = q * total as f64;
    let (mut seen, mut lower) = (0u64, 0.0);
    for &(upper, count) in buckets {
        if count > 0 && (seen + count) as f64 >= rank {
            return if upper.is_finite() {
                lower + (upper - lower) * (rank - seen as f64) / count as f64
            } else {
                lower
            };
        }
        seen += count;
        if upper.is_finite() {
            lower = upper;
        }
    }
    lower
}

/// Why an analysis window says stop, or None when it does not.
fn regression(s: &Settings, canary: &Window, stable: &Window, share: u32, bounds: &[f64]) -> Option<String> {
    let rate = |w: &Window| if w.requests == 0 { 0.0 } else { w.errors as f64 / w.requests as f64 };
    if let Some(t) = stats::two_proportions(canary.errors, canary.requests, stable.errors, stable.requests) {
        if t.significant(ALPHA) && rate(canary) > s.max_error_rate {
            return Some(format!(
                "canary analysis failed at {share}%: error rate {:.1}% (canary, {} of {}) vs {:.1}% (stable, {} of {}); \
                 two-proportion z = {:.2}, p = {:.4}: significantly higher, and above max-error-rate {:.1}%",
                rate(canary) * 100.0,
                canary.errors,
                canary.requests,
                rate(stable) * 100.0,
                stable.errors,
                stable.requests,
                t.z,
                t.p,
                s.max_error_rate * 100.0
            ));
        }
    }
    if s.app_counters.is_some() && canary.app_requests > 0.0 && stable.app_requests > 0.0 {
        let (ce, cr, se, sr) = (
            canary.app_errors as u64,
            canary.app_requests as u64,
            stable.app_errors as u64,
            stable.app_requests as u64,
        );
        if let Some(t) = stats::two_proportions(ce, cr, se, sr) {
            let app_rate = ce as f64 / cr.max(1) as f64;
            if t.significant(ALPHA) && app_rate > s.max_error_rate {
                return Some(format!(
                    "canary analysis failed at {share}%: the app's own error rate {:.1}% (canary) vs {:.1}% (stable); \
                     two-proportion z = {:.2}, p = {:.4}: significantly higher",
                    app_rate * 100.0,
                    se as f64 / sr.max(1) as f64 * 100.0,
                    t.z,
                    t.p
                ));
            }
        }
    }
    if let Some(max) = s.max_p99_ms {
        if let Some(t) = stats::mann_whitney(&canary.buckets, &stable.buckets) {
            let (cp, sp) = (p99(bounds, &canary.buckets), p99(bounds, &stable.buckets));
            if t.significant(ALPHA) && cp > max {
                return Some(format!(
                    "canary analysis failed at {share}%: p99 latency {cp:.1} ms (canary) vs {sp:.1} ms (stable); \
                     Mann-Whitney U = {:.0}, p = {:.4}: significantly slower, and above max-p99-latency-ms {max}",
                    t.statistic, t.p
                ));
            }
        }
    }
    None
}

impl Strategy for Canary {
    const NAME: &'static str = "canary";
    const VERSION: &'static str = "1.0.0";
    const DESCRIPTION: &'static str =
        "Shift traffic to the new version step by step, analysing it against stable at each step";
    type State = State;

    fn validate(d: &Deployment) -> Result<()> {
        no_variants(d)?;
        settings(d).map(|_| ())
    }

    fn deploy(d: &Deployment, st: &mut State, cx: &StepContext) -> Result<Step> {
        let s = settings(d)?;
        let n = d.target.replicas;
        let canary = d.target.version.clone();
        let Some(stable) = d.previous.as_ref().map(|p| p.version.clone()) else {
            // A first release has nothing to compare with: it simply starts.
            let replicas = containers::scale(&canary, n)?;
            let readiness = probe(&replicas)?;
            check_ready_in_time(d, &readiness)?;
            if !readiness.waiting.is_empty() {
                return Ok(Step::after_ms(200));
            }
            if !cx.verified {
                routing::set_split(&[Weight { version: canary.clone(), weight: 0 }])?;
                return Ok(Step::Verify);
            }
            routing::set_split(&[Weight { version: canary.clone(), weight: 100 }])?;
            return Ok(Step::Done);
        };
        let share = s.schedule[st.step.min(s.schedule.len() - 1)];

        // Replicas follow the canary's share of traffic (at least one).
        let replicas = containers::scale(&canary, (n * share).div_ceil(100).max(1))?;
        let readiness = probe(&replicas)?;
        check_ready_in_time(d, &readiness)?;
        if !readiness.waiting.is_empty() {
            progress::report(
                5,
                &format!("starting canary {canary}: {}/{} healthy", readiness.ready.len(), replicas.len()),
            );
            return Ok(Step::after_ms(200));
        }
        if !cx.verified {
            // The deployment's verify hooks run while the canary is reachable on its preview
            // route (the header x-hivemind-variant) and before any traffic moves to it.
            routing::set_split(&[
                Weight { version: stable.clone(), weight: 100 },
                Weight { version: canary.clone(), weight: 0 },
            ])?;
            progress::report(5, &format!("verifying canary {canary} on its preview route"));
            return Ok(Step::Verify);
        }
        if share >= 100 {
            routing::set_split(&[Weight { version: canary.clone(), weight: 100 }])?;
            let old: Vec<String> =
                containers::list()?.into_iter().filter(|r| r.version != canary).map(|r| r.id).collect();
            if !drain_and_stop(&old, 30_000)? {
                return Ok(Step::after_ms(100));
            }
            progress::report(100, &format!("{canary} serves all traffic on {n} replicas"));
            return Ok(Step::Done);
        }
        routing::set_split(&[
            Weight { version: stable.clone(), weight: 100 - share },
            Weight { version: canary.clone(), weight: share },
        ])?;

        let now = now_ms();
        let Some((started, canary_start, stable_start)) = st.window_start.clone() else {
            st.window_start = Some((now, window(&canary, &s.app_counters)?, window(&stable, &s.app_counters)?));
            progress::log(
                progress::Level::Info,
                &format!("canary at {share}%: analysing for {} s", s.interval_ms / 1000),
            );
            return Ok(Step::after_ms(1000));
        };
        let c = since(&window(&canary, &s.app_counters)?, &canary_start);
        let b = since(&window(&stable, &s.app_counters)?, &stable_start);
        let enough = c.requests >= s.min_requests && b.requests >= s.min_requests;
        // A regression rolls back at once, without waiting for the interval to end.
        if enough {
            if let Some(reason) = regression(&s, &c, &b, share, &bounds(&canary)?) {
                return Ok(Step::Failed(reason));
            }
        }
        let elapsed = now.saturating_sub(started);
        // Progress rises through the window, from the last step's share to this one's.
        let from = if st.step == 0 { 0 } else { s.schedule[st.step - 1] } as u64;
        let through = (share as u64 - from) * elapsed.min(s.interval_ms) / s.interval_ms.max(1);
        let percent = ((from + through) * 90 / 100) as u8;
        if elapsed < s.interval_ms {
            progress::report(
                percent,
                &format!(
                    "canary at {share}%: {} canary and {} stable requests, {} s of analysis left",
                    c.requests,
                    b.requests,
                    (s.interval_ms - elapsed) / 1000
                ),
            );
            return Ok(Step::after_ms(1000.min((s.interval_ms - elapsed) as u32).max(1)));
        }
        let promotions = context::promotions();
        if !enough && promotions <= st.promotions_used {
            return Ok(Step::AwaitApproval(format!(
                "canary analysis at {share}% inconclusive: canary got {} and stable {} requests in {} s, and at least {} each are needed \
                 (--min-requests); promote to go on anyway, or abort",
                c.requests,
                b.requests,
                elapsed / 1000,
                s.min_requests
            )));
        }
        if !enough {
            st.promotions_used = promotions;
        }
        let rate = |w: &Window| if w.requests == 0 { 0.0 } else { w.errors as f64 * 100.0 / w.requests as f64 };
        let verdict = if enough { "pass" } else { "inconclusive, promoted by request" };
        progress::log(
            progress::Level::Info,
            &format!(
                "canary analysis at {share}%: error rate {:.2}% (canary, {} requests) vs {:.2}% (stable, {}): {verdict}",
                rate(&c),
                c.requests,
                rate(&b),
                b.requests
            ),
        );
        st.step += 1;
        st.window_start = None;
        Ok(Step::after_ms(0))
    }
}

hivemind_sdk::export_strategy!(Canary);
