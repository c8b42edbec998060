//! Failover: how long writes stop when the leader is killed. Each run waits
//! until every member serves and has caught up, finds the leader, starts a
//! prober that sends a fresh write every [`PROBE_INTERVAL`] through one
//! client connection (an open loop: a probe does not wait for the one before
//! it), SIGKILLs the leader, and waits for the first acknowledged write that
//! was sent after the kill. The failover time runs from the kill to that
//! acknowledgement; the write gap from the last acknowledgement before the
//! kill to it. Then the killed member is started again on its data.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::BenchError;
use crate::targets::{Connection, Operable, TargetKind};

/// How often the prober sends a write: the resolution of the figures.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// Most probes in flight; while the cluster has no leader they pile up, and
/// beyond this many the prober skips a beat rather than grow without bound.
pub const MAX_PROBES_IN_FLIGHT: usize = 1_000;
/// How long a run waits for a write acknowledged before the kill.
const WARM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a run waits for the first write acknowledged after the kill.
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the cluster may take to have every member serving and caught up.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverSample {
    pub target: TargetKind,
    /// 1-based.
    pub run: usize,
    /// The killed leader, as a 1-based member number.
    pub killed_member: usize,
    /// The member that led once writes were acknowledged again (never the killed one).
    pub new_leader_member: usize,
    /// From the SIGKILL to the first acknowledged write sent after it.
    pub failover_ms: f64,
    /// From the last acknowledgement before the kill to that first one after it.
    pub write_gap_ms: f64,
    /// Probes that failed (an error from the client library) during the run.
    pub failed_probes: u64,
}

/// One probe's outcome.
struct Probe {
    sent: Instant,
    acked: Option<Instant>,
}

/// Sends a write every [`PROBE_INTERVAL`] until dropped; each one's outcome goes to `outcomes`.
async fn probe_loop<C: Connection>(conn: C, value: Vec<u8>, label: String, outcomes: mpsc::UnboundedSender<Probe>) {
    // Held here: when the prober is aborted, the probes in flight go with it.
    let mut in_flight = JoinSet::new();
    let mut ticker = tokio::time::interval(PROBE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for seq in 0u64.. {
        ticker.tick().await;
        while in_flight.try_join_next().is_some() {}
        if in_flight.len() >= MAX_PROBES_IN_FLIGHT {
            continue;
        }
        let (conn, value, outcomes) = (conn.clone(), value.clone(), outcomes.clone());
        let key = format!("bench/failover/{label}/{seq}");
        in_flight.spawn(async move {
            let sent = Instant::now();
            let acked = conn.put(key, value).await.ok().map(|_| Instant::now());
            let _ = outcomes.send(Probe { sent, acked });
        });
    }
}

/// One failover run on `cluster`.
pub async fn failover_once<C: Operable>(
    cluster: &mut C,
    run: usize,
    value_size: usize,
) -> Result<FailoverSample, BenchError> {
    let target = cluster.kind();
    cluster.wait_settled(SETTLE_TIMEOUT).await?;
    let leader = cluster.leader().await?;
    let conn = cluster.connect().await?;
    let (outcomes, mut results) = mpsc::unbounded_channel();
    let prober = tokio::spawn(probe_loop(conn, vec![b'f'; value_size], format!("{run}"), outcomes));
    let measured = measure(cluster, leader, &mut results).await;
    prober.abort();
    let (failover, write_gap, failed_probes) = measured?;
    let new_leader = cluster.leader().await?;
    if new_leader == leader {
        return Err(BenchError::Setup {
            target: target.name(),
            detail: format!("member {} was killed and still leads", leader + 1),
        });
    }
    cluster.start_stopped().await?;
    Ok(FailoverSample {
        target,
        run,
        killed_member: leader + 1,
        new_leader_member: new_leader + 1,
        failover_ms: failover.as_secs_f64() * 1_000.0,
        write_gap_ms: write_gap.as_secs_f64() * 1_000.0,
        failed_probes,
    })
}

/// Waits for an acknowledged probe, kills the leader, and waits for the
/// first probe sent after the kill to be acknowledged: (failover, write gap, failed probes).
async fn measure<C: Operable>(
    cluster: &mut C,
    leader: usize,
    results: &mut mpsc::UnboundedReceiver<Probe>,
) -> Result<(Duration, Duration, u64), BenchError> {
    let target = cluster.kind().name();
    let stalled = |detail: String| BenchError::Setup { target, detail };
    let mut failed = 0;
    let mut last_ack = tokio::time::timeout(WARM_TIMEOUT, async {
        loop {
            match results.recv().await {
                Some(Probe { acked: Some(at), .. }) => return Some(at),
                Some(_) => failed += 1,
                None => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| {
        stalled(format!(
            "no write was acknowledged within {WARM_TIMEOUT:?} before the kill"
        ))
    })?;
    let killed_at = Instant::now();
    cluster.kill(leader).await?;
    let deadline = killed_at + FAILOVER_TIMEOUT;
    loop {
        let probe = tokio::time::timeout_at(deadline, results.recv())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| {
                stalled(format!(
                    "no write sent after the leader was killed was acknowledged within {FAILOVER_TIMEOUT:?}"
                ))
            })?;
        match probe.acked {
            None => failed += 1,
            Some(acked) if probe.sent >= killed_at => {
                return Ok((acked - killed_at, acked.saturating_duration_since(last_ack), failed));
            }
            // Acknowledged before the kill: the gap starts from the latest such.
            Some(acked) if acked <= killed_at => last_ack = last_ack.max(acked),
            // Sent before the kill, acknowledged after it: not a write sent to the new leader.
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::targets::{CasOutcome, CatchUp, Cluster, MemberIndex, OpError};
    use crate::workloads::Freshness;

    /// A cluster in memory: every write takes `latency`; a write sent while
    /// the cluster has no leader fails, one sent before the kill still
    /// succeeds (an acknowledgement that was on its way), and the cluster
    /// has a leader again `outage` after the kill.
    #[derive(Clone)]
    struct FakeCluster {
        state: Arc<Mutex<FakeState>>,
        latency: Duration,
        outage: Duration,
    }

    struct FakeState {
        leader: MemberIndex,
        no_leader_until: Option<Instant>,
        killed: Vec<MemberIndex>,
        restarted: usize,
    }

    impl FakeCluster {
        fn new(latency: Duration, outage: Duration) -> Self {
            let state = FakeState {
                leader: 0,
                no_leader_until: None,
                killed: Vec::new(),
                restarted: 0,
            };
            Self {
                state: Arc::new(Mutex::new(state)),
                latency,
                outage,
            }
        }
    }

    impl Connection for FakeCluster {
        async fn put(&self, _key: String, _value: Vec<u8>) -> Result<u64, OpError> {
            let sent = Instant::now();
            tokio::time::sleep(self.latency).await;
            let no_leader_until = self.state.lock().unwrap().no_leader_until;
            match no_leader_until {
                Some(until) if sent >= until - self.outage && sent < until => Err(OpError("no leader".into())),
                _ => Ok(1),
            }
        }

        async fn get(&self, _key: String, _freshness: Freshness) -> Result<bool, OpError> {
            unreachable!("failover only writes")
        }

        async fn put_if_version(&self, _: String, _: Vec<u8>, _: u64) -> Result<CasOutcome, OpError> {
            unreachable!("failover only writes")
        }
    }

    impl Cluster for FakeCluster {
        type Conn = FakeCluster;

        fn kind(&self) -> TargetKind {
            TargetKind::Safekeep
        }

        fn server_pids(&self) -> Vec<u32> {
            Vec::new()
        }

        async fn connect(&self) -> Result<FakeCluster, BenchError> {
            Ok(self.clone())
        }

        fn check_running(&mut self) -> Result<(), BenchError> {
            Ok(())
        }

        fn describe(&self) -> String {
            "in memory".into()
        }

        async fn stop(self) {}
    }

    impl Operable for FakeCluster {
        async fn leader(&self) -> Result<MemberIndex, BenchError> {
            Ok(self.state.lock().unwrap().leader)
        }

        async fn kill(&mut self, member: MemberIndex) -> Result<(), BenchError> {
            let mut state = self.state.lock().unwrap();
            state.killed.push(member);
            state.no_leader_until = Some(Instant::now() + self.outage);
            state.leader = (member + 1) % 3;
            Ok(())
        }

        async fn stop_members(&mut self) -> Result<(), BenchError> {
            unreachable!("failover stops no member cleanly")
        }

        async fn start_stopped(&mut self) -> Result<(), BenchError> {
            self.state.lock().unwrap().restarted += 1;
            Ok(())
        }

        async fn wait_settled(&mut self, _timeout: Duration) -> Result<(), BenchError> {
            Ok(())
        }

        fn data_dirs(&self) -> Vec<PathBuf> {
            Vec::new()
        }

        async fn commit_index(&self) -> Result<u64, BenchError> {
            Ok(0)
        }

        async fn add_replacement(&mut self) -> Result<(), BenchError> {
            unreachable!("failover adds no member")
        }

        async fn replacement_progress(&mut self) -> Result<Option<CatchUp>, BenchError> {
            unreachable!("failover adds no member")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failover_runs_from_the_kill_to_the_first_write_sent_after_it_and_restarts_the_leader() {
        let latency = Duration::from_millis(200);
        let outage = Duration::from_millis(1_500);
        let mut cluster = FakeCluster::new(latency, outage);
        let sample = failover_once(&mut cluster, 1, 8).await.unwrap();
        // Probes sent in the 200 ms before the kill are acknowledged after it:
        // counting them would report a failover of at most 200 ms.
        let ms = sample.failover_ms;
        let least = (outage + latency).as_secs_f64() * 1_000.0;
        assert!(
            ms >= least && ms <= least + PROBE_INTERVAL.as_secs_f64() * 1_000.0 * 2.0,
            "failover {ms} ms, expected about {least} ms"
        );
        assert!(sample.write_gap_ms >= ms, "the gap starts before the kill: {sample:?}");
        assert!(sample.failed_probes > 0, "{sample:?}");
        assert_eq!((sample.killed_member, sample.new_leader_member), (1, 2));
        let state = cluster.state.lock().unwrap();
        assert_eq!((state.killed.as_slice(), state.restarted), (&[0][..], 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_killed_member_that_still_leads_is_an_error() {
        let mut cluster = FakeCluster::new(Duration::from_millis(5), Duration::from_millis(50));
        let stuck = cluster.clone();
        // The kill moves the leadership; put it back before anyone asks.
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                stuck.state.lock().unwrap().leader = 0;
            }
        });
        let error = failover_once(&mut cluster, 1, 8).await.unwrap_err();
        assert!(error.to_string().contains("still leads"), "{error}");
    }
}
