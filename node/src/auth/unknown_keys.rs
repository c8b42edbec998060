//! Refusing API keys with unknown ids cheaply. A key issued through another
//! node may not have reached this replica yet, so an unknown id earns one
//! catch-up with the leader (a read barrier, a quorum round trip) before it
//! is refused. Garbage keys must not buy that round trip at will: ids found
//! unknown after a catch-up are remembered (a bounded set, oldest forgotten
//! first) and refused locally, and catch-ups for unknown ids share a
//! per-node budget per second, beyond which unknown ids are refused locally.

use std::collections::{HashSet, VecDeque};
use std::num::NonZeroU32;
use std::sync::Mutex;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::metrics_names::{UNKNOWN_KEY_CATCH_UPS, UNKNOWN_KEY_REFUSALS};

/// What to do with an id this replica does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownKeyVerdict {
    /// Catch up with the leader once, then look again.
    CatchUp,
    /// Refuse now, without a round trip.
    Refuse,
}

/// Ids known to be unknown, and the budget of catch-ups.
pub struct UnknownKeys {
    remembered: Mutex<Remembered>,
    catch_ups: Option<DefaultDirectRateLimiter>,
}

#[derive(Default)]
struct Remembered {
    ids: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl UnknownKeys {
    /// Remembers up to `capacity` ids; `catch_ups_per_second` of 0 means no catch-ups at all.
    pub fn new(catch_ups_per_second: u32, capacity: usize) -> Self {
        Self {
            remembered: Mutex::new(Remembered {
                capacity: capacity.max(1),
                ..Remembered::default()
            }),
            catch_ups: NonZeroU32::new(catch_ups_per_second).map(|rate| RateLimiter::direct(Quota::per_second(rate))),
        }
    }

    /// Whether `key_id` was already found unknown after a catch-up.
    pub fn is_remembered(&self, key_id: &str) -> bool {
        self.remembered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ids
            .contains(key_id)
    }

    /// Whether `key_id` was already found unknown, counting it as refused if so.
    pub fn refuse_remembered(&self, key_id: &str) -> bool {
        let remembered = self.is_remembered(key_id);
        if remembered {
            metrics::counter!(UNKNOWN_KEY_REFUSALS, "reason" => "remembered").increment(1);
        }
        remembered
    }

    /// Decides about an id this replica does not hold, counting refusals.
    pub fn verdict(&self, key_id: &str) -> UnknownKeyVerdict {
        if self.refuse_remembered(key_id) {
            return UnknownKeyVerdict::Refuse;
        }
        match &self.catch_ups {
            Some(budget) if budget.check().is_ok() => {
                metrics::counter!(UNKNOWN_KEY_CATCH_UPS).increment(1);
                UnknownKeyVerdict::CatchUp
            }
            _ => {
                metrics::counter!(UNKNOWN_KEY_REFUSALS, "reason" => "catch_up_budget").increment(1);
                UnknownKeyVerdict::Refuse
            }
        }
    }

    /// Remembers `key_id` as unknown after a catch-up found nothing.
    pub fn remember(&self, key_id: &str) {
        let mut remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        if !remembered.ids.insert(key_id.to_string()) {
            return;
        }
        remembered.order.push_back(key_id.to_string());
        while remembered.order.len() > remembered.capacity {
            if let Some(oldest) = remembered.order.pop_front() {
                remembered.ids.remove(&oldest);
            }
        }
    }

    /// Ids remembered now.
    pub fn remembered(&self) -> usize {
        self.remembered.lock().unwrap_or_else(|p| p.into_inner()).ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_ups_are_bounded_and_remembered_ids_are_refused_without_one() {
        let keys = UnknownKeys::new(3, 2);
        let verdicts: Vec<_> = (0..10).map(|n| keys.verdict(&format!("{n:016x}"))).collect();
        let catch_ups = verdicts.iter().filter(|v| **v == UnknownKeyVerdict::CatchUp).count();
        assert_eq!(catch_ups, 3, "a burst of new ids gets at most the budget: {verdicts:?}");
        keys.remember("a");
        keys.remember("b");
        keys.remember("c");
        assert_eq!(keys.remembered(), 2, "the set is bounded");
        assert!(!keys.is_remembered("a"), "the oldest is forgotten first");
        assert_eq!(keys.verdict("c"), UnknownKeyVerdict::Refuse);
        let none = UnknownKeys::new(0, 1);
        assert_eq!(none.verdict("d"), UnknownKeyVerdict::Refuse);
    }
}
