//! What one benchmark session runs: the workload, the client counts, how
//! long and how often, and the loopback ports both clusters listen on. Every
//! limit is a named constant here, and [`Settings::validate`] keeps each
//! option inside it so a typo gets a clear error, not a runaway run.

use std::time::Duration;

use serde::Serialize;

use crate::error::BenchError;
use crate::workloads::Workload;

/// Members of every cluster the benchmark starts, one per zone.
pub const MEMBERS: u16 = 3;
/// The member a cluster adds on an empty data directory to measure how a
/// replaced node catches up: the one after the last initial member.
pub const REPLACEMENT_MEMBER: u16 = MEMBERS + 1;
/// Most clients in flight one run may have.
pub const MAX_CLIENTS: usize = 4_096;
/// Most connections (SDK clients or etcd clients) one run may open.
pub const MAX_CONNECTIONS: usize = 256;
/// Connections a run opens by default: its client count, up to this many.
pub const DEFAULT_MAX_CONNECTIONS: usize = 8;
/// Most rounds of one session.
pub const MAX_ROUNDS: usize = 50;
/// Longest measured duration or warm-up of one run.
pub const MAX_DURATION: Duration = Duration::from_secs(3_600);
/// Largest value: safekeep's default record limit (etcd's request limit is 1.5 MiB).
pub const MAX_VALUE_SIZE: usize = 1 << 20;
/// Most keys written before a read workload.
pub const MAX_KEYS: usize = 1_000_000;
/// Highest open-loop rate, operations per second.
pub const MAX_RATE: u64 = 1_000_000;
/// Where safekeep's local cluster puts node `id`'s peer port: `base + 100 +
/// id` (its client port is `base + id`). This is `safekeep-node
/// local-cluster`'s own layout, which the benchmark follows, not chooses.
pub const SAFEKEEP_PEER_OFFSET: u16 = 100;
/// Where the local cluster puts node `id`'s HTTP port: `base + 200 + id`
/// (the same layout); with at most 9 local nodes its ports end below `base + 210`.
pub const SAFEKEEP_HTTP_OFFSET: u16 = 200;
/// etcd member `m`'s client port is `base + 300 + m`: the first hundred
/// above safekeep's three blocks, so the two clusters never share a port.
pub const ETCD_CLIENT_OFFSET: u16 = 300;
/// etcd member `m`'s peer port is `base + 320 + m`: each etcd role gets a
/// block of 20, room for more members than the benchmark starts.
pub const ETCD_PEER_OFFSET: u16 = 320;
/// etcd member `m`'s plain HTTP metrics and health port is `base + 340 + m`.
pub const ETCD_METRICS_OFFSET: u16 = 340;
/// Ports a session uses above its base port (both clusters): past etcd's
/// last block, rounded up to a whole hundred.
pub const PORT_SPAN: u16 = 400;
// The layout holds together, checked when compiling: every role's block has
// room for every member and the footprint's new member after them, etcd
// starts above safekeep, and ends inside the span.
const _: () = {
    let members = REPLACEMENT_MEMBER;
    assert!(SAFEKEEP_HTTP_OFFSET - SAFEKEEP_PEER_OFFSET > members);
    assert!(ETCD_CLIENT_OFFSET > SAFEKEEP_HTTP_OFFSET + members);
    assert!(ETCD_PEER_OFFSET - ETCD_CLIENT_OFFSET > members);
    assert!(ETCD_METRICS_OFFSET - ETCD_PEER_OFFSET > members);
    assert!(ETCD_METRICS_OFFSET + members < PORT_SPAN);
};

/// Whether the servers and clients talk TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// TLS on every client and peer connection, encryption at rest on safekeep.
    Tls,
    /// The plaintext reference pair: safekeep `--insecure-dev`, etcd over http.
    Plaintext,
}

/// The loopback ports of one session: safekeep's local cluster from `base`
/// (client `base+id`, peer `base+100+id`, HTTP `base+200+id`), etcd's members
/// above it (client `base+300+m`, peer `base+320+m`, metrics `base+340+m`);
/// the offsets are the constants above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ports {
    pub base: u16,
}

impl Ports {
    /// The base port safekeep's local cluster counts from.
    pub fn safekeep_base(self) -> u16 {
        self.base
    }

    /// Client port of etcd member `member` (1-based).
    pub fn etcd_client(self, member: u16) -> u16 {
        self.base + ETCD_CLIENT_OFFSET + member
    }

    /// Peer port of etcd member `member`.
    pub fn etcd_peer(self, member: u16) -> u16 {
        self.base + ETCD_PEER_OFFSET + member
    }

    /// Plain HTTP metrics and health port of etcd member `member`.
    pub fn etcd_metrics(self, member: u16) -> u16 {
        self.base + ETCD_METRICS_OFFSET + member
    }
}

/// The validated settings of a session.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub workload: Workload,
    /// Clients in flight, one run per entry.
    pub clients: Vec<usize>,
    /// Runs per target and client count; figures are medians over them.
    pub rounds: usize,
    #[serde(rename = "duration_s", serialize_with = "seconds")]
    pub duration: Duration,
    #[serde(rename = "warmup_s", serialize_with = "seconds")]
    pub warmup: Duration,
    /// Bytes per written value.
    pub value_size: usize,
    /// Connections per run; `None`: the client count, at most [`DEFAULT_MAX_CONNECTIONS`].
    pub connections: Option<usize>,
    /// Open loop at this many operations per second; `None`: closed loop.
    pub rate: Option<u64>,
    /// Keys written before a read workload.
    pub keys: usize,
    pub security: Security,
    pub ports: Ports,
    /// Where safekeep's nodes back up to while measured, if anywhere.
    pub backup_target: Option<String>,
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

impl Settings {
    /// Checks every option against its bound.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |message: String| Err(BenchError::BadOption(message));
        if self.clients.is_empty() {
            return bad("--clients needs at least one client count".into());
        }
        if let Some(n) = self.clients.iter().find(|n| **n == 0 || **n > MAX_CLIENTS) {
            return bad(format!("--clients: {n} is not between 1 and {MAX_CLIENTS}"));
        }
        if self.rounds == 0 || self.rounds > MAX_ROUNDS {
            return bad(format!(
                "--rounds must be between 1 and {MAX_ROUNDS}, not {}",
                self.rounds
            ));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return bad(format!(
                "--duration must be above 0 and at most {} s",
                MAX_DURATION.as_secs()
            ));
        }
        if self.warmup > MAX_DURATION {
            return bad(format!("--warmup must be at most {} s", MAX_DURATION.as_secs()));
        }
        if self.value_size == 0 || self.value_size > MAX_VALUE_SIZE {
            return bad(format!(
                "--value-size must be between 1 and {MAX_VALUE_SIZE} bytes, not {}",
                self.value_size
            ));
        }
        if let Some(n) = self.connections
            && (n == 0 || n > MAX_CONNECTIONS)
        {
            return bad(format!(
                "--connections must be between 1 and {MAX_CONNECTIONS}, not {n}"
            ));
        }
        if let Some(rate) = self.rate
            && (rate == 0 || rate > MAX_RATE)
        {
            return bad(format!(
                "--rate must be between 1 and {MAX_RATE} operations/s, not {rate}"
            ));
        }
        if self.workload.reads_populated_keys() && (self.keys == 0 || self.keys > MAX_KEYS) {
            return bad(format!("--keys must be between 1 and {MAX_KEYS}, not {}", self.keys));
        }
        if self.ports.base < 1024 || self.ports.base.checked_add(PORT_SPAN).is_none() {
            return bad(format!(
                "--base-port must be between 1024 and {}, not {}",
                u16::MAX - PORT_SPAN,
                self.ports.base
            ));
        }
        Ok(())
    }

    /// Connections a run with `clients` clients opens.
    pub fn connections_for(&self, clients: usize) -> usize {
        let n = self.connections.unwrap_or_else(|| clients.min(DEFAULT_MAX_CONNECTIONS));
        n.clamp(1, clients.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            workload: Workload::Put,
            clients: vec![1, 16],
            rounds: 3,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            value_size: 1024,
            connections: None,
            rate: None,
            keys: 10_000,
            security: Security::Tls,
            ports: Ports { base: 17_100 },
            backup_target: None,
        }
    }

    #[test]
    fn the_defaults_are_valid_and_connections_follow_the_client_count() {
        let s = settings();
        assert!(s.validate().is_ok());
        assert_eq!(s.connections_for(1), 1);
        assert_eq!(s.connections_for(256), DEFAULT_MAX_CONNECTIONS);
        let many = Settings {
            connections: Some(32),
            ..settings()
        };
        assert_eq!(many.connections_for(4), 4, "never more connections than clients");
    }

    #[test]
    fn out_of_bound_options_are_refused_with_the_flag_named() {
        let cases: Vec<(Settings, &str)> = vec![
            (
                Settings {
                    clients: vec![],
                    ..settings()
                },
                "--clients",
            ),
            (
                Settings {
                    clients: vec![0],
                    ..settings()
                },
                "--clients",
            ),
            (
                Settings {
                    rounds: 0,
                    ..settings()
                },
                "--rounds",
            ),
            (
                Settings {
                    duration: Duration::ZERO,
                    ..settings()
                },
                "--duration",
            ),
            (
                Settings {
                    value_size: MAX_VALUE_SIZE + 1,
                    ..settings()
                },
                "--value-size",
            ),
            (
                Settings {
                    connections: Some(0),
                    ..settings()
                },
                "--connections",
            ),
            (
                Settings {
                    rate: Some(0),
                    ..settings()
                },
                "--rate",
            ),
            (
                Settings {
                    workload: Workload::Get,
                    keys: 0,
                    ..settings()
                },
                "--keys",
            ),
            (
                Settings {
                    ports: Ports { base: 65_400 },
                    ..settings()
                },
                "--base-port",
            ),
        ];
        for (s, flag) in cases {
            let error = s.validate().expect_err(flag).to_string();
            assert!(error.contains(flag), "{error}");
        }
    }

    #[test]
    fn etcd_ports_stay_inside_the_span_and_clear_of_safekeep() {
        let ports = Ports { base: 17_100 };
        let safekeep_last = ports.base + SAFEKEEP_HTTP_OFFSET + MEMBERS;
        for member in 1..=MEMBERS {
            for port in [
                ports.etcd_client(member),
                ports.etcd_peer(member),
                ports.etcd_metrics(member),
            ] {
                assert!(port > safekeep_last && port < ports.base + PORT_SPAN, "{port}");
            }
        }
    }
}
