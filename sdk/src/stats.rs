//! The statistics canary analysis and A/B winner selection use. Plain Rust, no
//! allocation-heavy machinery, so that it runs inside a plugin step in microseconds and
//! on the host for `hivemind metrics get`.
//!
//! * [`two_proportions`]: is one error (or conversion) rate really higher than another?
//!   The pooled two-proportion z-test.
//! * [`mann_whitney`]: are one version's latencies really higher than another's? The
//!   Mann-Whitney U test (as Kayenta uses), on the router's latency histograms, with the
//!   tie correction and the continuity correction of the normal approximation.

/// The outcome of a one-sided test that `a` is greater than `b`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Test {
    /// The test statistic: z for proportions, U (of `a`) for Mann-Whitney.
    pub statistic: f64,
    /// The z score of the normal approximation.
    pub z: f64,
    /// The one-sided p-value: the chance of a difference at least this large if `a` and
    /// `b` were the same.
    pub p: f64,
}

impl Test {
    /// Whether `a` is greater than `b` at significance level `alpha` (0.05 is usual).
    pub fn significant(&self, alpha: f64) -> bool {
        self.p < alpha
    }
}

/// The pooled two-proportion z-test that rate `a` (`xa` of `na`) is greater than rate
/// `b`. `None` when either sample is empty or the pooled rate is 0 or 1 (no variance).
///
/// ```
/// use hivemind_sdk::stats::two_proportions;
/// // 40 errors in 200 requests against 20 in 200: z = 2.80, p = 0.0026 (scipy agrees).
/// let t = two_proportions(40, 200, 20, 200).unwrap();
/// assert!((t.z - 2.8006).abs() < 1e-3 && (t.p - 0.00255).abs() < 1e-4);
/// ```
pub fn two_proportions(xa: u64, na: u64, xb: u64, nb: u64) -> Option<Test> {
    if na == 0 || nb == 0 {
        return None;
    }
    let (pa, pb) = (xa as f64 / na as f64, xb as f64 / nb as f64);
    let pooled = (xa + xb) as f64 / (na + nb) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / na as f64 + 1.0 / nb as f64)).sqrt();
    if se == 0.0 {
        return None;
    }
    let z = (pa - pb) / se;
    Some(Test { statistic: z, z, p: normal_sf(z) })
}

/// The Mann-Whitney U test that values of `a` tend to be greater than values of `b`,
/// given as histograms over the same ascending buckets (`counts[i]` values fall in bucket
/// `i`). Values in one bucket are ties. `None` when either side is empty or every value
/// is tied.
///
/// ```
/// use hivemind_sdk::stats::mann_whitney;
/// // Raw samples are histograms with one bucket per distinct value.
/// let (a, b) = (vec![19.0, 22.0, 16.0, 29.0, 24.0], vec![20.0, 11.0, 17.0, 12.0]);
/// let t = hivemind_sdk::stats::mann_whitney_samples(&a, &b).unwrap();
/// assert_eq!(t.statistic, 17.0); // U of a, as scipy.stats.mannwhitneyu reports
/// assert!((t.p - 0.05567).abs() < 1e-4);
/// ```
pub fn mann_whitney(a: &[u64], b: &[u64]) -> Option<Test> {
    // Buckets one histogram lacks (it never saw a request, say) are empty in it.
    let len = a.len().max(b.len());
    let bucket = |h: &[u64], i: usize| h.get(i).copied().unwrap_or(0);
    let (na, nb) = (a.iter().sum::<u64>() as f64, b.iter().sum::<u64>() as f64);
    if na == 0.0 || nb == 0.0 {
        return None;
    }
    let n = na + nb;
    // Each bucket is one group of ties; its values share the mid rank.
    let mut below = 0.0;
    let mut rank_sum_a = 0.0;
    let mut tie_term = 0.0;
    for (ca, cb) in (0..len).map(|i| (bucket(a, i), bucket(b, i))) {
        let t = (ca + cb) as f64;
        if t == 0.0 {
            continue;
        }
        let mid_rank = below + (t + 1.0) / 2.0;
        rank_sum_a += ca as f64 * mid_rank;
        tie_term += t * t * t - t;
        below += t;
    }
    let u = rank_sum_a - na * (na + 1.0) / 2.0;
    let mean = na * nb / 2.0;
    let variance = na * nb / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if variance <= 0.0 {
        return None;
    }
    // Continuity correction toward the mean, as scipy's asymptotic method does.
    let z = (u - mean - 0.5) / variance.sqrt();
    Some(Test { statistic: u, z, p: normal_sf(z) })
}

/// [`mann_whitney`] on raw samples.
pub fn mann_whitney_samples(a: &[f64], b: &[f64]) -> Option<Test> {
    let mut values: Vec<f64> = a.iter().chain(b).copied().collect();
    values.sort_by(|x, y| x.total_cmp(y));
    values.dedup();
    let histogram = |xs: &[f64]| {
        let mut h = vec![0u64; values.len()];
        for x in xs {
            h[values.binary_search_by(|v| v.total_cmp(x)).unwrap()] += 1;
        }
        h
    };
    mann_whitney(&histogram(a), &histogram(b))
}

/// The upper tail of the standard normal distribution, P(Z > z).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function, by the rational Chebyshev approximation of
/// Numerical Recipes (erfcc): relative error below 1.2e-7 everywhere.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed with scipy.stats 1.15 (mannwhitneyu with
    // method="asymptotic", use_continuity=True; norm.sf for the z-tests).

    #[test]
    fn normal_tail_matches_known_values() {
        assert!((normal_sf(1.96) - 0.024_997_895).abs() < 1e-7);
        assert!((normal_sf(3.0) - 0.001_349_898).abs() < 1e-7);
        assert!((normal_sf(-0.5) - 0.691_462_461).abs() < 1e-7);
    }

    #[test]
    fn two_proportion_z_test_matches_known_values() {
        let t = two_proportions(40, 200, 20, 200).unwrap();
        assert!((t.z - 2.800_560_168).abs() < 1e-6, "{t:?}");
        assert!((t.p - 0.002_550_699_8).abs() < 1e-6, "{t:?}");
        let t = two_proportions(45, 500, 30, 500).unwrap();
        assert!((t.z - 1.800_900_676).abs() < 1e-6 && (t.p - 0.035_859_268).abs() < 1e-6, "{t:?}");
        assert!(two_proportions(0, 100, 0, 100).is_none(), "no errors at all: nothing to test");
        assert!(two_proportions(1, 0, 1, 10).is_none());
    }

    #[test]
    fn mann_whitney_matches_known_values() {
        let t = mann_whitney_samples(&[19.0, 22.0, 16.0, 29.0, 24.0], &[20.0, 11.0, 17.0, 12.0]).unwrap();
        assert_eq!(t.statistic, 17.0);
        assert!((t.p - 0.055_673_443).abs() < 1e-6, "{t:?}");
        // With ties, the tie correction matters.
        let a = [3.0, 4.0, 4.0, 5.0, 5.0, 6.0, 7.0, 7.0, 8.0];
        let b = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0];
        let t = mann_whitney_samples(&a, &b).unwrap();
        assert_eq!(t.statistic, 64.5);
        assert!((t.p - 0.003_186_567).abs() < 1e-6, "{t:?}");
    }

    #[test]
    fn identical_histograms_are_not_significant() {
        let h = [10, 50, 30, 10];
        let t = mann_whitney(&h, &h).unwrap();
        assert!(!t.significant(0.05), "{t:?}");
        assert!(mann_whitney(&[0, 0], &[1, 2]).is_none());
        assert!(mann_whitney(&[5, 0], &[7, 0]).is_none(), "all tied: no variance");
    }

    /// A version that never got a request has no buckets at all: no test, no panic.
    #[test]
    fn a_histogram_without_buckets_gives_no_test() {
        assert!(mann_whitney(&[], &[3, 4, 5]).is_none());
        let short = mann_whitney(&[2, 1], &[1, 2, 0]).unwrap();
        let padded = mann_whitney(&[2, 1, 0], &[1, 2, 0]).unwrap();
        assert_eq!(short.statistic, padded.statistic);
    }
}
