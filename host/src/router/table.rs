//! The route table of one app: versions, their weights and their backends. A table is
//! immutable once built; a change builds a new one and swaps it in atomically, so a
//! request sees either the old table or the new one, never half of each.

use super::stats::VersionStats;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// One replica as the router sees it.
pub struct Backend {
    pub id: String,
    pub version: String,
    pub address: String,
    pub healthy: AtomicBool,
    pub in_flight: AtomicU64,
    /// Set when the backend is drained: it takes no new requests.
    pub drain_deadline: std::sync::Mutex<Option<Instant>>,
    pub draining: AtomicBool,
}

impl Backend {
    pub fn new(id: String, version: String, address: String) -> Backend {
        Backend {
            id,
            version,
            address,
            healthy: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            drain_deadline: std::sync::Mutex::new(None),
            draining: AtomicBool::new(false),
        }
    }

    fn usable(&self) -> bool {
        self.healthy.load(Relaxed) && !self.draining.load(Relaxed)
    }
}

/// The backends of one version that has weight.
pub struct Pool {
    pub weight: u32,
    pub backends: Vec<Arc<Backend>>,
    pub stats: Arc<VersionStats>,
}

pub struct RouteTable {
    pub pools: Vec<Pool>,
    /// A smooth weighted round-robin schedule of pool indexes (nginx's algorithm), so
    /// that a 20% share means one request in five even over short windows.
    schedule: Vec<usize>,
}

impl RouteTable {
    pub fn new(pools: Vec<Pool>) -> RouteTable {
        let schedule = smooth_schedule(&pools.iter().map(|p| p.weight).collect::<Vec<_>>());
        RouteTable { pools, schedule }
    }

    /// Picks the backend for request number `n`: the scheduled version if it has a
    /// usable backend, else any version with weight that has one. Within a version, the
    /// less loaded of two random backends (power of two choices).
    pub fn pick(&self, n: u64, exclude: Option<&str>) -> Option<(&Pool, &Arc<Backend>)> {
        if self.schedule.is_empty() {
            return None;
        }
        let first = self.schedule[(n % self.schedule.len() as u64) as usize];
        let order = std::iter::once(first).chain((0..self.pools.len()).filter(move |i| *i != first));
        for i in order {
            let pool = &self.pools[i];
            if pool.weight == 0 {
                continue;
            }
            if let Some(b) = two_choices(&pool.backends, exclude) {
                return Some((pool, b));
            }
        }
        None
    }
}

fn two_choices<'a>(backends: &'a [Arc<Backend>], exclude: Option<&str>) -> Option<&'a Arc<Backend>> {
    let usable = |b: &&Arc<Backend>| b.usable() && Some(b.id.as_str()) != exclude;
    let count = backends.iter().filter(usable).count();
    match count {
        0 => None,
        1 => backends.iter().find(usable),
        n => {
            let a = fastrand::usize(..n);
            let mut b = fastrand::usize(..n - 1);
            if b >= a {
                b += 1;
            }
            let mut it = backends.iter().filter(usable);
            let (x, y) = if a < b { (a, b) } else { (b, a) };
            let first = it.nth(x).unwrap();
            let second = it.nth(y - x - 1).unwrap();
            if second.in_flight.load(Relaxed) < first.in_flight.load(Relaxed) { Some(second) } else { Some(first) }
        }
    }
}

/// nginx's smooth weighted round robin, unrolled into one period. Weights are reduced
/// by their gcd first, so 20/80 gives the period [1, 1, 0, 1, 1] of length 5.
pub fn smooth_schedule(weights: &[u32]) -> Vec<usize> {
    let g = weights.iter().copied().filter(|w| *w > 0).fold(0, gcd);
    if g == 0 {
        return Vec::new();
    }
    let reduced: Vec<i64> = weights.iter().map(|w| (*w / g) as i64).collect();
    let total: i64 = reduced.iter().sum();
    let mut current = vec![0i64; reduced.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(&reduced) {
            *c += w;
        }
        let best = (0..current.len()).max_by_key(|i| (current[*i], std::cmp::Reverse(*i))).unwrap();
        current[best] -= total;
        schedule.push(best);
    }
    schedule
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_schedule_spreads_the_minority() {
        assert_eq!(smooth_schedule(&[20, 80]), vec![1, 1, 0, 1, 1]);
        assert_eq!(smooth_schedule(&[0, 100]), vec![1]);
        assert!(smooth_schedule(&[0, 0]).is_empty());
        let s = smooth_schedule(&[50, 30, 20]);
        assert_eq!(s.len(), 10);
        assert_eq!((0..3).map(|i| s.iter().filter(|x| **x == i).count()).collect::<Vec<_>>(), vec![5, 3, 2]);
    }

    #[test]
    fn pick_skips_unhealthy_and_draining_backends() {
        let healthy = Arc::new(Backend::new("a".into(), "v1".into(), "127.0.0.1:1".into()));
        healthy.healthy.store(true, Relaxed);
        let sick = Arc::new(Backend::new("b".into(), "v1".into(), "127.0.0.1:2".into()));
        let drained = Arc::new(Backend::new("c".into(), "v1".into(), "127.0.0.1:3".into()));
        drained.healthy.store(true, Relaxed);
        drained.draining.store(true, Relaxed);
        let table = RouteTable::new(vec![Pool {
            weight: 1,
            backends: vec![healthy, sick, drained],
            stats: Default::default(),
        }]);
        for n in 0..20 {
            assert_eq!(table.pick(n, None).unwrap().1.id, "a");
        }
        assert!(table.pick(0, Some("a")).is_none());
    }
}
