//! What the dashboard draws for a deployment under way: every second, the compared
//! versions' error rate and p99 latency over that second, and, for each traffic split the
//! deployment goes through, the same significance tests the strategies run, over the
//! counts of that split alone. The engine samples the router once a second, and the
//! routing capability at each change of split (so that a step's analysis ends where the
//! split did); the samples live in memory (a restart starts the charts afresh) for the
//! deployments under way and the last few that ended.

use crate::api_types::{
    Comparison, Metric, MetricsView, Role, Sample, SampleVersion, SeriesView, StatTest, StepAnalysis, Verdict,
    VersionMetrics,
};
use crate::model::Deployment;
use crate::router::StatsSnapshot;
use hivemind_sdk::stats;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

/// An hour of one-second samples per deployment.
const MAX_SAMPLES: usize = 3600;
/// Finished deployments whose series are kept, newest last.
const KEEP_FINISHED: usize = 20;

pub type Snapshots = Vec<(String, Role, StatsSnapshot)>;

#[derive(Default)]
pub struct Series {
    tracks: Mutex<Tracks>,
}

#[derive(Default)]
struct Tracks {
    by_id: HashMap<String, Track>,
    finished: VecDeque<String>,
}

struct Track {
    strategy: String,
    samples: VecDeque<Sample>,
    steps: Vec<StepAnalysis>,
    /// The counts as of the last sample, and the split then.
    latest: Snapshots,
    split: crate::model::Split,
    /// When the current split began, and the counts then.
    step_from_ms: i64,
    step_start: Snapshots,
    /// The counts when the series began: the totals are counted from there.
    start: Snapshots,
}

/// The counts of each version of `now` made after `base` (from zero for a version `base`
/// does not have).
fn since(now: &Snapshots, base: &Snapshots) -> Snapshots {
    now.iter()
        .map(|(v, role, s)| {
            let before = base.iter().find(|(b, _, _)| b == v).map(|(_, _, b)| s.since(b));
            (v.clone(), *role, before.unwrap_or_else(|| s.clone()))
        })
        .collect()
}

/// The router's counts now of the versions `versions` of `app`.
pub fn snapshots(router: &crate::router::Router, app: &str, versions: Vec<(String, Role)>) -> Snapshots {
    versions
        .into_iter()
        .map(|(v, role)| {
            let s = router.stats(app, &v).unwrap_or_default();
            (v, role, s)
        })
        .collect()
}

impl Track {
    /// The analysis of the split that held from `step_from_ms` to the latest sample.
    fn current_step(&self, to_ms: Option<i64>) -> StepAnalysis {
        let window = since(&self.latest, &self.step_start);
        StepAnalysis {
            from_ms: self.step_from_ms,
            to_ms,
            split: self.split.clone(),
            versions: window.iter().map(|(v, role, s)| version_metrics(v, *role, s)).collect(),
            comparisons: compare(&window, None),
        }
    }
}

impl Series {
    pub fn record(&self, id: &str, strategy: &str, at_ms: i64, split: crate::model::Split, now: Snapshots) {
        let mut tracks = self.tracks.lock().unwrap();
        let Some(track) = tracks.by_id.get_mut(id) else {
            let track = Track {
                strategy: strategy.to_string(),
                samples: VecDeque::new(),
                steps: Vec::new(),
                latest: now.clone(),
                split,
                step_from_ms: at_ms,
                step_start: now.clone(),
                start: now,
            };
            tracks.by_id.insert(id.to_string(), track);
            return;
        };
        let changed = split != track.split;
        // The step loop records every split change at once; the sampler fills the seconds
        // between. A sample covers at least most of a second.
        let last_ms = track.samples.back().map(|s| s.at_ms).unwrap_or(track.step_from_ms);
        if !changed && at_ms - last_ms < 900 {
            return;
        }
        let weight = |version: &str| split.iter().find(|(v, _)| v == version).map(|(_, w)| *w).unwrap_or(0);
        let versions = since(&now, &track.latest)
            .iter()
            .map(|(version, role, second)| {
                let m = version_metrics(version, *role, second);
                SampleVersion {
                    version: m.version,
                    weight: weight(version),
                    requests: m.requests,
                    errors: m.errors,
                    error_rate: m.error_rate,
                    p99_ms: m.p99_ms,
                }
            })
            .collect();
        track.samples.push_back(Sample { at_ms, versions });
        if track.samples.len() > MAX_SAMPLES {
            track.samples.pop_front();
        }
        track.latest = now;
        if changed {
            let closed = track.current_step(Some(at_ms));
            if closed.versions.iter().any(|v| v.requests > 0) {
                track.steps.push(closed);
            }
            track.split = split;
            track.step_from_ms = at_ms;
            track.step_start = track.latest.clone();
        }
    }

    /// A deployment's split changes now: the counts up to this moment close the analysis
    /// of the split that held (`stats` gives a version's counts now).
    pub fn split_changes(
        &self,
        id: &str,
        at_ms: i64,
        split: crate::model::Split,
        stats: impl Fn(&str) -> StatsSnapshot,
    ) {
        let (strategy, now) = {
            let tracks = self.tracks.lock().unwrap();
            let Some(track) = tracks.by_id.get(id) else { return };
            let now: Snapshots = track.latest.iter().map(|(v, role, _)| (v.clone(), *role, stats(v))).collect();
            (track.strategy.clone(), now)
        };
        self.record(id, &strategy, at_ms, split, now);
    }

    /// Closes the series of deployments no longer under way, and forgets the oldest.
    pub fn finish_all_but(&self, live: &HashSet<crate::model::DeploymentId>, at_ms: i64) {
        let mut tracks = self.tracks.lock().unwrap();
        let Tracks { by_id, finished } = &mut *tracks;
        for (id, track) in by_id.iter_mut() {
            if live.contains(id.as_str()) || finished.contains(id) {
                continue;
            }
            let last = track.current_step(Some(at_ms));
            if last.versions.iter().any(|v| v.requests > 0) {
                track.steps.push(last);
            }
            track.step_start = track.latest.clone();
            finished.push_back(id.clone());
        }
        while finished.len() > KEEP_FINISHED {
            if let Some(old) = finished.pop_front() {
                by_id.remove(&old);
            }
        }
    }

    /// Whether a deployment's series is being kept (the sampler has seen it).
    pub fn is_tracked(&self, id: &str) -> bool {
        self.tracks.lock().unwrap().by_id.contains_key(id)
    }

    /// When the newest sample of a deployment was taken, if it has one.
    pub fn last_sample_ms(&self, id: &str) -> Option<i64> {
        self.tracks.lock().unwrap().by_id.get(id).and_then(|t| t.samples.back()).map(|s| s.at_ms)
    }

    /// The samples after `after_ms`, every step, and the totals.
    pub fn view(&self, id: &str, after_ms: i64) -> SeriesView {
        let tracks = self.tracks.lock().unwrap();
        let Some(track) = tracks.by_id.get(id) else {
            return SeriesView { deployment_id: id.to_string(), samples: vec![], steps: vec![], totals: None };
        };
        let mut steps = track.steps.clone();
        if !tracks.finished.contains(&id.to_string()) {
            steps.push(track.current_step(None));
        }
        let since_start = since(&track.latest, &track.start);
        let totals = MetricsView {
            deployment_id: id.into(),
            strategy: track.strategy.clone().into(),
            versions: since_start.iter().map(|(v, role, s)| version_metrics(v, *role, s)).collect(),
            comparisons: compare(&since_start, None),
        };
        SeriesView {
            deployment_id: id.to_string(),
            samples: track.samples.iter().filter(|s| s.at_ms > after_ms).cloned().collect(),
            steps,
            totals: (!track.samples.is_empty()).then_some(totals),
        }
    }
}

pub fn version_metrics(version: &str, role: Role, s: &StatsSnapshot) -> VersionMetrics {
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

/// The versions a deployment compares: stable then canary, or its A/B variants.
pub fn compared_versions(d: &Deployment) -> Vec<(String, Role)> {
    let mut pairs: Vec<(String, Role)> = Vec::new();
    if d.spec.variants.is_empty() {
        if let Some(p) = &d.previous {
            pairs.push((p.version.clone(), Role::Stable));
        }
        pairs.push((d.target_version.clone(), if d.previous.is_some() { Role::Canary } else { Role::Stable }));
    } else {
        pairs.extend(d.spec.variants.iter().map(|v| (v.name.clone(), Role::Variant)));
    }
    pairs
}

/// Every test of one version against another: the canary against stable, and each pair
/// of A/B variants. The tests are one-sided (is the version worse, or for goals better?),
/// so a pair of variants is told the way round that the data leans: "blue vs green"
/// when blue has the higher error rate, "green vs blue" otherwise.
pub fn compare(snapshots: &[(String, Role, StatsSnapshot)], only: Option<&str>) -> Vec<Comparison> {
    let mut comparisons = Vec::new();
    for (i, a) in snapshots.iter().enumerate() {
        for b in snapshots.iter().skip(i + 1) {
            if b.1 != Role::Variant && i > 0 {
                continue;
            }
            if only.is_some_and(|v| v != b.0 && v != a.0) {
                continue;
            }
            let either_way = b.1 == Role::Variant;
            for metric in [Metric::ErrorRate, Metric::Latency, Metric::Goal] {
                if metric == Metric::Goal && a.2.goals + b.2.goals == 0 {
                    continue;
                }
                let forward = test(metric, b, a);
                let leans_the_other_way = forward.verdict != Verdict::NotEnoughData && forward.p > 0.5;
                comparisons.push(if either_way && leans_the_other_way { test(metric, a, b) } else { forward });
            }
        }
    }
    comparisons
}

/// One one-sided test of `version` against `baseline`.
fn test(
    metric: Metric,
    (version, _, s): &(String, Role, StatsSnapshot),
    (baseline, _, base): &(String, Role, StatsSnapshot),
) -> Comparison {
    let errors = |x: &StatsSnapshot| x.status_5xx + x.connection_errors;
    let counts = |x: &StatsSnapshot| x.latency_buckets.iter().map(|(_, c)| *c).collect::<Vec<_>>();
    let (test, (statistic, p, verdict)) = match metric {
        Metric::ErrorRate => (
            StatTest::TwoProportionZ,
            verdict(
                stats::two_proportions(errors(s), s.requests, errors(base), base.requests),
                Verdict::SignificantlyWorse,
            ),
        ),
        Metric::Latency => (
            StatTest::MannWhitneyU,
            verdict(stats::mann_whitney(&counts(s), &counts(base)), Verdict::SignificantlyWorse),
        ),
        Metric::Goal => (
            StatTest::TwoProportionZ,
            verdict(
                stats::two_proportions(s.goals, s.requests, base.goals, base.requests),
                Verdict::SignificantlyBetter,
            ),
        ),
    };
    Comparison { metric, version: version.clone(), baseline: baseline.clone(), test, statistic, p, verdict }
}
