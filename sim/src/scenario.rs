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
/// When every fault is healed, at the latest.
pub const FAULTS_END_BY: Duration = Duration::from_secs(14);

/// A named scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scenario {
    /// No faults: a baseline.
    Calm,
    /// Every host of one zone crashes at once and comes back with its disk.
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
    /// A seeded mix of the faults above, with seeded rates.
    Random,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 11] = [
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
    /// Crash hosts (they stay down until `Restart`).
    Crash(Target),
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
            Fault::Crash(Target::Hosts(topology.zone_hosts(zone))),
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
        Scenario::LeaderZoneIsolation => (Fault::Isolate(Target::LeaderZone), Fault::HealNetwork),
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
                let mut at = start;
                let rounds = rng.random_range(1..4);
                for _ in 0..rounds {
                    let pick = [
                        Scenario::ZonePowerLoss,
                        Scenario::ZoneIsolation,
                        Scenario::AsymmetricPartition,
                        Scenario::LeaderCrash,
                        Scenario::LeaderZoneIsolation,
                        Scenario::LatencyAndLoss,
                    ][rng.random_range(0..6)];
                    let sub = Schedule::draw(pick, topology, rng.random());
                    let offset = at.saturating_sub(FIRST_FAULT_AT);
                    let mut last = at;
                    for timed in sub.faults {
                        last = timed.at + offset;
                        push(last, timed.fault);
                    }
                    at = last + Duration::from_millis(rng.random_range(200..1_500));
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
    fn every_schedule_ends_healed() {
        for scenario in Scenario::ALL {
            let schedule = Schedule::draw(scenario, Topology::ThreeByOne, 3);
            let last: Vec<&Fault> = schedule.faults.iter().rev().take(2).map(|f| &f.fault).collect();
            assert!(
                last.contains(&&Fault::HealNetwork) && last.contains(&&Fault::RestartAll),
                "{scenario}"
            );
            assert!(
                schedule.healed_at() <= FAULTS_END_BY + Duration::from_secs(10),
                "{scenario}"
            );
        }
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
