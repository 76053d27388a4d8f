//! `hivemind metrics get`: the router's live counts for the versions a deployment
//! compares (stable and canary, or the A/B variants), with the same significance tests
//! the strategies use.

use super::Engine;
use crate::api_types::{Comparison, Metric, MetricsView, Role, StatTest, Verdict, VersionMetrics};
use crate::error::UserError;
use crate::router::StatsSnapshot;
use hivemind_sdk::stats;

fn view(version: &str, role: Role, s: &StatsSnapshot) -> VersionMetrics {
    let errors = s.status_5xx + s.connection_errors;
    let rate = |x: u64| if s.requests == 0 { 0.0 } else { x as f64 / s.requests as f64 };
    VersionMetrics {
        version: version.to_string(),
        role,
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

/// The statistic, the p-value and the verdict of a test; `significant` is what a
/// significant result means for the version (worse, or, for goals, better).
fn verdict(t: Option<stats::Test>, significant: Verdict) -> (f64, f64, Verdict) {
    match t {
        None => (0.0, 1.0, Verdict::NotEnoughData),
        Some(t) if t.significant(0.05) => (t.statistic, t.p, significant),
        Some(t) => (t.statistic, t.p, Verdict::NoSignificantDifference),
    }
}

impl Engine {
    pub async fn metrics(&self, id: &str, variant: Option<&str>) -> Result<MetricsView, UserError> {
        let d = self.deployment(id).await?;
        let mut pairs: Vec<(String, Role)> = Vec::new();
        if d.spec.variants.is_empty() {
            if let Some(p) = &d.previous {
                pairs.push((p.version.clone(), Role::Stable));
            }
            pairs.push((d.target_version.clone(), if d.previous.is_some() { Role::Canary } else { Role::Stable }));
        } else {
            pairs.extend(d.spec.variants.iter().map(|v| (v.name.clone(), Role::Variant)));
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
        // What the router counted up to now, not as of the last pull.
        self.services.router.refresh().await;
        let snapshots: Vec<(String, Role, StatsSnapshot)> = pairs
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
                let (statistic, p, v) = verdict(
                    stats::two_proportions(errors(s), s.requests, errors(base), base.requests),
                    Verdict::SignificantlyWorse,
                );
                comparisons.push(Comparison {
                    metric: Metric::ErrorRate,
                    version: version.clone(),
                    baseline: baseline.clone(),
                    test: StatTest::TwoProportionZ,
                    statistic,
                    p,
                    verdict: v,
                });
                let counts = |x: &StatsSnapshot| x.latency_buckets.iter().map(|(_, c)| *c).collect::<Vec<_>>();
                let (statistic, p, v) =
                    verdict(stats::mann_whitney(&counts(s), &counts(base)), Verdict::SignificantlyWorse);
                comparisons.push(Comparison {
                    metric: Metric::Latency,
                    version: version.clone(),
                    baseline: baseline.clone(),
                    test: StatTest::MannWhitneyU,
                    statistic,
                    p,
                    verdict: v,
                });
                if s.goals + base.goals > 0 {
                    let (statistic, p, v) = verdict(
                        stats::two_proportions(s.goals, s.requests, base.goals, base.requests),
                        Verdict::SignificantlyBetter,
                    );
                    comparisons.push(Comparison {
                        metric: Metric::Goal,
                        version: version.clone(),
                        baseline: baseline.clone(),
                        test: StatTest::TwoProportionZ,
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
            .map(|(v, role, s)| view(v, *role, s))
            .collect();
        Ok(MetricsView { deployment_id: d.id, strategy: d.strategy, versions, comparisons })
    }
}
