//! The idempotency table's expiry time, computed from the log alone so every
//! replica agrees on it.
//!
//! Each client write carries the leader's monotonic clock. Between two
//! entries of the same leader term, expiry time moves by the difference of
//! their monotonic stamps; across a change of leader it does not move at all
//! (two processes' monotonic clocks have nothing in common). A leader's wall
//! clock plays no part, so a wall clock stepped minutes ahead cannot expire
//! every remembered result at once; expiry time only ever lags real time,
//! which keeps results a little longer, never shorter.

use serde::{Deserialize, Serialize};

/// Expiry time, in ms, and the last leader stamp it moved by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryClock<L> {
    now_ms: i64,
    last: Option<(L, u64)>,
}

impl<L> Default for ExpiryClock<L> {
    fn default() -> Self {
        Self { now_ms: 0, last: None }
    }
}

impl<L: PartialEq + Clone> ExpiryClock<L> {
    /// Notes an entry proposed by `leader` at its monotonic `leader_clock_ms`
    /// and returns expiry time at that entry.
    pub fn observe(&mut self, leader: &L, leader_clock_ms: u64) -> i64 {
        match &mut self.last {
            Some((last_leader, last_clock)) if last_leader == leader => {
                let step = leader_clock_ms.saturating_sub(*last_clock);
                self.now_ms = self.now_ms.saturating_add(i64::try_from(step).unwrap_or(i64::MAX));
                *last_clock = (*last_clock).max(leader_clock_ms);
            }
            _ => self.last = Some((leader.clone(), leader_clock_ms)),
        }
        self.now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_moves_with_one_leaders_monotonic_clock() {
        let mut clock = ExpiryClock::<u64>::default();
        assert_eq!(clock.observe(&1, 5_000), 0, "a new leader starts no time");
        assert_eq!(clock.observe(&1, 5_250), 250);
        assert_eq!(clock.observe(&1, 6_000), 1_000);
        assert_eq!(
            clock.observe(&1, 5_900),
            1_000,
            "a stamp out of order moves nothing back"
        );
        assert_eq!(clock.observe(&1, 6_100), 1_100);
    }

    #[test]
    fn a_new_leader_moves_no_time_until_its_second_entry() {
        let mut clock = ExpiryClock::<u64>::default();
        clock.observe(&1, 100);
        clock.observe(&1, 600);
        // The next leader's process started long ago: its stamp is huge, and counts for nothing.
        assert_eq!(clock.observe(&2, 90_000_000), 500);
        assert_eq!(clock.observe(&2, 90_000_400), 900);
        // A third leader whose process just started.
        assert_eq!(clock.observe(&3, 3), 900);
        assert_eq!(clock.observe(&3, 103), 1_000);
    }
}
