//! The random numbers behind the injected error rate: a small xorshift generator per
//! connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// xorshift64 seeded from the time, the process id and a counter; one per connection.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn seeded() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self::from_seed(nanos ^ (u64::from(std::process::id()) << 32) ^ count.rotate_left(17))
    }

    fn from_seed(seed: u64) -> Self {
        // splitmix64 finaliser, so that close seeds give unrelated states.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x9E37_79B9_7F4A_7C15 } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// True with probability `p`.
    pub(super) fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_rates() {
        let mut rng = Rng::from_seed(42);
        assert!((0..1000).all(|_| !rng.chance(0.0)));
        assert!((0..1000).all(|_| rng.chance(1.0)));
        let hits = (0..100_000).filter(|_| rng.chance(0.2)).count();
        assert!((18_500..21_500).contains(&hits), "{hits}");
        assert_ne!(Rng::from_seed(1).next_u64(), Rng::from_seed(2).next_u64());
        assert_ne!(Rng::from_seed(0).0, 0);
    }
}
