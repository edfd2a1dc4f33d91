//! Exponential backoff with full jitter, pure and driven by a caller-provided RNG.

use rand::Rng;

/// Delay in milliseconds before retry number `attempt` (0-based).
///
/// The exponential cap is `min(max, min_delay · 2^attempt)`; the delay is `min_delay` plus a
/// uniformly random jitter in `[0, cap]` ("full jitter"), clamped to `max`. So every delay lies
/// in `[min_delay, max(min_delay, max)]` and later attempts spread over the whole window.
pub fn backoff<R: Rng + ?Sized>(attempt: u32, min_delay: u64, max_delay: u64, rng: &mut R) -> u64 {
    let max_delay = max_delay.max(min_delay);
    let step = attempt.min(31);
    let cap = min_delay.saturating_mul(1u64 << step).min(max_delay);
    let jitter = rng.random_range(0..=cap);
    min_delay.saturating_add(jitter).min(max_delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn backoff_stays_within_bounds() {
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 0..100 {
            for _ in 0..200 {
                let d = backoff(attempt, 500, 20_000, &mut rng);
                assert!((500..=20_000).contains(&d), "attempt {attempt}: {d}");
            }
        }
        // Degenerate configurations never panic and respect min.
        assert_eq!(backoff(3, 100, 50, &mut rng), 100);
        assert_eq!(backoff(u32::MAX, 0, 0, &mut rng), 0);
        assert!(backoff(40, u64::MAX / 2, u64::MAX, &mut rng) >= u64::MAX / 2);
    }

    #[test]
    fn backoff_grows_exponentially_before_the_cap() {
        let mut rng = StdRng::seed_from_u64(1);
        for attempt in 0..5u32 {
            let cap = 500 * (1u64 << attempt);
            let max_seen = (0..2000)
                .map(|_| backoff(attempt, 500, 1_000_000, &mut rng))
                .max()
                .unwrap_or(0);
            assert!(max_seen <= 500 + cap);
            // With 2000 samples the maximum is close to the top of the window.
            assert!(
                max_seen >= 500 + cap * 9 / 10,
                "attempt {attempt}: {max_seen}"
            );
        }
    }

    #[test]
    fn full_jitter_spreads_over_the_window() {
        let mut rng = StdRng::seed_from_u64(42);
        let (min, max) = (500u64, 20_000u64);
        let mut buckets = [0u32; 10];
        let n = 20_000;
        for _ in 0..n {
            // Attempt 10: cap is at max, the window is [min, max].
            let d = backoff(10, min, max, &mut rng);
            let i = ((d - min) * 10 / (max - min + 1)) as usize;
            buckets[i] += 1;
        }
        // Expected ~ n/10 per bucket except the top one, which also holds the clamped tail.
        for (i, b) in buckets.iter().enumerate().take(9) {
            assert!(
                (n / 20..=n / 6).contains(b),
                "bucket {i} has {b} of {n}: {buckets:?}"
            );
        }
        // Distinct values: jitter, not a fixed schedule.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            seen.insert(backoff(3, min, max, &mut rng));
        }
        assert!(seen.len() > 90);
    }
}
