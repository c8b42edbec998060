//! The pause before each retry: exponential backoff with full jitter.
//!
//! The n-th retry waits a uniformly random time between zero and
//! `min(max_backoff, initial_backoff * 2^(n-1))`. Full jitter spreads the
//! retries of many clients that failed together (say, during a leader
//! election) instead of letting them stampede the new leader in lockstep.

use std::time::Duration;

use rand::Rng;

/// Largest doubling exponent; past it the ceiling is `max_backoff` anyway.
const MAX_DOUBLINGS: u32 = 30;

/// A bounded exponential backoff schedule with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// A schedule whose first ceiling is `initial` and whose ceilings never exceed `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial: initial.min(max),
            max,
        }
    }

    /// The longest pause before retry number `retry` (1 for the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(MAX_DOUBLINGS);
        self.initial
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |ceiling| ceiling.min(self.max))
    }

    /// A random pause in `[0, ceiling(retry)]` drawn from `rng`.
    pub fn delay<R: Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Duration {
        let ceiling_us = u64::try_from(self.ceiling(retry).as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rng.random_range(0..=ceiling_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn schedule() -> Backoff {
        Backoff::new(Duration::from_millis(25), Duration::from_secs(1))
    }

    #[test]
    fn ceilings_double_from_initial_and_stop_at_max() {
        let backoff = schedule();
        let ceilings: Vec<u64> = (1..=8).map(|retry| backoff.ceiling(retry).as_millis() as u64).collect();
        assert_eq!(ceilings, [25, 50, 100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn ceiling_stays_bounded_for_huge_retry_numbers() {
        let backoff = schedule();
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_secs(1));
        assert_eq!(backoff.ceiling(0), Duration::from_millis(25));
    }

    #[test]
    fn delays_fall_within_zero_and_the_ceiling() {
        let backoff = schedule();
        let mut rng = StdRng::seed_from_u64(7);
        for retry in 1..=12 {
            for _ in 0..200 {
                let delay = backoff.delay(retry, &mut rng);
                assert!(delay <= backoff.ceiling(retry), "retry {retry}: {delay:?}");
            }
        }
    }

    #[test]
    fn delays_are_jittered_across_the_whole_range() {
        let backoff = schedule();
        let mut rng = StdRng::seed_from_u64(11);
        let ceiling = backoff.ceiling(7);
        let delays: Vec<Duration> = (0..500).map(|_| backoff.delay(7, &mut rng)).collect();
        let low = delays.iter().filter(|d| **d < ceiling / 4).count();
        let high = delays.iter().filter(|d| **d > ceiling * 3 / 4).count();
        assert!(low > 50, "too few short delays: {low}");
        assert!(high > 50, "too few long delays: {high}");
    }

    #[test]
    fn initial_above_max_is_clamped() {
        let backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(backoff.ceiling(1), Duration::from_secs(1));
    }
}
