//! `hivemind metrics get`: the router's live counts for the versions a deployment
//! compares (stable and canary, or the A/B variants), with the same significance tests
//! the strategies use.

use super::Engine;
use crate::error::UserError;
use crate::router::StatsSnapshot;
use hivemind_sdk::stats;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VersionMetrics {
    pub version: String,
    /// "stable", "canary" or "variant".
    pub role: String,
    pub requests: u64,
    /// 5xx answers and connection errors.
    pub errors: u64,
    pub error_rate: f64,
    pub goals: u64,
    pub goal_rate: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub in_flight: u64,
}

/// One test of `version` against `baseline`.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Comparison {
    pub metric: String,
    pub version: String,
    pub baseline: String,
    pub test: String,
    pub statistic: f64,
    /// One-sided p-value that `version` is worse (or, for goals, better).
    pub p: f64,
    pub verdict: String,
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MetricsView {
    pub deployment_id: String,
    pub strategy: String,
    pub versions: Vec<VersionMetrics>,
    pub comparisons: Vec<Comparison>,
}

fn view(version: &str, role: &str, s: &StatsSnapshot) -> VersionMetrics {
    let errors = s.status_5xx + s.connection_errors;
    let rate = |x: u64| if s.requests == 0 { 0.0 } else { x as f64 / s.requests as f64 };
    VersionMetrics {
        version: version.to_string(),
        role: role.to_string(),
        requests: s.requests,
        errors,
        error_rate: rate(errors),
        goals: s.goals,
        goal_rate: rate(s.goals),
        p50_ms: s.p50_ms,
        p90_ms: s.p90_ms,
        p99_ms: s.p99_ms,
        in_flight: s.in_flight,
    }
}

fn verdict(t: Option<stats::Test>, worse: &str) -> (f64, f64, String) {
    match t {
        None => (0.0, 1.0, "not enough data".into()),
        Some(t) if t.significant(0.05) => (t.statistic, t.p, format!("significantly {worse}")),
        Some(t) => (t.statistic, t.p, "no significant difference".into()),
    }
}

impl Engine {
    pub async fn metrics(&self, id: &str, variant: Option<&str>) -> Result<MetricsView, UserError> {
        let d = self.deployment(id).await?;
        let mut pairs: Vec<(String, &str)> = Vec::new();
        if d.spec.variants.is_empty() {
            if let Some(p) = &d.previous {
                pairs.push((p.version.clone(), "stable"));
            }
            pairs.push((d.target_version.clone(), if d.previous.is_some() { "canary" } else { "stable" }));
        } else {
            pairs.extend(d.spec.variants.iter().map(|v| (v.name.clone(), "variant")));
        }
        if let Some(v) = variant
            && !pairs.iter().any(|(name, _)| name == v)
        {
            let names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
            return Err(UserError::invalid(
                "variant",
                format!("deployment {id} has no variant `{v}`; it has {}", names.join(", ")),
            ));
        }
        let snapshots: Vec<(String, &str, StatsSnapshot)> = pairs
            .into_iter()
            .map(|(v, role)| {
                let s = self.services.router.stats(&d.app, &v).unwrap_or_default();
                (v, role, s)
            })
            .collect();
        let mut comparisons = Vec::new();
        if let Some((baseline, _, base)) = snapshots.first() {
            for (version, _, s) in snapshots.iter().skip(1) {
                if variant.is_some_and(|v| v != version && v != baseline) {
                    continue;
                }
                let errors = |x: &StatsSnapshot| x.status_5xx + x.connection_errors;
                let (statistic, p, v) =
                    verdict(stats::two_proportions(errors(s), s.requests, errors(base), base.requests), "higher");
                comparisons.push(Comparison {
                    metric: "error-rate".into(),
                    version: version.clone(),
                    baseline: baseline.clone(),
                    test: "two-proportion z".into(),
                    statistic,
                    p,
                    verdict: v,
                });
                let counts = |x: &StatsSnapshot| x.latency_buckets.iter().map(|(_, c)| *c).collect::<Vec<_>>();
                let (statistic, p, v) = verdict(stats::mann_whitney(&counts(s), &counts(base)), "slower");
                comparisons.push(Comparison {
                    metric: "latency".into(),
                    version: version.clone(),
                    baseline: baseline.clone(),
                    test: "Mann-Whitney U".into(),
                    statistic,
                    p,
                    verdict: v,
                });
                if s.goals + base.goals > 0 {
                    let (statistic, p, v) =
                        verdict(stats::two_proportions(s.goals, s.requests, base.goals, base.requests), "higher");
                    comparisons.push(Comparison {
                        metric: "goal".into(),
                        version: version.clone(),
                        baseline: baseline.clone(),
                        test: "two-proportion z".into(),
                        statistic,
                        p,
                        verdict: v,
                    });
                }
            }
        }
        let versions = snapshots
            .iter()
            .filter(|(v, _, _)| variant.is_none_or(|want| want == v))
            .map(|(v, role, s)| view(v, role, s))
            .collect();
        Ok(MetricsView { deployment_id: d.id, strategy: d.strategy, versions, comparisons })
    }
}
