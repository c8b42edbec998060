//! Named fault scenarios and the schedule each draws from a seed. A schedule
//! is a list of timed fault actions; the same seed always yields the same
//! schedule. Every schedule ends with all faults healed, after which the run
//! requires progress and convergence (the liveness phase).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::topology::{Topology, ZONES};

/// When the first fault strikes: after the cluster has formed and taken writes.
const FIRST_FAULT_AT: Duration = Duration::from_secs(3);
/// Cluster-wide power losses in the unsynced-write-loss scenario.
const POWER_LOSSES: usize = 2;
/// When every fault is healed, at the latest.
pub const FAULTS_END_BY: Duration = Duration::from_secs(14);

/// A named scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scenario {
    /// No faults: a baseline.
    Calm,
    /// Every host of one zone loses power at once and comes back with its
    /// disk, less whatever it had not synced.
    ZonePowerLoss,
    /// One zone is cut off from the others, both ways, then healed.
    ZoneIsolation,
    /// One zone cannot send to another (one direction only).
    AsymmetricPartition,
    /// The leader crashes and restarts.
    LeaderCrash,
    /// The leader's zone is cut off.
    LeaderZoneIsolation,
    /// Latency spikes and message loss between zones.
    LatencyAndLoss,
    /// Every node restarts, one at a time.
    RollingRestart,
    /// One node loses its disk; a new node (new id, same zone) replaces it,
    /// catching up by snapshot, and the lost one is removed from the cluster.
    DiskLoss,
    /// A disk is lost and its node replaced (add, promote, remove) while
    /// another zone is cut off, so the membership changes wait out the fault.
    MembershipDuringPartition,
    /// Every host of every zone loses power at once, twice: what a node
    /// acknowledged but had not synced is gone, so acknowledging before a
    /// sync loses writes here.
    UnsyncedWriteLoss,
    /// A minority of followers is cut off and falls behind; then an
    /// up-to-date follower's data directory is emptied and it restarts under
    /// its old id and config, on the laggards' side of a new partition. Its
    /// empty log would vote a laggard in, a leader without writes the
    /// cluster acknowledged: it must be refused instead. After healing, the
    /// operator replaces it by a fresh node.
    WipedDiskSameId,
    /// A minority of followers is cut off long enough to forget the leader;
    /// then the leader is cut off (clients still reach it, and it serves
    /// lease reads until its lease runs out) and one of the followers that
    /// renewed that lease restarts, with the forgetters on its side. Were
    /// it to campaign at once, it would lead beside a leader still serving
    /// lease reads.
    RestartInsideLease,
    /// A seeded mix of the faults above, with seeded rates.
    Random,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 14] = [
        Scenario::Calm,
        Scenario::ZonePowerLoss,
        Scenario::ZoneIsolation,
        Scenario::AsymmetricPartition,
        Scenario::LeaderCrash,
        Scenario::LeaderZoneIsolation,
        Scenario::LatencyAndLoss,
        Scenario::RollingRestart,
        Scenario::DiskLoss,
        Scenario::MembershipDuringPartition,
        Scenario::UnsyncedWriteLoss,
        Scenario::WipedDiskSameId,
        Scenario::RestartInsideLease,
        Scenario::Random,
    ];
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scenario::Calm => "calm",
            Scenario::ZonePowerLoss => "zone-power-loss",
            Scenario::ZoneIsolation => "zone-isolation",
            Scenario::AsymmetricPartition => "asymmetric-partition",
            Scenario::LeaderCrash => "leader-crash",
            Scenario::LeaderZoneIsolation => "leader-zone-isolation",
            Scenario::LatencyAndLoss => "latency-and-loss",
            Scenario::RollingRestart => "rolling-restart",
            Scenario::DiskLoss => "disk-loss",
            Scenario::MembershipDuringPartition => "membership-during-partition",
            Scenario::UnsyncedWriteLoss => "unsynced-write-loss",
            Scenario::WipedDiskSameId => "wiped-disk-same-id",
            Scenario::RestartInsideLease => "restart-inside-lease",
            Scenario::Random => "random",
        })
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL.into_iter().find(|sc| sc.to_string() == s).ok_or_else(|| {
            let names: Vec<String> = Scenario::ALL.iter().map(ToString::to_string).collect();
            format!("unknown scenario '{s}': expected one of {}", names.join(", "))
        })
    }
}

/// Hosts a fault targets: fixed ids, or whoever leads when it strikes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Hosts(Vec<u64>),
    Leader,
    LeaderZone,
}

/// One fault action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// Crash hosts' processes (they stay down until `RestartAll`); what
    /// they wrote survives.
    Crash(Target),
    /// Hosts lose power (down until `RestartAll`); writes their stores had
    /// not synced are lost.
    PowerLoss(Target),
    /// Restart every crashed host.
    RestartAll,
    /// Cut hosts off from everyone else, both directions.
    Isolate(Target),
    /// Messages from `from` to `to` are dropped.
    PartitionOneWay { from: Vec<u64>, to: Vec<u64> },
    /// Links between the two groups get up to `max_ms` of latency and `loss` failure rate.
    Degrade {
        a: Vec<u64>,
        b: Vec<u64>,
        max_ms: u64,
        loss_percent: u8,
    },
    /// Restore every link and latency.
    HealNetwork,
    /// A host's disk is lost: it crashes, its data is wiped, and a new node
    /// with a new id joins in its zone; an operator then removes the lost id.
    LoseDisk(Target),
    /// Cut off a minority of the leader's followers, so they fall behind;
    /// one up-to-date follower that is not the initializer is chosen to be
    /// wiped next.
    IsolateLaggards,
    /// The chosen follower's data directory is emptied and it restarts at
    /// once with its old id and config, while the network splits into the
    /// laggards with it and everyone else.
    WipeDiskKeepId,
    /// The wiped node must hold nothing under its old id; the operator
    /// replaces it by a fresh node, as after `LoseDisk`.
    ReplaceWiped,
    /// Cut off a minority of the leader's followers long enough that they
    /// forget it; one other follower is chosen to restart.
    IsolateForgetters,
    /// Cut the leader off from every node (clients still reach it), and
    /// restart the chosen follower at once, on the forgetters' side.
    RestartInsideLease,
}

/// A fault at a simulated time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedFault {
    pub at: Duration,
    pub fault: Fault,
}

/// The faults of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub faults: Vec<TimedFault>,
}

fn other_zones(zone: &str) -> Vec<&'static str> {
    ZONES.iter().copied().filter(|z| *z != zone).collect()
}

/// The fault of a one-fault scenario and the action that heals it.
fn single_fault(scenario: Scenario, topology: Topology, zone: &str, rng: &mut StdRng) -> (Fault, Fault) {
    match scenario {
        Scenario::ZonePowerLoss => (
            Fault::PowerLoss(Target::Hosts(topology.zone_hosts(zone))),
            Fault::RestartAll,
        ),
        Scenario::ZoneIsolation => (
            Fault::Isolate(Target::Hosts(topology.zone_hosts(zone))),
            Fault::HealNetwork,
        ),
        Scenario::AsymmetricPartition => (
            Fault::PartitionOneWay {
                from: topology.zone_hosts(zone),
                to: hosts_in(topology, &other_zones(zone)),
            },
            Fault::HealNetwork,
        ),
        Scenario::LeaderCrash => (Fault::Crash(Target::Leader), Fault::RestartAll),
        Scenario::UnsyncedWriteLoss => (
            Fault::PowerLoss(Target::Hosts(topology.hosts().iter().map(|h| h.id).collect())),
            Fault::RestartAll,
        ),
        Scenario::LeaderZoneIsolation => (Fault::Isolate(Target::LeaderZone), Fault::HealNetwork),
        // In a swarm: one node of the zone restarts (a step of a rolling restart).
        Scenario::RollingRestart => {
            let hosts = topology.zone_hosts(zone);
            let host = hosts[rng.random_range(0..hosts.len())];
            (Fault::Crash(Target::Hosts(vec![host])), Fault::RestartAll)
        }
        // In a swarm: one node loses its disk and is replaced, a membership
        // change (add, promote, remove) while other faults strike.
        Scenario::DiskLoss | Scenario::MembershipDuringPartition => (
            Fault::LoseDisk(Target::Hosts(vec![pick_lost_node(topology, rng)])),
            Fault::RestartAll,
        ),
        _ => (
            Fault::Degrade {
                a: topology.zone_hosts(zone),
                b: hosts_in(topology, &other_zones(zone)),
                max_ms: rng.random_range(20..300),
                loss_percent: rng.random_range(0..20),
            },
            Fault::HealNetwork,
        ),
    }
}

/// The faults a swarm run may pick from.
const SWARM_KINDS: [Scenario; 9] = [
    Scenario::ZonePowerLoss,
    Scenario::ZoneIsolation,
    Scenario::AsymmetricPartition,
    Scenario::LeaderCrash,
    Scenario::LeaderZoneIsolation,
    Scenario::LatencyAndLoss,
    Scenario::UnsyncedWriteLoss,
    Scenario::RollingRestart,
    Scenario::DiskLoss,
];
/// Least time between two swarm faults, so a run never piles up faults at one instant.
const MIN_FAULT_SPACING_MS: u64 = 100;
/// Disks a swarm run loses at most (each loss adds a node and removes one).
const SWARM_MAX_DISK_LOSSES: usize = 1;

/// What one swarm run draws before its faults: the mix and its rates.
#[derive(Debug, Clone, PartialEq)]
struct Swarm {
    /// The fault kinds this run uses (at least one).
    kinds: Vec<Scenario>,
    /// How long a fault lasts: from, to (milliseconds).
    outage_ms: (u64, u64),
    /// Longest calm between two faults (milliseconds); 0 packs them back to back.
    max_quiet_ms: u64,
    /// Bounds of latency spikes and message loss.
    max_latency_ms: u64,
    max_loss_percent: u8,
    /// Whether the next fault may strike before the previous one heals.
    overlapping: bool,
}

impl Swarm {
    fn draw(rng: &mut StdRng) -> Self {
        let mut kinds: Vec<Scenario> = SWARM_KINDS.into_iter().filter(|_| rng.random_bool(0.5)).collect();
        if kinds.is_empty() {
            kinds.push(SWARM_KINDS[rng.random_range(0..SWARM_KINDS.len())]);
        }
        let shortest = rng.random_range(100..1_500);
        Self {
            kinds,
            outage_ms: (shortest, shortest + rng.random_range(100..4_000)),
            max_quiet_ms: [0, 300, 1_000, 3_000][rng.random_range(0..4)],
            max_latency_ms: [20, 100, 400][rng.random_range(0..3)],
            max_loss_percent: [0, 5, 20, 50][rng.random_range(0..4)],
            overlapping: rng.random_bool(0.5),
        }
    }
}

/// A node to lose the disk of: any but the first, which new nodes join through.
fn pick_lost_node(topology: Topology, rng: &mut StdRng) -> u64 {
    let ids: Vec<u64> = topology.hosts().iter().map(|h| h.id).filter(|id| *id != 1).collect();
    ids[rng.random_range(0..ids.len())]
}

fn hosts_in(topology: Topology, zones: &[&str]) -> Vec<u64> {
    zones.iter().flat_map(|z| topology.zone_hosts(z)).collect()
}

impl Schedule {
    /// The schedule of `scenario` on `topology` for `seed`.
    pub fn draw(scenario: Scenario, topology: Topology, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5afe_6ee9);
        let mut faults = Vec::new();
        let jitter = |rng: &mut StdRng| Duration::from_millis(rng.random_range(0..1_000));
        let start = FIRST_FAULT_AT + jitter(&mut rng);
        let outage = |rng: &mut StdRng| Duration::from_millis(rng.random_range(1_500..5_000));
        let zone = ZONES[rng.random_range(0..ZONES.len())];
        let mut push = |at: Duration, fault: Fault| faults.push(TimedFault { at, fault });
        match scenario {
            Scenario::Calm => {}
            Scenario::ZonePowerLoss
            | Scenario::ZoneIsolation
            | Scenario::AsymmetricPartition
            | Scenario::LeaderCrash
            | Scenario::LeaderZoneIsolation
            | Scenario::LatencyAndLoss => {
                let (fault, heal) = single_fault(scenario, topology, zone, &mut rng);
                push(start, fault);
                push(start + outage(&mut rng), heal);
            }
            Scenario::RollingRestart => {
                let mut at = start;
                for host in topology.hosts() {
                    push(at, Fault::Crash(Target::Hosts(vec![host.id])));
                    at += Duration::from_millis(rng.random_range(300..1_200));
                    push(at, Fault::RestartAll);
                    at += Duration::from_millis(rng.random_range(800..1_500));
                }
            }
            Scenario::UnsyncedWriteLoss => {
                let everyone: Vec<u64> = topology.hosts().iter().map(|h| h.id).collect();
                let mut at = start;
                for _ in 0..POWER_LOSSES {
                    push(at, Fault::PowerLoss(Target::Hosts(everyone.clone())));
                    at += Duration::from_millis(rng.random_range(300..1_500));
                    push(at, Fault::RestartAll);
                    at += Duration::from_millis(rng.random_range(1_500..3_000));
                }
            }
            Scenario::WipedDiskSameId => {
                let split = start + Duration::from_millis(rng.random_range(1_000..2_500));
                let healed = split + Duration::from_millis(rng.random_range(3_500..6_000));
                push(start, Fault::IsolateLaggards);
                push(split, Fault::WipeDiskKeepId);
                push(healed, Fault::HealNetwork);
                push(healed, Fault::ReplaceWiped);
            }
            Scenario::RestartInsideLease => {
                // Longer than the followers' memory of a leader (its lease).
                let forgotten = start + Duration::from_millis(rng.random_range(1_500..2_500));
                push(start, Fault::IsolateForgetters);
                push(forgotten, Fault::RestartInsideLease);
                push(forgotten + outage(&mut rng), Fault::HealNetwork);
            }
            Scenario::DiskLoss => {
                let lost = pick_lost_node(topology, &mut rng);
                push(
                    start + Duration::from_secs(2),
                    Fault::LoseDisk(Target::Hosts(vec![lost])),
                );
            }
            Scenario::MembershipDuringPartition => {
                let lost = pick_lost_node(topology, &mut rng);
                let lost_zone = topology.zone_of(lost).unwrap_or(ZONES[0]);
                let seed_zone = topology.zone_of(1).unwrap_or(ZONES[0]);
                let cut = ZONES
                    .iter()
                    .copied()
                    .find(|z| *z != lost_zone && *z != seed_zone)
                    .unwrap_or(lost_zone);
                push(start, Fault::Isolate(Target::Hosts(topology.zone_hosts(cut))));
                push(
                    start + Duration::from_millis(500),
                    Fault::LoseDisk(Target::Hosts(vec![lost])),
                );
                push(
                    start + Duration::from_millis(500) + outage(&mut rng),
                    Fault::HealNetwork,
                );
            }
            Scenario::Random => {
                // Swarm testing: the seed draws which faults this run uses and
                // how often and how long they strike, so different seeds
                // stress different corners rather than one average mix.
                let swarm = Swarm::draw(&mut rng);
                let mut at = start;
                let mut disks_lost = 0;
                while at < FAULTS_END_BY {
                    let mut kind = swarm.kinds[rng.random_range(0..swarm.kinds.len())];
                    if kind == Scenario::DiskLoss {
                        if disks_lost < SWARM_MAX_DISK_LOSSES {
                            disks_lost += 1;
                        } else {
                            kind = Scenario::LeaderCrash;
                        }
                    }
                    let zone = ZONES[rng.random_range(0..ZONES.len())];
                    let (fault, heal) = single_fault(kind, topology, zone, &mut rng);
                    let fault = match fault {
                        Fault::Degrade { a, b, .. } => Fault::Degrade {
                            a,
                            b,
                            max_ms: rng.random_range(1..=swarm.max_latency_ms),
                            loss_percent: rng.random_range(0..=swarm.max_loss_percent),
                        },
                        other => other,
                    };
                    push(at, fault);
                    let lasts = Duration::from_millis(rng.random_range(swarm.outage_ms.0..swarm.outage_ms.1));
                    push(at + lasts, heal);
                    // Overlapping faults: the next strikes while this one lasts
                    // (heals are cluster-wide, so it may end both).
                    let until_next = if swarm.overlapping {
                        Duration::from_millis(rng.random_range(0..=lasts.as_millis() as u64))
                    } else {
                        lasts + Duration::from_millis(rng.random_range(0..=swarm.max_quiet_ms))
                    };
                    at += until_next.max(Duration::from_millis(MIN_FAULT_SPACING_MS));
                }
            }
        }
        // Liveness phase: whatever the scenario did is healed by this point.
        let end = faults.iter().map(|f| f.at).max().unwrap_or(start).max(start);
        faults.push(TimedFault {
            at: end,
            fault: Fault::HealNetwork,
        });
        faults.push(TimedFault {
            at: end,
            fault: Fault::RestartAll,
        });
        faults.sort_by_key(|f| f.at);
        Self { faults }
    }

    /// When the last fault heals.
    pub fn healed_at(&self) -> Duration {
        self.faults.iter().map(|f| f.at).max().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_schedule() {
        for scenario in Scenario::ALL {
            for topology in Topology::ALL {
                assert_eq!(
                    Schedule::draw(scenario, topology, 7),
                    Schedule::draw(scenario, topology, 7)
                );
            }
        }
    }

    #[test]
    fn a_different_seed_draws_a_different_schedule() {
        let schedules: std::collections::BTreeSet<String> = (0..10)
            .map(|seed| format!("{:?}", Schedule::draw(Scenario::Random, Topology::ThreeByOne, seed)))
            .collect();
        assert!(schedules.len() > 5, "only {} schedules from 10 seeds", schedules.len());
    }

    /// Walks a schedule: whatever a fault breaks (network or hosts) must be
    /// repaired by a later action, and the last repair comes in time.
    #[test]
    fn every_fault_is_healed_before_the_liveness_phase() {
        for scenario in Scenario::ALL {
            for topology in Topology::ALL {
                for seed in 0..20 {
                    let schedule = Schedule::draw(scenario, topology, seed);
                    let (mut network_broken, mut hosts_down) = (false, false);
                    for timed in &schedule.faults {
                        match &timed.fault {
                            Fault::Crash(_) | Fault::PowerLoss(_) => hosts_down = true,
                            Fault::Isolate(_)
                            | Fault::PartitionOneWay { .. }
                            | Fault::Degrade { .. }
                            | Fault::IsolateLaggards
                            | Fault::WipeDiskKeepId
                            | Fault::IsolateForgetters
                            | Fault::RestartInsideLease => {
                                network_broken = true;
                            }
                            Fault::HealNetwork => network_broken = false,
                            Fault::RestartAll => hosts_down = false,
                            Fault::LoseDisk(_) | Fault::ReplaceWiped => {}
                        }
                    }
                    let context = format!("{scenario} on {topology}, seed {seed}");
                    assert!(!network_broken, "{context}: the network is left broken");
                    assert!(!hosts_down, "{context}: hosts are left down");
                    assert!(
                        schedule.healed_at() <= FAULTS_END_BY + Duration::from_secs(10),
                        "{context}: heals at {:?}",
                        schedule.healed_at()
                    );
                }
            }
        }
    }

    #[test]
    fn a_swarm_run_loses_at_most_one_disk() {
        for seed in 0..200 {
            let schedule = Schedule::draw(Scenario::Random, Topology::ThreeByOne, seed);
            let losses = schedule
                .faults
                .iter()
                .filter(|f| matches!(f.fault, Fault::LoseDisk(_)))
                .count();
            assert!(losses <= SWARM_MAX_DISK_LOSSES, "seed {seed}: {losses} disks lost");
        }
    }

    #[test]
    fn swarm_runs_draw_different_mixes() {
        let mixes: std::collections::BTreeSet<Vec<String>> = (0..40)
            .map(|seed| {
                let swarm = Swarm::draw(&mut StdRng::seed_from_u64(seed));
                assert!(!swarm.kinds.is_empty());
                assert!(swarm.outage_ms.0 < swarm.outage_ms.1);
                swarm.kinds.iter().map(ToString::to_string).collect()
            })
            .collect();
        assert!(mixes.len() > 10, "only {} different mixes in 40 seeds", mixes.len());
        let schedule = Schedule::draw(Scenario::Random, Topology::ThreeByOne, 5);
        assert!(schedule.faults.len() > 2, "a swarm run has faults: {schedule:?}");
    }

    #[test]
    fn names_round_trip() {
        for scenario in Scenario::ALL {
            assert_eq!(scenario.to_string().parse::<Scenario>(), Ok(scenario));
        }
        for topology in Topology::ALL {
            assert_eq!(topology.to_string().parse::<Topology>(), Ok(topology));
        }
    }
}
