//! The route table of one app: versions, their weights and their backends. A table is
//! immutable once built; a change builds a new one and swaps it in atomically, so a
//! request sees either the old table or the new one, never half of each.

use super::stats::VersionStats;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// How many failed exchanges in a row (connection errors, 502, 503, 504) eject a backend.
pub const EJECT_AFTER_FAILURES: u32 = 3;
/// How long an ejected backend gets no traffic.
pub const EJECT_FOR_MS: u64 = 10_000;

/// One replica as the router sees it.
pub struct Backend {
    pub id: String,
    pub version: String,
    pub address: String,
    pub healthy: AtomicBool,
    pub in_flight: AtomicU64,
    /// Set when the backend is drained: it takes no new requests.
    pub draining: AtomicBool,
    pub drain_deadline: std::sync::Mutex<Option<Instant>>,
    /// In a mirror: the pull from which on in-flight counts tell of the drain.
    pub drained_by_pull: AtomicU64,
    /// Passive health: failures in a row, and until when (ms since the epoch) the
    /// backend is ejected. 0 means not ejected.
    pub consecutive_failures: AtomicU32,
    pub ejected_until_ms: AtomicU64,
}

impl Backend {
    pub fn new(id: String, version: String, address: String) -> Backend {
        Backend {
            id,
            version,
            address,
            healthy: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            drain_deadline: std::sync::Mutex::new(None),
            drained_by_pull: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
        }
    }

    pub fn usable(&self) -> bool {
        if !self.healthy.load(Relaxed) || self.draining.load(Relaxed) {
            return false;
        }
        let ejected_until = self.ejected_until_ms.load(Relaxed);
        ejected_until == 0 || crate::model::now_ms() as u64 >= ejected_until
    }

    /// Records a failed exchange; true when this failure ejects the backend.
    pub fn record_failure(&self) -> bool {
        let failures = self.consecutive_failures.fetch_add(1, Relaxed) + 1;
        if failures >= EJECT_AFTER_FAILURES {
            self.consecutive_failures.store(0, Relaxed);
            self.ejected_until_ms.store(crate::model::now_ms() as u64 + EJECT_FOR_MS, Relaxed);
            return true;
        }
        false
    }

    pub fn record_success(&self) {
        if self.consecutive_failures.load(Relaxed) != 0 {
            self.consecutive_failures.store(0, Relaxed);
        }
    }
}

/// The backends of one version (or variant) in the split.
pub struct Pool {
    pub version: String,
    pub weight: u32,
    /// A hash of the version's name, mixed with a client's id for sticky routing.
    name_hash: u64,
    pub backends: Vec<Arc<Backend>>,
    pub stats: Arc<VersionStats>,
}

impl Pool {
    pub fn new(version: String, weight: u32, backends: Vec<Arc<Backend>>, stats: Arc<VersionStats>) -> Pool {
        Pool { name_hash: fnv1a(version.as_bytes()), version, weight, backends, stats }
    }
}

/// How a request chooses its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice<'a> {
    /// By the split's smooth weighted schedule, with this request number.
    Schedule(u64),
    /// By the client's sticky id (weighted rendezvous hashing).
    Sticky(u64),
    /// The version a request header asked for; falls back to the split if it has no
    /// usable backend.
    Forced(&'a str, u64),
}

pub struct RouteTable {
    pub pools: Vec<Pool>,
    /// A response header that marks a conversion (A/B goals), counted per version.
    pub goal_header: Option<http::HeaderName>,
    /// Whether clients keep their version across requests.
    pub sticky: bool,
    /// The backends speak HTTP/2 without TLS (h2c, prior knowledge): gRPC services.
    pub h2c: bool,
    /// The key a request must show for its `x-hivemind-variant` to count.
    pub preview_key: Option<Arc<str>>,
    /// A smooth weighted round-robin schedule of pool indexes (nginx's algorithm), so
    /// that a 20% share means one request in five even over short windows.
    schedule: Vec<usize>,
}

impl RouteTable {
    pub fn new(pools: Vec<Pool>, sticky: bool) -> RouteTable {
        let schedule = smooth_schedule(&pools.iter().map(|p| p.weight).collect::<Vec<_>>());
        RouteTable { pools, sticky, schedule, goal_header: None, h2c: false, preview_key: None }
    }

    /// Picks the pool and backend for a request, skipping `exclude` (a backend that just
    /// failed). Falls back to any weighted version with a usable backend, so that a
    /// version without one never costs a request.
    pub fn pick(&self, choice: Choice<'_>, exclude: Option<&str>) -> Option<(&Pool, &Arc<Backend>)> {
        let preferred = match choice {
            Choice::Forced(version, _) => self.pools.iter().position(|p| p.version == version),
            Choice::Sticky(client) => self.rendezvous(client),
            Choice::Schedule(n) => self.scheduled(n),
        };
        let fallback_n = match choice {
            Choice::Schedule(n) | Choice::Sticky(n) | Choice::Forced(_, n) => n,
        };
        if let Some(i) = preferred
            && let Some(b) = two_choices(&self.pools[i].backends, exclude)
        {
            return Some((&self.pools[i], b));
        }
        let start = self.scheduled(fallback_n).unwrap_or(0);
        (0..self.pools.len())
            .map(|k| (start + k) % self.pools.len())
            .filter(|i| Some(*i) != preferred && self.pools[*i].weight > 0)
            .find_map(|i| two_choices(&self.pools[i].backends, exclude).map(|b| (&self.pools[i], b)))
    }

    fn scheduled(&self, n: u64) -> Option<usize> {
        (!self.schedule.is_empty()).then(|| self.schedule[(n % self.schedule.len() as u64) as usize])
    }

    /// Weighted rendezvous hashing: each version scores `weight / -ln(u)` with `u` a
    /// uniform hash of (client, version); the highest score wins. A version wins with
    /// probability weight / total, and a weight change moves only the clients whose
    /// winner changed, which is the fewest that the new split requires.
    fn rendezvous(&self, client: u64) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (i, pool) in self.pools.iter().enumerate() {
            if pool.weight == 0 {
                continue;
            }
            let h = splitmix64(client ^ pool.name_hash);
            let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let score = pool.weight as f64 / -u.ln();
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((i, score));
            }
        }
        best.map(|(i, _)| i)
    }
}

fn two_choices<'a>(backends: &'a [Arc<Backend>], exclude: Option<&str>) -> Option<&'a Arc<Backend>> {
    let usable = |b: &&Arc<Backend>| b.usable() && Some(b.id.as_str()) != exclude;
    match backends.len() {
        0 => None,
        1 => backends.iter().find(usable),
        n => {
            // Two random distinct backends; the one with fewer requests in flight wins.
            // If neither is usable, scan for any usable one.
            let a = fastrand::usize(..n);
            let mut b = fastrand::usize(..n - 1);
            if b >= a {
                b += 1;
            }
            let (x, y) = (&backends[a], &backends[b]);
            match (usable(&x), usable(&y)) {
                (true, true) => Some(if y.in_flight.load(Relaxed) < x.in_flight.load(Relaxed) { y } else { x }),
                (true, false) => Some(x),
                (false, true) => Some(y),
                (false, false) => backends.iter().find(usable),
            }
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

pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(id: &str, version: &str) -> Arc<Backend> {
        let b = Arc::new(Backend::new(id.into(), version.into(), "127.0.0.1:1".into()));
        b.healthy.store(true, Relaxed);
        b
    }

    fn table(weights: &[(&str, u32)], sticky: bool) -> RouteTable {
        let pools = weights
            .iter()
            .map(|(v, w)| Pool::new(v.to_string(), *w, vec![backend(&format!("{v}-a"), v)], Default::default()))
            .collect();
        RouteTable::new(pools, sticky)
    }

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
    fn pick_skips_unhealthy_draining_and_ejected_backends() {
        let healthy = backend("a", "v1");
        let sick = Arc::new(Backend::new("b".into(), "v1".into(), "127.0.0.1:2".into()));
        let drained = backend("c", "v1");
        drained.draining.store(true, Relaxed);
        let ejected = backend("d", "v1");
        for _ in 0..EJECT_AFTER_FAILURES {
            ejected.record_failure();
        }
        let t = RouteTable::new(
            vec![Pool::new("v1".into(), 1, vec![healthy, sick, drained, ejected], Default::default())],
            false,
        );
        for n in 0..50 {
            assert_eq!(t.pick(Choice::Schedule(n), None).unwrap().1.id, "a");
        }
        assert!(t.pick(Choice::Schedule(0), Some("a")).is_none());
    }

    #[test]
    fn sticky_shares_follow_the_weights_and_a_change_moves_only_what_it_must() {
        let before = table(&[("a", 50), ("b", 50)], true);
        let after = table(&[("a", 70), ("b", 30)], true);
        let clients: Vec<u64> = (0..20_000u64).map(splitmix64).collect();
        let version = |t: &RouteTable, c: u64| t.pick(Choice::Sticky(c), None).unwrap().0.version.clone();
        let share_a = clients.iter().filter(|c| version(&after, **c) == "a").count() as f64 / clients.len() as f64;
        assert!((share_a - 0.70).abs() < 0.015, "share of a: {share_a}");
        let moved = clients.iter().filter(|c| version(&before, **c) != version(&after, **c)).count() as f64
            / clients.len() as f64;
        // The new split needs 20% of clients to move from b to a; no more should.
        assert!((moved - 0.20).abs() < 0.015, "moved: {moved}");
        assert!(
            clients
                .iter()
                .all(|c| version(&before, *c) == "a" || version(&after, *c) == "b" || version(&after, *c) == "a")
        );
        assert!(
            clients.iter().filter(|c| version(&before, **c) == "a").all(|c| version(&after, *c) == "a"),
            "nobody leaves the growing variant"
        );
    }

    #[test]
    fn a_forced_version_wins_even_with_weight_zero_and_falls_back_without_backends() {
        let t = table(&[("blue", 100), ("green", 0)], false);
        assert_eq!(t.pick(Choice::Forced("green", 0), None).unwrap().0.version, "green");
        assert_eq!(t.pick(Choice::Forced("nope", 0), None).unwrap().0.version, "blue");
        assert_eq!(t.pick(Choice::Schedule(3), None).unwrap().0.version, "blue");
    }
}
