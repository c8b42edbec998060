//! Watches the cluster while a drill runs: every node (and every spare
//! address a replacement may take) is asked for its status on its own, with
//! a short deadline, so one dead or frozen node never blinds the watch.
//! From the answers it keeps every leader change with its time and term,
//! and each node's applied index over time, from which the drill tells how
//! long a restored node took to catch up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use safekeep_client::Client;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

/// How often every node is asked.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(200);
/// Longest one status call may take (a dead node must not stall the watch).
pub const STATUS_DEADLINE: Duration = Duration::from_millis(400);

/// A leader the cluster moved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LeaderChange {
    /// Since the drill began.
    pub at_ms: u64,
    pub leader: u64,
    pub term: u64,
}

/// One node's applied index as it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub at_ms: u64,
    pub applied: u64,
    /// The committed index the leader reported in the same round, if it answered.
    pub leader_committed: Option<u64>,
}

/// What the watch saw.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    pub leader_changes: Vec<LeaderChange>,
    pub progress: BTreeMap<u64, Vec<Progress>>,
}

impl Observations {
    /// The first time at or after `from_ms` when node `id` had applied
    /// `index`, if it ever did.
    pub fn applied_at(&self, id: u64, index: u64, from_ms: u64) -> Option<u64> {
        self.progress
            .get(&id)?
            .iter()
            .find(|p| p.at_ms >= from_ms && p.applied >= index)
            .map(|p| p.at_ms)
    }

    /// The leader's committed index as first reported at or after `at_ms`.
    pub fn committed_at(&self, at_ms: u64) -> Option<u64> {
        self.progress
            .values()
            .flatten()
            .filter(|p| p.at_ms >= at_ms)
            .filter_map(|p| p.leader_committed.map(|c| (p.at_ms, c)))
            .min_by_key(|(at, _)| *at)
            .map(|(_, committed)| committed)
    }

    fn record(&mut self, at_ms: u64, answers: &[(u64, Option<Answer>)]) {
        let answered = answers.iter().filter_map(|(id, a)| a.map(|a| (*id, a)));
        // The newest term anyone reports, with a leader named in it.
        let newest = answered
            .clone()
            .filter(|(_, a)| a.leader != 0)
            .max_by_key(|(_, a)| a.term);
        let leader_committed = newest.and_then(|(_, newest)| {
            answered
                .clone()
                .find(|(id, _)| *id == newest.leader)
                .map(|(_, a)| a.committed)
        });
        if let Some((_, a)) = newest {
            let last = self.leader_changes.last();
            if last.is_none_or(|l| (l.leader, l.term) != (a.leader, a.term) && a.term >= l.term) {
                self.leader_changes.push(LeaderChange {
                    at_ms,
                    leader: a.leader,
                    term: a.term,
                });
            }
        }
        for (id, a) in answered {
            self.progress.entry(id).or_default().push(Progress {
                at_ms,
                applied: a.applied,
                leader_committed,
            });
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Answer {
    leader: u64,
    term: u64,
    applied: u64,
    committed: u64,
}

/// A running watch; `finish` stops it and hands over what it saw.
pub struct Monitor {
    seen: Arc<Mutex<Observations>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    /// Starts asking each of `nodes` (id and a client that reaches only that node).
    pub fn start(nodes: Vec<(u64, Client)>, origin: Instant) -> Self {
        let seen = Arc::new(Mutex::new(Observations::default()));
        let (stop, mut stopped) = watch::channel(false);
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(WATCH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                let at_ms = u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX);
                let asks = nodes.iter().map(|(id, client)| async move {
                    let answer = tokio::time::timeout(STATUS_DEADLINE, client.status()).await;
                    let answer = match answer {
                        Ok(Ok(status)) => Some(Answer {
                            leader: status.header.leader_id,
                            term: status.header.term,
                            applied: status.applied_index,
                            committed: status.committed_index,
                        }),
                        _ => None,
                    };
                    (*id, answer)
                });
                let answers = futures::future::join_all(asks).await;
                record.lock().unwrap_or_else(|p| p.into_inner()).record(at_ms, &answers);
            }
        });
        Self { seen, stop, task }
    }

    /// Stops the watch and returns what it saw.
    pub async fn finish(self) -> Observations {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(leader: u64, term: u64, applied: u64) -> Option<Answer> {
        Some(Answer {
            leader,
            term,
            applied,
            committed: applied,
        })
    }

    #[test]
    fn a_leader_change_is_kept_once_and_a_stale_term_never_moves_it_back() {
        let mut seen = Observations::default();
        seen.record(0, &[(1, answer(1, 2, 10)), (2, answer(1, 2, 9)), (3, None)]);
        seen.record(200, &[(1, answer(1, 2, 12)), (2, answer(1, 2, 12)), (3, None)]);
        // Node 1 is cut off and still believes it leads in term 2; the others moved on.
        seen.record(
            400,
            &[(1, answer(1, 2, 12)), (2, answer(2, 3, 13)), (3, answer(2, 3, 13))],
        );
        seen.record(600, &[(1, answer(1, 2, 12)), (2, answer(2, 3, 14)), (3, None)]);
        let changes: Vec<(u64, u64, u64)> = seen
            .leader_changes
            .iter()
            .map(|c| (c.at_ms, c.leader, c.term))
            .collect();
        assert_eq!(changes, vec![(0, 1, 2), (400, 2, 3)]);
        assert_eq!(seen.applied_at(1, 12, 0), Some(200));
        assert_eq!(seen.applied_at(1, 13, 0), None, "node 1 never caught up");
        assert_eq!(seen.committed_at(300), Some(13), "the leader of term 3 reported 13");
    }
}
