//! The simulated app a strategy deploys in `plugin test`: replicas that take a while to
//! start and may fail their probes, a traffic split, and requests served at a steady rate
//! with error rates per version, all on a clock that moves only when the strategy waits.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The app's name, its neighbour's (whose replica a strategy must not touch), and the
/// wall-clock time the simulation starts at (the WASI clocks read the simulated time).
pub const APP: &str = "sim";
pub const NEIGHBOUR_REPLICA: &str = "other-app-1";
pub const EPOCH_MS: u64 = 1_800_000_000_000;

/// How the simulated world behaves in a scenario.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// How long a new replica takes to start and pass its first probe.
    pub start_ms: u64,
    /// The chance that a probe of a started replica fails anyway.
    pub probe_fail_rate: f64,
    /// A version whose replicas never pass a probe.
    pub never_healthy: Option<String>,
    /// Requests per second to the app.
    pub rps: f64,
    /// The share of requests every version answers with a 5xx.
    pub error_rate: f64,
    /// A version whose error rate jumps once it gets at least a share of the traffic.
    pub spike: Option<Spike>,
}

#[derive(Debug, Clone)]
pub struct Spike {
    pub version: String,
    pub from_percent: u32,
    pub error_rate: f64,
}

#[derive(Debug, Clone)]
pub struct Replica {
    pub id: String,
    pub version: String,
    pub started_ms: u64,
    pub ready_ms: u64,
    /// What the latest background probe saw.
    pub healthy: bool,
    /// When a drain of it ends, if it is draining.
    pub drained_at: Option<u64>,
}

/// What the router counted for one version.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    pub requests: f64,
    pub errors: f64,
}

pub struct World {
    /// Milliseconds since the simulation started; shared with the WASI clocks.
    pub clock: Arc<AtomicU64>,
    pub behaviour: Behaviour,
    pub replicas: Vec<Replica>,
    next_id: HashMap<String, u32>,
    pub split: crate::model::Split,
    pub sticky: bool,
    pub traffic: HashMap<String, Traffic>,
    /// Requests no version could serve (answered 503 by the router).
    pub unrouted: f64,
    rng: fastrand::Rng,
    /// What happened, as (simulated ms, line).
    pub timeline: Vec<(u64, String)>,
    /// When the deployment last made progress (a step changed the replicas or the split,
    /// or the reported percentage rose), for the server's progress deadline; and the
    /// highest percentage reported.
    pub last_progress_ms: u64,
    pub percent: u8,
}

impl World {
    /// The app serving `release` (version, replicas) alone, healthy.
    pub fn serving(version: &str, replicas: u32, behaviour: Behaviour, seed: u64) -> World {
        let mut world = World {
            clock: Arc::new(AtomicU64::new(0)),
            behaviour,
            replicas: Vec::new(),
            next_id: HashMap::new(),
            split: crate::model::Split::all(version),
            sticky: false,
            traffic: HashMap::new(),
            unrouted: 0.0,
            rng: fastrand::Rng::with_seed(seed),
            timeline: Vec::new(),
            last_progress_ms: 0,
            percent: 0,
        };
        for _ in 0..replicas {
            let id = world.new_id(version);
            world.replicas.push(Replica {
                id,
                version: version.to_string(),
                started_ms: 0,
                ready_ms: 0,
                healthy: true,
                drained_at: None,
            });
        }
        world
    }

    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    pub fn note(&mut self, line: String) {
        self.timeline.push((self.now(), line));
    }

    /// A reported percentage: a rise counts as progress.
    pub fn reported(&mut self, percent: u8) {
        if percent > self.percent {
            self.percent = percent;
            self.last_progress_ms = self.now();
        }
    }

    fn new_id(&mut self, version: &str) -> String {
        let n = self.next_id.entry(version.to_string()).or_default();
        *n += 1;
        format!("{version}-{n}")
    }

    pub fn of_version(&self, version: &str) -> Vec<&Replica> {
        self.replicas.iter().filter(|r| r.version == version).collect()
    }

    /// Starts or stops replicas of `version` until it has `n`.
    pub fn scale(&mut self, version: &str, n: u32) {
        let have = self.of_version(version).len() as u32;
        let now = self.now();
        for _ in have..n {
            let id = self.new_id(version);
            let ready_ms = now + self.behaviour.start_ms;
            self.replicas.push(Replica {
                id,
                version: version.to_string(),
                started_ms: now,
                ready_ms,
                healthy: false,
                drained_at: None,
            });
        }
        if n < have {
            let mut extra: Vec<String> =
                self.of_version(version).iter().rev().take((have - n) as usize).map(|r| r.id.clone()).collect();
            extra.reverse();
            self.replicas.retain(|r| !extra.contains(&r.id));
        }
    }

    /// One probe of replica `id` now: healthy if it has started, its version is not
    /// broken, and the dice allow.
    pub fn probe(&mut self, id: &str) -> Option<bool> {
        let now = self.now();
        let fail = self.rng.f64() < self.behaviour.probe_fail_rate;
        let never = self.behaviour.never_healthy.clone();
        let replica = self.replicas.iter_mut().find(|r| r.id == id)?;
        replica.healthy = now >= replica.ready_ms && never.as_deref() != Some(&replica.version) && !fail;
        Some(replica.healthy)
    }

    /// A version's share of the traffic, in percent.
    pub fn share(&self, version: &str) -> u32 {
        let total: u64 = self.split.iter().map(|(_, w)| u64::from(*w)).sum();
        let weight = self.split.iter().find(|(v, _)| v == version).map(|(_, w)| u64::from(*w)).unwrap_or(0);
        (weight * 100).checked_div(total).unwrap_or(0) as u32
    }

    /// Moves the clock forward by `ms`: replicas are probed in the background every
    /// second, drains end, and the requests of that time are served by the split.
    pub fn advance(&mut self, ms: u64) {
        let mut left = ms;
        while left > 0 {
            let slice = left.min(1000);
            left -= slice;
            self.clock.fetch_add(slice, Ordering::Relaxed);
            let ids: Vec<String> = self.replicas.iter().map(|r| r.id.clone()).collect();
            for id in ids {
                self.probe(&id);
            }
            self.serve(slice);
        }
    }

    /// The requests of `ms` milliseconds, spread by the split over the versions. As the
    /// router does, a weighted version with no usable replica (healthy, not draining)
    /// gives its share to the weighted versions that have one; with none, requests fail.
    fn serve(&mut self, ms: u64) {
        let requests = self.behaviour.rps * ms as f64 / 1000.0;
        let usable: Vec<(String, u32)> = self
            .split
            .iter()
            .filter(|(v, w)| {
                *w > 0 && self.replicas.iter().any(|r| &r.version == v && r.healthy && r.drained_at.is_none())
            })
            .cloned()
            .collect();
        let total: u64 = usable.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            self.unrouted += requests;
            return;
        }
        for (version, weight) in usable {
            let n = requests * weight as f64 / total as f64;
            let mut rate = self.behaviour.error_rate;
            if let Some(spike) = &self.behaviour.spike
                && spike.version == version
                && self.share(&version) >= spike.from_percent
            {
                rate = spike.error_rate;
            }
            let counts = self.traffic.entry(version).or_default();
            counts.requests += n;
            counts.errors += n * rate;
        }
    }

    /// Requests that failed so far, 5xx and unanswered, as users saw them.
    pub fn failed_requests(&self) -> u64 {
        (self.traffic.values().map(|t| t.errors).sum::<f64>() + self.unrouted).round() as u64
    }

    pub fn requests(&self) -> u64 {
        (self.traffic.values().map(|t| t.requests).sum::<f64>() + self.unrouted).round() as u64
    }

    /// The versions with weight in the split.
    pub fn serving_versions(&self) -> Vec<String> {
        self.split.iter().filter(|(_, w)| *w > 0).map(|(v, _)| v.clone()).collect()
    }

    /// How many of `version`'s replicas are up: started, and of a version that can pass
    /// its probes (whatever the latest dice roll of `--probe-fail-rate` said).
    pub fn up(&self, version: &str) -> u32 {
        let now = self.now();
        let broken = self.behaviour.never_healthy.as_deref() == Some(version);
        if broken {
            return 0;
        }
        self.replicas.iter().filter(|r| r.version == version && now >= r.ready_ms).count() as u32
    }
}

/// The WASI wall clock and monotonic clock of a simulated plugin: the simulated time.
pub struct SimClock(pub Arc<AtomicU64>);

impl wasmtime_wasi::HostWallClock for SimClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_millis(1)
    }

    fn now(&self) -> std::time::Duration {
        std::time::Duration::from_millis(EPOCH_MS + self.0.load(Ordering::Relaxed))
    }
}

impl wasmtime_wasi::HostMonotonicClock for SimClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }

    fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed) * 1_000_000
    }
}
