//! Per-version request counts and a latency histogram, all atomics: the proxy's hot path
//! never takes a lock to count.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds of the latency buckets, in milliseconds. The last bucket is unbounded.
pub const BUCKETS_MS: [f64; 16] =
    [1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0];

#[derive(Default)]
pub struct VersionStats {
    pub requests: AtomicU64,
    pub status_2xx: AtomicU64,
    pub status_3xx: AtomicU64,
    pub status_4xx: AtomicU64,
    pub status_5xx: AtomicU64,
    pub connection_errors: AtomicU64,
    pub in_flight: AtomicU64,
    /// Responses that carried the app's goal header.
    pub goals: AtomicU64,
    latency: [AtomicU64; BUCKETS_MS.len() + 1],
}

/// A point-in-time copy of a version's counts.
#[derive(Debug, Clone, Default, serde::Serialize, PartialEq)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub connection_errors: u64,
    pub in_flight: u64,
    pub goals: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    /// (upper bound in ms, count) per bucket; the last bound is infinity.
    pub latency_buckets: Vec<(f64, u64)>,
}

/// A version's counters as numbers: what the router process hands the control plane, and
/// a new router process takes over from the one it replaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RawCounts {
    pub requests: u64,
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub connection_errors: u64,
    pub in_flight: u64,
    pub goals: u64,
    pub latency: [u64; BUCKETS_MS.len() + 1],
}

impl RawCounts {
    /// These counts on top of `base` (a router process restarted since `base` was seen:
    /// its counters began again at zero). In-flight is not a counter: it is taken as is.
    pub fn after(&self, base: &RawCounts) -> RawCounts {
        let mut sum = *self;
        for (a, b) in [
            (&mut sum.requests, base.requests),
            (&mut sum.status_2xx, base.status_2xx),
            (&mut sum.status_3xx, base.status_3xx),
            (&mut sum.status_4xx, base.status_4xx),
            (&mut sum.status_5xx, base.status_5xx),
            (&mut sum.connection_errors, base.connection_errors),
            (&mut sum.goals, base.goals),
        ] {
            *a += b;
        }
        for (a, b) in sum.latency.iter_mut().zip(base.latency) {
            *a += b;
        }
        sum
    }
}

impl VersionStats {
    /// The counters as numbers.
    pub fn raw(&self) -> RawCounts {
        RawCounts {
            requests: self.requests.load(Relaxed),
            status_2xx: self.status_2xx.load(Relaxed),
            status_3xx: self.status_3xx.load(Relaxed),
            status_4xx: self.status_4xx.load(Relaxed),
            status_5xx: self.status_5xx.load(Relaxed),
            connection_errors: self.connection_errors.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            goals: self.goals.load(Relaxed),
            latency: std::array::from_fn(|i| self.latency[i].load(Relaxed)),
        }
    }

    /// Makes the counters `raw`: the control plane's mirror of the router process's counts,
    /// or a new router process taking over the counts of the one it replaces.
    pub fn set(&self, raw: &RawCounts) {
        self.requests.store(raw.requests, Relaxed);
        self.status_2xx.store(raw.status_2xx, Relaxed);
        self.status_3xx.store(raw.status_3xx, Relaxed);
        self.status_4xx.store(raw.status_4xx, Relaxed);
        self.status_5xx.store(raw.status_5xx, Relaxed);
        self.connection_errors.store(raw.connection_errors, Relaxed);
        self.in_flight.store(raw.in_flight, Relaxed);
        self.goals.store(raw.goals, Relaxed);
        for (bucket, n) in self.latency.iter().zip(raw.latency) {
            bucket.store(n, Relaxed);
        }
    }

    /// Counts a finished exchange with the status the client saw.
    pub fn record(&self, status: u16, latency_ms: f64) {
        let class = match status {
            200..=299 => &self.status_2xx,
            300..=399 => &self.status_3xx,
            400..=499 => &self.status_4xx,
            _ => &self.status_5xx,
        };
        class.fetch_add(1, Relaxed);
        let bucket = BUCKETS_MS.iter().position(|b| latency_ms <= *b).unwrap_or(BUCKETS_MS.len());
        self.latency[bucket].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let buckets: Vec<(f64, u64)> = self
            .latency
            .iter()
            .enumerate()
            .map(|(i, c)| (BUCKETS_MS.get(i).copied().unwrap_or(f64::INFINITY), c.load(Relaxed)))
            .collect();
        StatsSnapshot {
            requests: self.requests.load(Relaxed),
            status_2xx: self.status_2xx.load(Relaxed),
            status_3xx: self.status_3xx.load(Relaxed),
            status_4xx: self.status_4xx.load(Relaxed),
            status_5xx: self.status_5xx.load(Relaxed),
            connection_errors: self.connection_errors.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            goals: self.goals.load(Relaxed),
            p50_ms: quantile(&buckets, 0.50),
            p90_ms: quantile(&buckets, 0.90),
            p99_ms: quantile(&buckets, 0.99),
            latency_buckets: buckets,
        }
    }
}

impl StatsSnapshot {
    /// What was counted after `base` was taken (a later snapshot of the same counters),
    /// with its own quantiles: the figures of one second, or of one traffic step.
    pub fn since(&self, base: &StatsSnapshot) -> StatsSnapshot {
        let buckets: Vec<(f64, u64)> = self
            .latency_buckets
            .iter()
            .enumerate()
            .map(|(i, (bound, count))| {
                (*bound, count.saturating_sub(base.latency_buckets.get(i).map(|(_, c)| *c).unwrap_or(0)))
            })
            .collect();
        StatsSnapshot {
            requests: self.requests.saturating_sub(base.requests),
            status_2xx: self.status_2xx.saturating_sub(base.status_2xx),
            status_3xx: self.status_3xx.saturating_sub(base.status_3xx),
            status_4xx: self.status_4xx.saturating_sub(base.status_4xx),
            status_5xx: self.status_5xx.saturating_sub(base.status_5xx),
            connection_errors: self.connection_errors.saturating_sub(base.connection_errors),
            in_flight: self.in_flight,
            goals: self.goals.saturating_sub(base.goals),
            p50_ms: quantile(&buckets, 0.50),
            p90_ms: quantile(&buckets, 0.90),
            p99_ms: quantile(&buckets, 0.99),
            latency_buckets: buckets,
        }
    }
}

/// The q-quantile of a histogram, interpolated linearly inside its bucket (as
/// Prometheus' histogram_quantile does). 0 for an empty histogram.
pub fn quantile(buckets: &[(f64, u64)], q: f64) -> f64 {
    let total: u64 = buckets.iter().map(|(_, c)| c).sum();
    if total == 0 {
        return 0.0;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    let mut lower = 0.0;
    for &(upper, count) in buckets {
        if count > 0 && (seen + count) as f64 >= rank {
            if upper.is_infinite() {
                return lower;
            }
            let within = (rank - seen as f64) / count as f64;
            return lower + (upper - lower) * within;
        }
        seen += count;
        if upper.is_finite() {
            lower = upper;
        }
    }
    lower
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let stats = VersionStats::default();
        for _ in 0..50 {
            stats.record(200, 0.5); // bucket (0, 1]
        }
        for _ in 0..50 {
            stats.record(500, 8.0); // bucket (7.5, 10]
        }
        let s = stats.snapshot();
        assert_eq!((s.status_2xx, s.status_5xx), (50, 50));
        assert!((s.p50_ms - 1.0).abs() < 1e-9, "p50 {}", s.p50_ms);
        assert!((s.p90_ms - 9.5).abs() < 1e-9, "p90 {}", s.p90_ms);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn figures_since_a_snapshot_count_only_what_came_after_it() {
        let v = VersionStats::default();
        for _ in 0..100 {
            v.requests.fetch_add(1, Relaxed);
            v.record(200, 2.0);
        }
        let base = v.snapshot();
        for _ in 0..10 {
            v.requests.fetch_add(1, Relaxed);
            v.record(500, 900.0);
        }
        let window = v.snapshot().since(&base);
        assert_eq!((window.requests, window.status_2xx, window.status_5xx), (10, 0, 10));
        assert!(window.p50_ms > 500.0, "the window's latency is its slow requests' alone: {}", window.p50_ms);
        assert!(v.snapshot().p50_ms < 10.0, "overall, most requests were fast");
    }

    #[test]
    fn counts_after_a_restart_add_to_what_came_before() {
        let before = VersionStats::default();
        for _ in 0..30 {
            before.record(200, 2.0);
        }
        before.requests.store(30, Relaxed);
        let restarted = VersionStats::default();
        restarted.record(500, 2.0);
        restarted.requests.store(1, Relaxed);
        let total = restarted.raw().after(&before.raw());
        assert_eq!((total.requests, total.status_2xx, total.status_5xx), (31, 30, 1));
        let mirror = VersionStats::default();
        mirror.set(&total);
        assert_eq!(mirror.raw(), total);
    }
}
