//! One simulation run: build the cluster and clients from a seed, apply the
//! scenario's faults at their simulated times, sample invariants after every
//! step, then require liveness (writes resume after the last fault heals) and
//! convergence (every replica holds the same state), and check the history.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use safekeep_history::{History, Outcome};
use safekeep_node::raft::{ClusterView, Role};

use crate::cluster::{self, Harness, Probes};
use crate::invariants::Sampler;
use crate::scenario::{Fault, Scenario, Schedule, Target};
use crate::topology::{HostSpec, Topology, host_name};
use crate::workload::{self, StopAt, WorkloadSpec};

/// Linux's in-memory filesystem.
const SHARED_MEMORY_DIR: &str = "/dev/shm";
/// Simulated time advanced per step.
const TICK: Duration = Duration::from_millis(5);
/// Fixed epoch, so simulated wall clocks match from run to run.
const EPOCH_SECS: u64 = 1_700_000_000;
/// Clients keep working this long after the last fault heals (the liveness phase).
const LIVENESS_WINDOW: Duration = Duration::from_secs(8);
/// After the last fault heals, a write must succeed within this long.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(6);
/// After the clients finish, every replica must converge within this long.
const CONVERGENCE_BOUND: Duration = Duration::from_secs(20);
/// Longest a fault aimed at the leader waits for one to be known; the rest
/// of the schedule moves later by as much.
const LEADER_WAIT: Duration = Duration::from_secs(5);
/// Hard stop of any run, in simulated time.
const MAX_SIM_TIME: Duration = Duration::from_secs(120);
/// Clients and keys of the workload.
const CLIENTS: u64 = 4;
const KEYS: u64 = 4;
/// Network latency between any two hosts when healthy.
const BASE_LATENCY_MIN: Duration = Duration::from_millis(1);
const BASE_LATENCY_MAX: Duration = Duration::from_millis(3);

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunConfig {
    pub seed: u64,
    pub scenario: Scenario,
    pub topology: Topology,
}

impl RunConfig {
    /// The one command that replays this run exactly.
    pub fn replay_command(&self) -> String {
        format!(
            "cargo run -p safekeep-sim --release -- --scenario {} --topology {} --seed {}",
            self.scenario, self.topology, self.seed
        )
    }
}

/// Why a run could not be carried out at all.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot create the run's data directory: {0}")]
    DataDir(std::io::Error),
}

/// What one run found.
#[derive(Debug)]
pub struct RunReport {
    pub config: RunConfig,
    pub operations: usize,
    pub violations: Vec<String>,
    /// Longest simulated time with no successful write, from the first one to the end.
    pub worst_write_gap: Duration,
    /// Fault actions as applied: (simulated time, action).
    pub trace: Vec<(Duration, String)>,
    /// Per client, the operations it issued in order: kind, key and value,
    /// which a seed fixes (compare-and-set's expected version is left out: it
    /// comes from what earlier operations returned).
    pub issued: std::collections::BTreeMap<u64, Vec<String>>,
    /// Every operation as recorded: what it did, what it returned, and when
    /// (simulated time), in the order they were invoked.
    pub outcomes: Vec<String>,
    /// Nodes that replaced a lost disk, and whether each holds a snapshot
    /// (it caught up from one rather than from the log alone).
    pub replacements: Vec<(u64, bool)>,
    /// What the history checks (linearizability, lost writes) found.
    pub history_check: safekeep_history::Report,
    /// Distinct committed log entries compared across replicas.
    pub entries_compared: usize,
}

impl RunReport {
    /// True when nothing was violated.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }
}

fn views(probes: &Probes) -> Vec<ClusterView> {
    let probes = probes.lock().unwrap_or_else(|p| p.into_inner());
    probes.values().map(|c| c.view()).collect()
}

/// The running node that leads in the highest term (a deposed leader that
/// has not heard of the newer term yet is not the one to target).
fn leader(probes: &Probes) -> Option<u64> {
    views(probes)
        .into_iter()
        .filter(|v| v.role == Role::Leader)
        .max_by_key(|v| v.term)
        .map(|v| v.node_id)
}

/// Whether `fault` is aimed at whoever leads when it strikes.
fn targets_leader(fault: &Fault) -> bool {
    match fault {
        Fault::Crash(target) | Fault::PowerLoss(target) | Fault::LoseDisk(target) | Fault::Isolate(target) => {
            matches!(target, Target::Leader | Target::LeaderZone)
        }
        Fault::IsolateLaggards | Fault::IsolateForgetters => true,
        _ => false,
    }
}

/// The running members a fault aimed at `target` hits. Named hosts whose
/// disk was lost stand for the nodes that replaced them (a zone's fault hits
/// the zone as it is now), so a fault never restarts a node that is gone.
fn resolve(target: &Target, hosts: &[HostSpec], replaced: &BTreeMap<u64, u64>, probes: &Probes) -> Vec<u64> {
    let zone_hosts = |zone: &str| {
        hosts
            .iter()
            .filter(|h| h.zone == zone)
            .map(|h| h.id)
            .collect::<Vec<_>>()
    };
    match target {
        Target::Hosts(ids) => ids
            .iter()
            .map(|id| {
                let mut id = *id;
                while let Some(next) = replaced.get(&id) {
                    id = *next;
                }
                id
            })
            .filter(|id| hosts.iter().any(|h| h.id == *id))
            .collect(),
        Target::Leader => leader(probes).into_iter().collect(),
        Target::LeaderZone => leader(probes)
            .and_then(|id| hosts.iter().find(|h| h.id == id))
            .map(|h| zone_hosts(h.zone))
            .unwrap_or_default(),
    }
}

/// Whether the cluster's membership, as one member reports it, no longer has
/// `node` (a node that has not joined yet reports no members at all).
async fn is_gone(sdk: &safekeep_client::Client, node: u64) -> bool {
    sdk.status()
        .await
        .is_ok_and(|status| !status.members.is_empty() && status.members.iter().all(|m| m.id != node))
}

/// First id given to a node that replaces a lost one; ids are never reused.
const FIRST_REPLACEMENT_ID: u64 = 101;
/// Sets the operator's client seed apart from the nodes'.
const OPERATOR_SEED_SALT: u64 = 0x0be7_a70e;
/// How long the operator keeps trying to remove a lost node after the
/// clients stop (faults may keep a quorum away until they heal).
const OPERATOR_GRACE: Duration = Duration::from_secs(20);

struct Faults<'s, 'a> {
    sim: &'s mut turmoil::Sim<'a>,
    topology: Topology,
    harness: Harness,
    probes: Probes,
    crashed: BTreeSet<u64>,
    /// The nodes that should be members: the topology, less lost disks, plus replacements.
    hosts: Vec<HostSpec>,
    /// Lost node -> the node that replaced it.
    replaced: BTreeMap<u64, u64>,
    data_root: std::path::PathBuf,
    next_id: u64,
    /// When the clients stop; the operator keeps trying a while longer.
    stop_at: StopAt,
    /// The wiped-disk scenario's plan, once its first step chose the nodes.
    wipe: Option<WipePlan>,
    /// The restart-inside-lease scenario's plan: the leader and the
    /// follower to restart, once its first step chose them.
    lease_restart: Option<(u64, u64)>,
    /// What the fault steps themselves found wrong.
    findings: Vec<String>,
}

/// Whom the wiped-disk scenario cuts off and wipes.
#[derive(Debug, Clone)]
struct WipePlan {
    /// Followers cut off first, so they fall behind.
    laggards: Vec<u64>,
    /// The up-to-date follower whose data directory is emptied.
    wiped: u64,
}

impl Faults<'_, '_> {
    fn node_names(&self) -> Vec<String> {
        self.hosts.iter().map(HostSpec::name).collect()
    }

    /// The members standing for `ids` now (replacements for lost disks).
    fn current(&self, ids: &[u64]) -> Vec<u64> {
        resolve(&Target::Hosts(ids.to_vec()), &self.hosts, &self.replaced, &self.probes)
    }

    fn crash(&mut self, id: u64) {
        if self.crashed.insert(id) {
            // Drop the harness's handle first: nothing may keep the store open.
            self.probes.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            self.sim.crash(host_name(id));
        }
    }

    /// The hosts lose power: they crash, and writes their stores had not
    /// synced are gone when they come back.
    fn lose_power(&mut self, id: u64) {
        // A host already down still had unsynced writes in its page cache.
        self.harness.disk(id).lose_power();
        self.crash(id);
    }

    fn lose_disk(&mut self, lost: u64) -> String {
        let Some(position) = self.hosts.iter().position(|h| h.id == lost) else {
            return format!("lose disk of {lost}: not a member");
        };
        // Join through a voter that is up, if one is.
        let voters = || self.hosts.iter().filter(|h| h.id != lost && h.voter);
        let Some(seed) = voters()
            .find(|h| !self.crashed.contains(&h.id))
            .or_else(|| voters().next())
            .map(|h| h.id)
        else {
            return format!("lose disk of {lost}: no other voter to join through");
        };
        self.crash(lost);
        self.crashed.remove(&lost);
        let _ = std::fs::remove_dir_all(cluster::data_dir(&self.data_root, lost));
        let HostSpec { zone, voter, .. } = self.hosts.remove(position);
        let lost_was_voter = voter;
        let id = self.next_id;
        self.next_id += 1;
        self.replaced.insert(lost, id);
        let spec = HostSpec { id, zone, voter };
        let config = cluster::replacement_config(&spec, seed, self.topology, &self.data_root);
        cluster::add_host(self.sim, config, &self.harness);
        self.hosts.push(spec);
        let endpoints: Vec<String> = self.hosts.iter().map(|h| cluster::client_address(h.id)).collect();
        let operator_seed = self.harness.node_seed(lost) ^ OPERATOR_SEED_SALT;
        let stop_at = self.stop_at.clone();
        self.sim.client(format!("operator-{lost}"), async move {
            let channels = endpoints
                .iter()
                .map(|e| crate::net::channel(e))
                .collect::<Result<Vec<_>, _>>()?;
            let config = safekeep_client::ClientConfig::new(endpoints).with_rng_seed(operator_seed);
            let sdk = safekeep_client::Client::from_channels(config, channels)?;
            loop {
                // A voter is swapped for its replacement in one joint change
                // (the guard refuses every set on the way otherwise); a
                // learner is simply removed.
                let result = match lost_was_voter {
                    true => sdk.replace_voter(lost, id, false).await,
                    false => sdk.remove_member(lost, false).await,
                };
                match result {
                    Ok(_) => return Ok(()),
                    // An earlier attempt may have landed with its answer lost.
                    Err(_) if is_gone(&sdk, lost).await => return Ok(()),
                    Err(e) if turmoil::sim_elapsed().unwrap_or_default() > stop_at.get() + OPERATOR_GRACE => {
                        return Err(format!("replacing lost node {lost} by {id}: {e}").into());
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        format!("lose disk of {lost}; node {id} replaces it in zone {zone}")
    }

    /// Cuts `ids` off from every other member, both directions.
    fn isolate(&mut self, ids: &[u64]) {
        for id in ids {
            for other in self.hosts.iter().filter(|h| !ids.contains(&h.id)) {
                self.sim.partition(host_name(*id), other.name());
            }
        }
    }

    /// For a two-step scenario: the leader, the highest-id follower that
    /// `eligible` admits, and a minority of the other followers. No leader
    /// is a finding, since the scenario would then test nothing.
    fn leader_pick_and_minority(
        &mut self,
        scenario: &str,
        eligible: impl Fn(u64) -> bool,
    ) -> Result<(u64, u64, Vec<u64>), &'static str> {
        let Some(leader) = leader(&self.probes) else {
            self.findings.push(format!(
                "the {scenario} scenario found no leader to aim at: it tested nothing"
            ));
            return Err("no leader");
        };
        let voters: Vec<u64> = self.hosts.iter().filter(|h| h.voter).map(|h| h.id).collect();
        let followers: Vec<u64> = voters.iter().copied().filter(|id| *id != leader).collect();
        let picked = followers
            .iter()
            .copied()
            .filter(|id| eligible(*id))
            .max()
            .ok_or("no follower to pick")?;
        let minority = (voters.len() - 1) / 2;
        let rest = followers
            .into_iter()
            .filter(|id| *id != picked)
            .take(minority)
            .collect();
        Ok((leader, picked, rest))
    }

    /// The first step of the wiped-disk scenario: a minority of the
    /// leader's followers is cut off; one other follower, not the
    /// initializer (which would refuse to start), is to be wiped.
    fn isolate_laggards(&mut self) -> String {
        let (leader, wiped, laggards) = match self.leader_pick_and_minority("wiped-disk", |id| id != 1) {
            Ok(plan) => plan,
            Err(what) => return format!("isolate laggards: {what}"),
        };
        self.isolate(&laggards);
        let what = format!("isolate laggards {laggards:?} (leader {leader}; {wiped} is to be wiped)");
        self.wipe = Some(WipePlan { laggards, wiped });
        what
    }

    /// The wiped node restarts empty under its old id, on the laggards'
    /// side of a new split: with them it would be a majority.
    fn wipe_disk_keep_id(&mut self) -> String {
        let Some(WipePlan { laggards, wiped }) = self.wipe.clone() else {
            return "wipe disk: no plan".into();
        };
        self.apply(&Fault::HealNetwork);
        self.crash(wiped);
        self.crashed.remove(&wiped);
        let _ = std::fs::remove_dir_all(cluster::data_dir(&self.data_root, wiped));
        let mut side = laggards.clone();
        side.push(wiped);
        self.isolate(&side);
        self.sim.bounce(host_name(wiped));
        format!("wipe the disk of {wiped}, restart it under its old id; split {side:?} from the rest")
    }

    /// The wiped node must hold no Raft state: every member refused it. The
    /// operator then replaces it as after a lost disk.
    fn replace_wiped(&mut self) -> String {
        let Some(WipePlan { wiped, .. }) = self.wipe.clone() else {
            return "replace wiped: no plan".into();
        };
        let view = {
            let probes = self.probes.lock().unwrap_or_else(|p| p.into_inner());
            probes.get(&wiped).map(|c| c.view())
        };
        match view {
            Some(view) if view.members.is_empty() && view.applied_index == 0 => {}
            Some(view) => self.findings.push(format!(
                "node {wiped} restarted on an emptied data directory took part under its old id: \
                 it knows {} members and applied up to {}",
                view.members.len(),
                view.applied_index
            )),
            None => self
                .findings
                .push(format!("node {wiped} did not come back after its wipe")),
        }
        self.lose_disk(wiped)
    }

    /// The first step of the restart-inside-lease scenario: a minority of
    /// the leader's followers is cut off until they forget the leader; one
    /// other follower, which keeps renewing the lease, is to restart.
    fn isolate_forgetters(&mut self) -> String {
        let (leader, restarted, forgetters) = match self.leader_pick_and_minority("restart-inside-lease", |_| true) {
            Ok(plan) => plan,
            Err(what) => return format!("isolate forgetters: {what}"),
        };
        self.isolate(&forgetters);
        self.lease_restart = Some((leader, restarted));
        format!("isolate forgetters {forgetters:?} (leader {leader}; {restarted} is to restart)")
    }

    /// The leader is cut off from every node while its lease lives, and the
    /// chosen follower restarts at once beside the forgetters.
    fn restart_inside_lease(&mut self) -> String {
        let Some((leader, restarted)) = self.lease_restart else {
            return "restart inside lease: no plan".into();
        };
        self.apply(&Fault::HealNetwork);
        self.isolate(&[leader]);
        self.crash(restarted);
        self.crashed.remove(&restarted);
        self.sim.bounce(host_name(restarted));
        format!("isolate leader {leader} from the nodes; restart {restarted} inside its lease")
    }

    fn apply(&mut self, fault: &Fault) -> String {
        match fault {
            Fault::IsolateForgetters => self.isolate_forgetters(),
            Fault::RestartInsideLease => self.restart_inside_lease(),
            Fault::IsolateLaggards => self.isolate_laggards(),
            Fault::WipeDiskKeepId => self.wipe_disk_keep_id(),
            Fault::ReplaceWiped => self.replace_wiped(),
            Fault::Crash(target) => {
                let ids = resolve(target, &self.hosts, &self.replaced, &self.probes);
                for id in &ids {
                    self.crash(*id);
                }
                format!("crash {ids:?}")
            }
            Fault::PowerLoss(target) => {
                let ids = resolve(target, &self.hosts, &self.replaced, &self.probes);
                for id in &ids {
                    self.lose_power(*id);
                }
                format!("power loss {ids:?}")
            }
            Fault::LoseDisk(target) => {
                let ids = resolve(target, &self.hosts, &self.replaced, &self.probes);
                ids.iter().map(|id| self.lose_disk(*id)).collect::<Vec<_>>().join("; ")
            }
            Fault::RestartAll => {
                let ids: Vec<u64> = std::mem::take(&mut self.crashed).into_iter().collect();
                for id in &ids {
                    self.sim.bounce(host_name(*id));
                }
                format!("restart {ids:?}")
            }
            Fault::Isolate(target) => {
                let ids = resolve(target, &self.hosts, &self.replaced, &self.probes);
                self.isolate(&ids);
                format!("isolate {ids:?}")
            }
            Fault::PartitionOneWay { from, to } => {
                let from = self.current(from);
                let to = self.current(to);
                for a in &from {
                    for b in &to {
                        self.sim.partition_oneway(host_name(*a), host_name(*b));
                    }
                }
                format!("partition {from:?} -> {to:?}")
            }
            Fault::Degrade {
                a,
                b,
                max_ms,
                loss_percent,
            } => {
                let a = self.current(a);
                let b = self.current(b);
                for x in &a {
                    for y in &b {
                        self.sim.set_link_max_message_latency(
                            host_name(*x),
                            host_name(*y),
                            Duration::from_millis(*max_ms),
                        );
                        self.sim
                            .set_link_fail_rate(host_name(*x), host_name(*y), f64::from(*loss_percent) / 100.0);
                    }
                }
                format!("degrade {a:?} <-> {b:?}: up to {max_ms} ms, {loss_percent}% loss")
            }
            Fault::HealNetwork => {
                let names = self.node_names();
                for (i, x) in names.iter().enumerate() {
                    for y in &names[i + 1..] {
                        self.sim.repair(x.as_str(), y.as_str());
                        self.sim
                            .set_link_max_message_latency(x.as_str(), y.as_str(), BASE_LATENCY_MAX);
                        self.sim.set_link_fail_rate(x.as_str(), y.as_str(), 0.0);
                    }
                }
                "heal network".to_string()
            }
        }
    }
}

/// Why a simulation step failed.
#[derive(Debug)]
enum StepFailure {
    /// A host or client returned an error.
    Failed(String),
    /// A host panicked (an assertion of openraft's over a store that broke
    /// its promises, say): reported as a violation, not passed on.
    Panic(String),
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepFailure::Failed(e) => write!(f, "a host or client failed: {e}"),
            StepFailure::Panic(message) => write!(f, "a host panicked: {message}"),
        }
    }
}

/// One simulation step. Returns whether every client has finished.
fn step(sim: &mut turmoil::Sim<'_>) -> Result<bool, StepFailure> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.step())) {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => Err(StepFailure::Failed(e.to_string())),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|m| (*m).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            Err(StepFailure::Panic(message))
        }
    }
}

/// Longest stretch without a successful write, from the first success to `end_ns`.
fn worst_write_gap(history: &History, end_ns: u64) -> Duration {
    let mut successes: Vec<u64> = history
        .operations()
        .iter()
        .filter(|op| op.op.is_write())
        .filter(|op| matches!(op.outcome, Outcome::Written { .. } | Outcome::Deleted { .. }))
        .filter_map(|op| op.return_ns)
        .collect();
    successes.sort_unstable();
    let mut worst = 0;
    for pair in successes.windows(2) {
        worst = worst.max(pair[1] - pair[0]);
    }
    if let Some(last) = successes.last() {
        worst = worst.max(end_ns.saturating_sub(*last));
    }
    Duration::from_nanos(worst)
}

/// First successful write that completed at or after `from_ns`.
fn first_write_after(history: &History, from_ns: u64) -> Option<u64> {
    history
        .operations()
        .iter()
        .filter(|op| op.op.is_write() && op.invoke_ns >= from_ns)
        .filter(|op| matches!(op.outcome, Outcome::Written { .. } | Outcome::Deleted { .. }))
        .filter_map(|op| op.return_ns)
        .min()
}

/// A fresh directory for the run's node data: in memory (tmpfs) where the
/// system has one, since simulated disks need durability only across a
/// simulated crash, not a real one.
fn data_root() -> std::io::Result<tempfile::TempDir> {
    let shared_memory = std::path::Path::new(SHARED_MEMORY_DIR);
    if shared_memory.is_dir()
        && let Ok(dir) = tempfile::Builder::new()
            .prefix("safekeep-sim-")
            .tempdir_in(shared_memory)
    {
        return Ok(dir);
    }
    tempfile::Builder::new().prefix("safekeep-sim-").tempdir()
}

/// Runs one simulation.
pub fn run(config: RunConfig) -> Result<RunReport, SimError> {
    let schedule = Schedule::draw(config.scenario, config.topology, config.seed);
    let data_root = data_root().map_err(SimError::DataDir)?;
    let harness = Harness::new(config.seed);
    let probes = harness.probes.clone();
    let recorder = safekeep_history::Recorder::new();
    let mut healed_at = schedule.healed_at();
    let stop_at = StopAt::new(healed_at + LIVENESS_WINDOW);

    let mut sim = turmoil::Builder::new()
        .rng_seed(config.seed)
        .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .simulation_duration(MAX_SIM_TIME)
        .tick_duration(TICK)
        .min_message_latency(BASE_LATENCY_MIN)
        .max_message_latency(BASE_LATENCY_MAX)
        .build();
    cluster::add_hosts(&mut sim, config.topology, data_root.path(), &harness);
    let spec = WorkloadSpec {
        clients: CLIENTS,
        keys: KEYS,
        until: stop_at.clone(),
        seed: config.seed,
    };
    let refusals = workload::Refusals::default();
    workload::add_clients(&mut sim, config.topology, &spec, &recorder, &refusals);
    crate::raw_tenants::add_clients(&mut sim, config.topology, &spec, &recorder, &refusals);

    let mut violations = Vec::new();
    let mut trace = Vec::new();
    let mut sampler = Sampler::default();
    let mut next_fault = 0;
    let mut faults = Faults {
        sim: &mut sim,
        topology: config.topology,
        harness: harness.clone(),
        probes: probes.clone(),
        crashed: BTreeSet::new(),
        hosts: config.topology.hosts(),
        replaced: BTreeMap::new(),
        data_root: data_root.path().to_path_buf(),
        next_id: FIRST_REPLACEMENT_ID,
        stop_at: stop_at.clone(),
        wipe: None,
        lease_restart: None,
        findings: Vec::new(),
    };
    // How much later than scheduled the faults strike, having waited for a
    // leader to aim at; and since when the next one has been waiting.
    let mut delay = Duration::ZERO;
    let mut waiting_since: Option<Duration> = None;
    // Set when a host panicked: the simulation cannot go on from there.
    let mut halted = false;
    loop {
        let now = faults.sim.elapsed();
        while let Some(timed) = schedule.faults.get(next_fault).filter(|f| f.at + delay <= now) {
            if targets_leader(&timed.fault) && leader(&probes).is_none() {
                let since = *waiting_since.get_or_insert(now);
                if now - since < LEADER_WAIT {
                    // Not yet: try again after the next step.
                    break;
                }
                trace.push((now, format!("no leader after {LEADER_WAIT:?}")));
            }
            if let Some(since) = waiting_since.take() {
                delay += now - since;
                healed_at = schedule.healed_at() + delay;
                stop_at.set(healed_at + LIVENESS_WINDOW);
            }
            let what = faults.apply(&timed.fault);
            trace.push((now, what));
            next_fault += 1;
        }
        {
            let nodes = probes.lock().unwrap_or_else(|p| p.into_inner());
            sampler.observe(&nodes);
        }
        match step(faults.sim) {
            Ok(true) => break,
            Ok(false) => {}
            Err(failure) => {
                halted = matches!(failure, StepFailure::Panic(_));
                violations.push(failure.to_string());
                break;
            }
        }
    }
    // Every fault has healed by now: the cluster must converge.
    if !halted {
        for timed in &schedule.faults[next_fault..] {
            let what = faults.apply(&timed.fault);
            trace.push((faults.sim.elapsed(), what));
        }
    }
    let converge_from = faults.sim.elapsed();
    let members: BTreeSet<u64> = faults.hosts.iter().map(|h| h.id).collect();
    let converged = loop {
        if halted {
            break Err("the simulation stopped where a host panicked".to_string());
        }
        let views = {
            let nodes = probes.lock().unwrap_or_else(|p| p.into_inner());
            sampler.observe(&nodes)
        };
        if let Some(reason) = divergence(&views, &probes, &members) {
            if faults.sim.elapsed() - converge_from > CONVERGENCE_BOUND {
                break Err(reason);
            }
        } else {
            break Ok(());
        }
        if let Err(failure) = step(faults.sim) {
            break Err(format!("while converging, {failure}"));
        }
    };
    let replacements: Vec<(u64, bool)> = {
        let probes = probes.lock().unwrap_or_else(|p| p.into_inner());
        (FIRST_REPLACEMENT_ID..faults.next_id)
            .map(|id| (id, probes.get(&id).is_some_and(|c| c.view().snapshot_index.is_some())))
            .collect()
    };
    if let Err(reason) = converged {
        violations.push(format!(
            "replicas did not converge within {CONVERGENCE_BOUND:?}: {reason}"
        ));
    }
    {
        let nodes = probes.lock().unwrap_or_else(|p| p.into_inner());
        sampler.compare_logs(&nodes);
    }
    violations.extend(sampler.findings());
    violations.extend(refusals.findings());
    violations.append(&mut faults.findings);

    let history = recorder.history();
    let end_ns = u64::try_from(stop_at.get().as_nanos()).unwrap_or(u64::MAX);
    let healed_ns = u64::try_from(healed_at.as_nanos()).unwrap_or(u64::MAX);
    match first_write_after(&history, healed_ns) {
        Some(at) if at - healed_ns <= u64::try_from(LIVENESS_BOUND.as_nanos()).unwrap_or(u64::MAX) => {}
        Some(at) => violations.push(format!(
            "liveness: first write after healing took {:?}",
            Duration::from_nanos(at - healed_ns)
        )),
        None => violations.push("liveness: no write succeeded after the last fault healed".into()),
    }
    let history_check = safekeep_history::check_all(&history);
    if !history_check.is_ok() {
        violations.push(history_check.to_string());
    }
    let mut issued: std::collections::BTreeMap<u64, Vec<String>> = std::collections::BTreeMap::new();
    for op in history.operations() {
        let value = match &op.op {
            safekeep_history::Op::Put { value, .. } | safekeep_history::Op::PutIf { value, .. } => {
                String::from_utf8_lossy(value).into_owned()
            }
            _ => String::new(),
        };
        issued
            .entry(op.client.0)
            .or_default()
            .push(format!("{} {} {value}", op.op.kind_name(), op.op.key()));
    }
    let outcomes = history.operations().iter().map(ToString::to_string).collect();
    Ok(RunReport {
        config,
        issued,
        outcomes,
        replacements,
        history_check,
        entries_compared: sampler.entries_checked(),
        operations: history.len(),
        violations,
        worst_write_gap: worst_write_gap(&history, end_ns),
        trace,
    })
}

/// Why the running replicas differ, if they do.
fn divergence(views: &[ClusterView], probes: &Probes, expected: &BTreeSet<u64>) -> Option<String> {
    let running: BTreeSet<u64> = views.iter().map(|v| v.node_id).collect();
    if &running != expected {
        return Some(format!("nodes running: {running:?}, expected {expected:?}"));
    }
    for view in views {
        let members: BTreeSet<u64> = view.members.iter().map(|m| m.id).collect();
        if &members != expected {
            return Some(format!(
                "node {} sees members {members:?}, expected {expected:?}",
                view.node_id
            ));
        }
    }
    let applied: BTreeSet<u64> = views.iter().map(|v| v.applied_index).collect();
    if applied.len() != 1 {
        return Some(format!("applied indexes differ: {applied:?}"));
    }
    let probes = probes.lock().unwrap_or_else(|p| p.into_inner());
    let mut digests = BTreeSet::new();
    for node in probes.values() {
        match node.reader().digest() {
            Ok(d) => digests.insert((d.records, d.hash)),
            Err(e) => return Some(format!("node {} cannot digest its state: {e}", node.node_id())),
        };
    }
    if digests.len() != 1 {
        return Some(format!("state machines differ: {digests:?}"));
    }
    None
}
