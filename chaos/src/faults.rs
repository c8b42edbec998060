//! The faults a drill injects, each through a real mechanism: SIGKILL of a
//! zone's processes (power loss), nftables rules in the zone's namespace
//! that drop its traffic both ways (isolation) or one way (asymmetric
//! partition), SIGSTOP and SIGCONT (a frozen host or stalled disk), `tc
//! netem` delay and loss (a slow zone), restarts one node at a time, and
//! `fsfreeze` of the zone's data filesystems (a stalled disk), and a lost
//! disk whose node is replaced by one with a new id.
//! Every fault is undone by `heal`, and the network faults also vanish with
//! the namespace when the drill cleans up.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::cluster::{ClusterError, DrillCluster};
use crate::netns::{self, NetError, ZONE_INTERFACE};

/// Name of the nftables table a drill adds in a zone's namespace.
const NFT_TABLE: &str = "skc_drill";
/// Added delay of a slow zone.
const SLOW_ZONE_DELAY: &str = "150ms";
/// Jitter of that delay.
const SLOW_ZONE_JITTER: &str = "50ms";
/// Packet loss of a slow zone.
const SLOW_ZONE_LOSS: &str = "5%";
/// Rate a slow zone's traffic is held to where the kernel has no netem.
const SLOW_ZONE_RATE: &str = "2mbit";
/// Longest a packet may queue under that rate.
const SLOW_ZONE_QUEUE_LATENCY: &str = "300ms";
/// Percent of packets dropped in that case (nftables `numgen random`).
const SLOW_ZONE_LOSS_PERCENT: u32 = 5;
/// How long a replacement node has to join and take the lost one's vote.
const REPLACE_WAIT: Duration = Duration::from_secs(60);
/// How long a rolling restart waits for a leader after each node.
const ROLLING_LEADER_WAIT: Duration = Duration::from_secs(30);

/// A fault a drill can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL every node of a zone at once; disks kept; restarted at heal.
    ZonePowerLoss,
    /// Drop all traffic to and from a zone (peers see silence, not resets).
    ZoneIsolation,
    /// Drop only the traffic leaving a zone: it hears the others, they never hear it.
    AsymmetricPartition,
    /// SIGSTOP every node of a zone; SIGCONT at heal.
    ZoneFreeze,
    /// Delay and lose packets leaving a zone (tc netem).
    SlowZone,
    /// Power loss of the zone that holds the current leader.
    LeaderZoneLoss,
    /// Restart every node, one at a time, waiting for a leader after each.
    RollingRestart,
    /// A node of the zone loses its disk; a node with a new id joins in its zone and replaces it.
    NodeReplacement,
    /// fsfreeze the zone's data filesystems (loop-mounted ext4): every write stalls until the heal.
    DiskStall,
}

impl FaultKind {
    /// Every fault, in the order `drill all` runs them.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::ZonePowerLoss,
        FaultKind::ZoneIsolation,
        FaultKind::AsymmetricPartition,
        FaultKind::ZoneFreeze,
        FaultKind::SlowZone,
        FaultKind::LeaderZoneLoss,
        FaultKind::RollingRestart,
        FaultKind::DiskStall,
        FaultKind::NodeReplacement,
    ];

    /// True for the faults that act on the network (and so need namespaces).
    pub fn needs_network(self) -> bool {
        matches!(self, Self::ZoneIsolation | Self::AsymmetricPartition | Self::SlowZone)
    }

    /// What the fault needs that only root may make (network namespaces,
    /// nftables rules, queueing disciplines, loop devices), if anything:
    /// the others are signals to processes and run on loopback too.
    pub fn needs_root(self) -> Option<&'static str> {
        match self {
            Self::ZoneIsolation | Self::AsymmetricPartition => Some("network namespaces and nftables rules"),
            Self::SlowZone => Some("network namespaces and tc queueing disciplines"),
            Self::DiskStall => Some("loop-mounted filesystems and fsfreeze"),
            Self::ZonePowerLoss
            | Self::ZoneFreeze
            | Self::LeaderZoneLoss
            | Self::RollingRestart
            | Self::NodeReplacement => None,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use clap::ValueEnum;
        let value = self.to_possible_value().expect("every fault has a name");
        f.write_str(value.get_name())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        <Self as clap::ValueEnum>::from_str(s, true)
    }
}

/// Why a fault could not be injected or healed.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("node {1} could not replace node {0} within the wait: {2}")]
    Replace(u64, u64, String),
}

/// A fault in force: what was done, to undo at heal.
#[derive(Debug)]
pub struct Injected {
    pub kind: FaultKind,
    /// The zone the fault hit (the leader's, for a leader-zone loss).
    pub zone: String,
    pub nodes: Vec<u64>,
    /// How the fault was made, as the report states it.
    pub mechanism: String,
}

/// Injects `kind` into `zone` (or the leader's zone).
pub async fn inject(cluster: &mut DrillCluster, kind: FaultKind, zone: &str) -> Result<Injected, FaultError> {
    let zone = match kind {
        FaultKind::LeaderZoneLoss => {
            let leader = cluster.wait_for_leader(ROLLING_LEADER_WAIT).await?;
            cluster.nodes[&leader].zone.clone()
        }
        _ => zone.to_string(),
    };
    let nodes = cluster.zone_members(&zone);
    let ns = netns::namespace(&zone);
    let mechanism = match kind {
        FaultKind::ZonePowerLoss | FaultKind::LeaderZoneLoss => {
            // Signalled all at once, reaped after: the zone loses power together.
            for id in &nodes {
                cluster.signal(*id, Signal::SIGKILL);
            }
            for id in &nodes {
                cluster.kill(*id).await;
            }
            "SIGKILL of every node in the zone; restarted from its disk at the heal".to_string()
        }
        FaultKind::ZoneIsolation => {
            netns::nft_in(&ns, &drop_rules(true, true))?;
            format!("nftables in {ns}: drop everything in and out of {ZONE_INTERFACE}")
        }
        FaultKind::AsymmetricPartition => {
            netns::nft_in(&ns, &drop_rules(false, true))?;
            format!("nftables in {ns}: drop everything leaving {ZONE_INTERFACE}")
        }
        FaultKind::ZoneFreeze => {
            for id in &nodes {
                cluster.signal(*id, Signal::SIGSTOP);
            }
            "SIGSTOP of every node in the zone; SIGCONT at the heal".to_string()
        }
        FaultKind::SlowZone => slow_down(&ns)?,
        FaultKind::NodeReplacement => {
            let lost = nodes[0];
            let seed = *cluster.nodes.keys().find(|id| **id != lost).expect("another node");
            let new = cluster.replace_lost_disk(lost, seed).await?;
            let admin = cluster.client(cluster.endpoints(), None).await?;
            let deadline = tokio::time::Instant::now() + REPLACE_WAIT;
            // The new node must have joined (as a learner) before it can take the lost one's vote.
            while let Err(e) = admin.replace_voter(lost, new, false).await {
                if tokio::time::Instant::now() > deadline {
                    return Err(FaultError::Replace(lost, new, e.to_string()));
                }
                tokio::time::sleep(crate::cluster::POLL).await;
            }
            return Ok(Injected {
                kind,
                zone,
                nodes: vec![lost, new],
                mechanism: format!(
                    "node {lost} killed and its data directory deleted; node {new} joined in its zone and replaced \
                     it as a voter (one joint change)"
                ),
            });
        }
        FaultKind::DiskStall => {
            for id in &nodes {
                cluster.stall_disk(*id, true)?;
            }
            "fsfreeze of the zone's loop-mounted ext4 data filesystems; thawed at the heal".to_string()
        }
        FaultKind::RollingRestart => {
            let ids: Vec<u64> = cluster.nodes.keys().copied().collect();
            for id in ids {
                cluster.stop(id).await;
                cluster.start_node(id)?;
                cluster.wait_for_leader(ROLLING_LEADER_WAIT).await?;
            }
            "SIGTERM and restart of each node in turn, a leader awaited after each".to_string()
        }
    };
    Ok(Injected {
        kind,
        zone,
        nodes,
        mechanism,
    })
}

/// Slows the traffic leaving namespace `ns`: `tc netem` delay and loss, or,
/// on a kernel built without netem, a `tbf` rate limit (delay by queueing)
/// and random loss from nftables. Returns which.
fn slow_down(ns: &str) -> Result<String, FaultError> {
    let netem = add_root_qdisc(
        ns,
        &[
            "netem",
            "delay",
            SLOW_ZONE_DELAY,
            SLOW_ZONE_JITTER,
            "loss",
            SLOW_ZONE_LOSS,
        ],
    );
    match netem {
        Ok(()) => Ok(format!(
            "tc netem on {ZONE_INTERFACE} in {ns}: {SLOW_ZONE_DELAY} ± {SLOW_ZONE_JITTER} delay, {SLOW_ZONE_LOSS} loss"
        )),
        Err(NetError::Command { stderr, .. }) if stderr.contains("qdisc kind is unknown") => {
            add_root_qdisc(
                ns,
                &[
                    "tbf",
                    "rate",
                    SLOW_ZONE_RATE,
                    "burst",
                    "32kbit",
                    "latency",
                    SLOW_ZONE_QUEUE_LATENCY,
                ],
            )?;
            netns::nft_in(ns, &random_loss_rules(SLOW_ZONE_LOSS_PERCENT))?;
            Ok(format!(
                "this kernel has no netem: tc tbf on {ZONE_INTERFACE} in {ns} at {SLOW_ZONE_RATE} \
                 (up to {SLOW_ZONE_QUEUE_LATENCY} queueing) and nftables dropping {SLOW_ZONE_LOSS_PERCENT}% at random"
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Undoes `injected`: restarts, thaws, or removes the rules and queues.
pub async fn heal(cluster: &mut DrillCluster, injected: &Injected) -> Result<(), FaultError> {
    let ns = netns::namespace(&injected.zone);
    match injected.kind {
        FaultKind::ZonePowerLoss | FaultKind::LeaderZoneLoss => {
            for id in &injected.nodes {
                cluster.start_node(*id)?;
            }
        }
        FaultKind::ZoneIsolation | FaultKind::AsymmetricPartition => {
            netns::run_in(&ns, "nft", &["delete", "table", "inet", NFT_TABLE])?;
        }
        FaultKind::ZoneFreeze => {
            for id in &injected.nodes {
                cluster.signal(*id, Signal::SIGCONT);
            }
        }
        FaultKind::SlowZone => {
            netns::run_in(&ns, "tc", &["qdisc", "del", "dev", ZONE_INTERFACE, "root"])?;
            // Present only where netem was missing.
            let _ = netns::run_in(&ns, "nft", &["delete", "table", "inet", NFT_TABLE]);
        }
        FaultKind::DiskStall => {
            for id in &injected.nodes {
                cluster.stall_disk(*id, false)?;
            }
        }
        FaultKind::RollingRestart | FaultKind::NodeReplacement => {}
    }
    Ok(())
}

/// An nftables table that drops the zone's traffic on its interface:
/// arriving (`inbound`), leaving (`outbound`), or both. Loopback inside the
/// zone stays open.
fn drop_rules(inbound: bool, outbound: bool) -> String {
    let chain = |name: &str, hook: &str, direction: &str, on: bool| {
        let rule = if on {
            format!("        {direction} \"{ZONE_INTERFACE}\" drop\n")
        } else {
            String::new()
        };
        format!("    chain {name} {{\n        type filter hook {hook} priority 0; policy accept;\n{rule}    }}\n")
    };
    format!(
        "table inet {NFT_TABLE} {{\n{}{}}}\n",
        chain("inbound", "input", "iifname", inbound),
        chain("outbound", "output", "oifname", outbound)
    )
}

/// Adds the queueing discipline `qdisc` (kind and parameters) at the root
/// of the zone interface in namespace `ns`.
fn add_root_qdisc(ns: &str, qdisc: &[&str]) -> Result<(), NetError> {
    let mut args = vec!["qdisc", "add", "dev", ZONE_INTERFACE, "root"];
    args.extend_from_slice(qdisc);
    netns::run_in(ns, "tc", &args)
}

/// An nftables table that drops `percent`% of the packets leaving the zone, at random.
fn random_loss_rules(percent: u32) -> String {
    format!(
        "table inet {NFT_TABLE} {{\n    chain outbound {{\n        type filter hook output priority 0; policy accept;\n        oifname \"{ZONE_INTERFACE}\" numgen random mod 100 < {percent} drop\n    }}\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_asymmetric_partition_drops_only_what_leaves_the_zone() {
        let rules = drop_rules(false, true);
        assert!(rules.contains("oifname \"eth0\" drop"), "{rules}");
        assert!(!rules.contains("iifname"), "{rules}");
        let both = drop_rules(true, true);
        assert!(both.contains("iifname \"eth0\" drop") && both.contains("oifname \"eth0\" drop"));
    }

    #[test]
    fn fault_names_parse_back() {
        for kind in FaultKind::ALL {
            assert_eq!(kind.to_string().parse::<FaultKind>(), Ok(kind));
        }
    }
}
