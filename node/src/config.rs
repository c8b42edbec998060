//! Node configuration: a TOML file, overridden by command-line flags and
//! environment variables. Every limit and timeout has a named default fit for
//! zones a few milliseconds apart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::logging::LogFormat;

/// Default Raft heartbeat interval.
pub const DEFAULT_HEARTBEAT_MS: u64 = 100;
/// Default lower bound of the randomized election timeout.
pub const DEFAULT_ELECTION_MIN_MS: u64 = 500;
/// Default upper bound of the randomized election timeout.
pub const DEFAULT_ELECTION_MAX_MS: u64 = 1000;
/// Default number of log entries since the last snapshot that triggers a new
/// one. A snapshot copies the whole state machine, so its cost grows with the
/// data: at 10,000 it took 3 to 5% of the cluster's CPU under a write load
/// with a few hundred MiB stored. etcd's default is 100,000 too.
pub const DEFAULT_SNAPSHOT_THRESHOLD: u64 = 100_000;
/// Default number of entries kept in the log behind a snapshot, so a follower
/// that fell a few seconds behind catches up from the log, not a full snapshot.
pub const DEFAULT_LOGS_KEPT_AFTER_SNAPSHOT: u64 = 10_000;
/// Default time a request waits for a leader during an election.
pub const DEFAULT_LEADER_WAIT_MS: u64 = 3_000;
/// Default time a follower waits for its replica to reach a read index.
pub const DEFAULT_READ_CATCH_UP_MS: u64 = 3_000;
/// Default time a joining node keeps trying its seed.
pub const DEFAULT_JOIN_TIMEOUT_MS: u64 = 30_000;
/// Default largest record value.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;
/// Default cluster name stamped into data directories.
pub const DEFAULT_CLUSTER_NAME: &str = "safekeep";
/// The zone labels a local cluster, the tests and the simulation spread
/// their nodes over, round-robin from node 1.
pub const LOCAL_ZONES: [&str; 3] = ["a", "b", "c"];
/// Default interval between checks of the TLS files for rotated certificates.
pub const DEFAULT_TLS_RELOAD_MS: u64 = 10_000;
/// Shortest interval between checks of the TLS files.
pub const MIN_TLS_RELOAD_MS: u64 = 100;
/// Default per-node request rate of one tenant.
pub const DEFAULT_TENANT_REQUESTS_PER_SECOND: u32 = 20_000;
/// Default burst of one tenant above its rate.
pub const DEFAULT_TENANT_BURST: u32 = 40_000;
/// Default most connections one listener (client API or peer) holds at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4_096;
/// Default most TLS handshakes in progress from one IP address on one listener.
pub const DEFAULT_MAX_HANDSHAKES_PER_ADDRESS: usize = 16;
/// Default longest a TLS handshake may take.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 3_000;
/// Default most concurrent calls on one client API connection.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 256;
/// Default most concurrent calls on one peer connection (replication, votes, forwarded requests).
pub const DEFAULT_MAX_PEER_CONCURRENT_STREAMS: u32 = 1_024;
/// Default interval between HTTP/2 keepalive pings on a quiet connection.
pub const DEFAULT_KEEPALIVE_INTERVAL_MS: u64 = 30_000;
/// Default longest wait for a keepalive ping's answer before the connection is closed.
pub const DEFAULT_KEEPALIVE_TIMEOUT_MS: u64 = 10_000;
/// Default longest life of a client API connection before the server asks the client to reconnect.
pub const DEFAULT_MAX_CONNECTION_AGE_MS: u64 = 3_600_000;
/// Default catch-ups per second a node spends on API key ids it does not know.
pub const DEFAULT_UNKNOWN_KEY_CATCH_UPS_PER_SECOND: u32 = 50;
/// Default API key ids a node remembers as unknown.
pub const DEFAULT_UNKNOWN_KEY_CACHE_ENTRIES: usize = 65_536;
/// Environment variable holding master keys when no file is configured.
pub const MASTER_KEY_ENV: &str = "SAFEKEEP_MASTER_KEY";
/// Readiness: most entries a replica may lag behind the commit index.
pub const DEFAULT_READY_MAX_APPLY_LAG: u64 = 1_000;

/// Default interval between full backups (a day).
pub const DEFAULT_BACKUP_FULL_INTERVAL_S: u64 = 86_400;
/// Default longest time committed entries wait before the log archive ships them.
pub const DEFAULT_BACKUP_ARCHIVE_INTERVAL_S: u64 = 30;
/// Default interval between test restores of the newest full backup (a day).
pub const DEFAULT_BACKUP_VERIFY_INTERVAL_S: u64 = 86_400;
/// Default days a backup set is kept.
pub const DEFAULT_BACKUP_RETENTION_DAYS: u32 = 35;
/// Shortest archive interval: below it the archive writes more objects than it is worth.
pub const MIN_BACKUP_ARCHIVE_INTERVAL_S: u64 = 1;

/// Why a configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("missing setting '{0}': set it in the config file or pass the flag")]
    Missing(&'static str),
    #[error("invalid setting '{name}': {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A member of the initial cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitialMember {
    pub id: u64,
    pub zone: String,
    pub peer_address: String,
    pub client_address: String,
}

impl std::str::FromStr for InitialMember {
    type Err = String;

    /// Parses `ID,ZONE,PEER_ADDRESS,CLIENT_ADDRESS`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [id, zone, peer, client] = parts.as_slice() else {
            return Err(format!("'{s}': expected ID,ZONE,PEER_ADDRESS,CLIENT_ADDRESS"));
        };
        let id = id
            .parse()
            .map_err(|_| format!("'{id}' is not a node id (a positive integer)"))?;
        Ok(Self {
            id,
            zone: zone.to_string(),
            peer_address: peer.to_string(),
            client_address: client.to_string(),
        })
    }
}

/// Raft timing and log compaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSettings {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    pub pre_vote: bool,
    pub snapshot_threshold: u64,
    pub logs_kept_after_snapshot: u64,
    pub leader_wait_ms: u64,
    pub read_catch_up_ms: u64,
    /// How long a joining node keeps trying its seed before giving up.
    pub join_timeout_ms: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        Self {
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            election_min_ms: DEFAULT_ELECTION_MIN_MS,
            election_max_ms: DEFAULT_ELECTION_MAX_MS,
            pre_vote: true,
            snapshot_threshold: DEFAULT_SNAPSHOT_THRESHOLD,
            logs_kept_after_snapshot: DEFAULT_LOGS_KEPT_AFTER_SNAPSHOT,
            leader_wait_ms: DEFAULT_LEADER_WAIT_MS,
            read_catch_up_ms: DEFAULT_READ_CATCH_UP_MS,
            join_timeout_ms: DEFAULT_JOIN_TIMEOUT_MS,
        }
    }
}

/// Request limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    pub max_value_bytes: usize,
    /// Requests per second one tenant may make of one node (0: unlimited).
    pub tenant_requests_per_second: u32,
    /// Requests one tenant may burst above its rate.
    pub tenant_burst: u32,
    /// Most connections each listener (client API, peer) holds at once,
    /// handshaking or open; more are closed as they arrive.
    pub max_connections: usize,
    /// Most TLS handshakes in progress from one IP address on one listener;
    /// more from that address are closed as they arrive.
    pub max_handshakes_per_address: usize,
    /// Longest a TLS handshake may take, ms.
    pub handshake_timeout_ms: u64,
    /// Most concurrent calls on one client API connection.
    pub max_concurrent_streams: u32,
    /// Most concurrent calls on one peer connection.
    pub max_peer_concurrent_streams: u32,
    /// Interval of HTTP/2 keepalive pings on both servers, ms.
    pub keepalive_interval_ms: u64,
    /// A connection whose peer does not answer a keepalive ping within this is closed, ms.
    pub keepalive_timeout_ms: u64,
    /// A client API connection older than this is asked to close once its calls finish, ms.
    pub max_connection_age_ms: u64,
    /// Catch-ups with the leader per second this node spends on API key ids
    /// it does not know; beyond them unknown ids are refused locally.
    pub unknown_key_catch_ups_per_second: u32,
    /// API key ids remembered as unknown after a catch-up, refused with no other.
    pub unknown_key_cache_entries: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            tenant_requests_per_second: DEFAULT_TENANT_REQUESTS_PER_SECOND,
            tenant_burst: DEFAULT_TENANT_BURST,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_handshakes_per_address: DEFAULT_MAX_HANDSHAKES_PER_ADDRESS,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_peer_concurrent_streams: DEFAULT_MAX_PEER_CONCURRENT_STREAMS,
            keepalive_interval_ms: DEFAULT_KEEPALIVE_INTERVAL_MS,
            keepalive_timeout_ms: DEFAULT_KEEPALIVE_TIMEOUT_MS,
            max_connection_age_ms: DEFAULT_MAX_CONNECTION_AGE_MS,
            unknown_key_catch_ups_per_second: DEFAULT_UNKNOWN_KEY_CATCH_UPS_PER_SECOND,
            unknown_key_cache_entries: DEFAULT_UNKNOWN_KEY_CACHE_ENTRIES,
        }
    }
}

/// Backups: full copies of the state machine on a schedule, and the
/// committed log shipped in segments between them, to an object store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSettings {
    /// Where backups go: `file:///ABSOLUTE/DIR` or `s3://BUCKET[/PREFIX]`.
    pub target: String,
    /// A second target every object is copied to (another region's bucket).
    #[serde(default)]
    pub copy_target: Option<String>,
    /// Seconds between full backups.
    #[serde(default = "default_full_interval_s")]
    pub full_interval_s: u64,
    /// Longest seconds committed entries wait before they are shipped.
    #[serde(default = "default_archive_interval_s")]
    pub archive_interval_s: u64,
    /// Days a backup set (and the log segments it needs) is kept.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Delete expired sets and segments; false when the bucket's lifecycle
    /// expires them and nodes may not delete (as the Terraform module sets it up).
    #[serde(default = "default_delete_expired")]
    pub delete_expired: bool,
    /// Seconds between test restores of the newest full backup (into a
    /// scratch directory in the data directory, so it needs as much free
    /// space as the data); 0 turns them off.
    #[serde(default = "default_verify_interval_s")]
    pub verify_interval_s: u64,
    /// S3 settings; credentials come from the environment (`AWS_ACCESS_KEY_ID`, ...)
    /// or the instance's role.
    #[serde(default)]
    pub s3: S3Settings,
}

/// How to reach an S3 or S3-compatible target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// Region of the bucket (default: the environment's).
    pub region: Option<String>,
    /// Endpoint URL of an S3-compatible store, or a VPC endpoint; `https://` unless on loopback.
    pub endpoint: Option<String>,
}

fn default_full_interval_s() -> u64 {
    DEFAULT_BACKUP_FULL_INTERVAL_S
}

fn default_archive_interval_s() -> u64 {
    DEFAULT_BACKUP_ARCHIVE_INTERVAL_S
}

fn default_retention_days() -> u32 {
    DEFAULT_BACKUP_RETENTION_DAYS
}

fn default_delete_expired() -> bool {
    true
}

fn default_verify_interval_s() -> u64 {
    DEFAULT_BACKUP_VERIFY_INTERVAL_S
}

impl BackupSettings {
    /// Backups to `target` with every other setting at its default.
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            copy_target: None,
            full_interval_s: DEFAULT_BACKUP_FULL_INTERVAL_S,
            archive_interval_s: DEFAULT_BACKUP_ARCHIVE_INTERVAL_S,
            retention_days: DEFAULT_BACKUP_RETENTION_DAYS,
            delete_expired: true,
            verify_interval_s: DEFAULT_BACKUP_VERIFY_INTERVAL_S,
            s3: S3Settings::default(),
        }
    }

    /// Checks the settings on their own; a target is parsed when the node starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name, reason: String| Err(ConfigError::Invalid { name, reason });
        if self.archive_interval_s < MIN_BACKUP_ARCHIVE_INTERVAL_S {
            return invalid(
                "backup.archive_interval_s",
                format!("must be at least {MIN_BACKUP_ARCHIVE_INTERVAL_S}"),
            );
        }
        if self.full_interval_s < self.archive_interval_s {
            return invalid(
                "backup.full_interval_s",
                format!(
                    "must be at least backup.archive_interval_s ({})",
                    self.archive_interval_s
                ),
            );
        }
        if self.retention_days == 0 {
            return invalid("backup.retention_days", "must be at least 1".into());
        }
        if self.copy_target.as_deref() == Some(self.target.as_str()) {
            return invalid("backup.copy_target", "must differ from backup.target".into());
        }
        Ok(())
    }
}

/// Encryption at rest: where the master keys come from. Exactly one of a key
/// file, the `SAFEKEEP_MASTER_KEY` environment variable (same format) or an
/// AWS KMS key (nodes built with the `aws-kms` feature).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionSettings {
    /// File of `ID HEX` lines, owner-readable only; the first key wraps new data keys.
    pub master_key_file: Option<PathBuf>,
    /// AWS KMS key that wraps data keys: a key ARN, a key id or `alias/NAME`.
    pub kms_key_id: Option<String>,
    /// AWS region of the KMS key (default: the key ARN's region, else the AWS default chain).
    pub kms_region: Option<String>,
    /// KMS endpoint URL instead of the regional one (a VPC endpoint); `https://` unless on loopback.
    pub kms_endpoint: Option<String>,
}

impl EncryptionSettings {
    /// Checks the settings on their own; whether `SAFEKEEP_MASTER_KEY` is also
    /// set is checked when the key provider is loaded.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name, reason: String| Err(ConfigError::Invalid { name, reason });
        let Some(key_id) = &self.kms_key_id else {
            if self.kms_region.is_some() || self.kms_endpoint.is_some() {
                return invalid(
                    "encryption.kms_key_id",
                    "kms_region and kms_endpoint need kms_key_id, the KMS key to use".into(),
                );
            }
            return Ok(());
        };
        if self.master_key_file.is_some() {
            return invalid(
                "encryption",
                "set exactly one of master_key_file and kms_key_id: one source of master keys".into(),
            );
        }
        if cfg!(not(feature = "aws-kms")) {
            return invalid(
                "encryption.kms_key_id",
                "this safekeep-node was built without AWS KMS support; build it with `--features aws-kms`".into(),
            );
        }
        if key_id.trim().is_empty() || key_id.len() > MAX_KMS_KEY_ID_LEN || key_id.chars().any(char::is_whitespace) {
            return invalid(
                "encryption.kms_key_id",
                format!("expected a key ARN, key id or alias/NAME of at most {MAX_KMS_KEY_ID_LEN} characters"),
            );
        }
        if let Some(region) = &self.kms_region
            && (region.is_empty() || !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return invalid("encryption.kms_region", format!("'{region}' is not an AWS region name"));
        }
        if let Some(endpoint) = &self.kms_endpoint {
            check_kms_endpoint(endpoint).or_else(|reason| invalid("encryption.kms_endpoint", reason))?;
        }
        Ok(())
    }
}

/// Longest KMS key id, ARN or alias KMS accepts.
pub const MAX_KMS_KEY_ID_LEN: usize = 2048;

/// A KMS endpoint must be `https://`: Encrypt requests carry data keys in the
/// clear inside the TLS session. Plain `http://` is allowed on loopback only (tests).
fn check_kms_endpoint(endpoint: &str) -> Result<(), String> {
    let (scheme, rest) = endpoint
        .split_once("://")
        .ok_or_else(|| format!("'{endpoint}' is not a URL (expected https://HOST[:PORT])"))?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    if host.is_empty() {
        return Err(format!("'{endpoint}' names no host"));
    }
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match scheme {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "'{endpoint}' is plain HTTP: data keys would cross the network unprotected; use https://"
        )),
        other => Err(format!("'{endpoint}': unsupported scheme '{other}' (expected https)")),
    }
}

/// TLS files: the node's certificate and key, and the CA that signs every
/// node (and, unless `client_ca` names another, every client certificate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// CA of client certificates on the client API (default: `ca`).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// How often the files are checked for rotated certificates.
    #[serde(default = "default_tls_reload_ms")]
    pub reload_interval_ms: u64,
}

fn default_tls_reload_ms() -> u64 {
    DEFAULT_TLS_RELOAD_MS
}

/// Everything a node needs to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id: unique in the cluster, never reused.
    pub id: u64,
    /// Availability zone label.
    pub zone: String,
    /// Where the node keeps its RocksDB and snapshots.
    pub data_dir: PathBuf,
    /// Name stamped into the data directory; a directory of another cluster is refused.
    #[serde(default = "default_cluster_name")]
    pub cluster_name: String,
    /// Client API (Records, Cluster, health, reflection).
    pub client_listen: SocketAddr,
    /// Peer channel (Raft, forwarding).
    pub peer_listen: SocketAddr,
    /// Plain HTTP: /healthz, /readyz, /metrics.
    pub http_listen: SocketAddr,
    /// Address clients and peers are told to reach the client API at (default: client_listen).
    #[serde(default)]
    pub client_advertise: Option<String>,
    /// Address other nodes reach the peer channel at (default: peer_listen).
    #[serde(default)]
    pub peer_advertise: Option<String>,
    /// Initial members, to form a new cluster; ignored once the data dir holds state.
    #[serde(default)]
    pub init: Vec<InitialMember>,
    /// Peer address of any member, to join an existing cluster.
    #[serde(default)]
    pub join: Option<String>,
    /// When joining, stay a learner (replicate, never vote) instead of asking to become a voter.
    #[serde(default)]
    pub learner: bool,
    /// TLS on the client API and mutual TLS on the peer channel.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
    /// Serve plaintext (development only): required to run without `tls`.
    #[serde(default)]
    pub insecure_dev: bool,
    #[serde(default)]
    pub encryption: EncryptionSettings,
    #[serde(default)]
    pub raft: RaftSettings,
    #[serde(default)]
    pub limits: LimitSettings,
    /// Backups to an object store; none when absent.
    #[serde(default)]
    pub backup: Option<BackupSettings>,
    /// Shape of log lines: `text` (coloured on a terminal only) or `json`, one object per line.
    #[serde(default)]
    pub log_format: LogFormat,
}

fn default_cluster_name() -> String {
    DEFAULT_CLUSTER_NAME.to_string()
}

/// Where a node listens: its client API, its peer channel and its plain
/// HTTP endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddresses {
    pub client: SocketAddr,
    pub peer: SocketAddr,
    pub http: SocketAddr,
}

impl NodeConfig {
    /// A node with every optional setting at its default: no initial members
    /// and no join address, no TLS and `insecure_dev` off (so it will not
    /// start until TLS or `insecure_dev` is set), encryption from the
    /// environment, and the default Raft settings and limits.
    pub fn new(id: u64, zone: impl Into<String>, data_dir: impl Into<PathBuf>, listen: ListenAddresses) -> Self {
        Self {
            id,
            zone: zone.into(),
            data_dir: data_dir.into(),
            cluster_name: default_cluster_name(),
            client_listen: listen.client,
            peer_listen: listen.peer,
            http_listen: listen.http,
            client_advertise: None,
            peer_advertise: None,
            init: Vec::new(),
            join: None,
            learner: false,
            tls: None,
            insecure_dev: false,
            encryption: EncryptionSettings::default(),
            raft: RaftSettings::default(),
            limits: LimitSettings::default(),
            backup: None,
            log_format: LogFormat::default(),
        }
    }

    /// Reads a config file.
    pub fn from_file(path: &Path) -> Result<PartialConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// The address peers reach this node's peer channel at.
    pub fn peer_address(&self) -> String {
        self.peer_advertise
            .clone()
            .unwrap_or_else(|| self.peer_listen.to_string())
    }

    /// The address clients reach this node at.
    pub fn client_address(&self) -> String {
        self.client_advertise
            .clone()
            .unwrap_or_else(|| self.client_listen.to_string())
    }

    /// Checks values the types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::Invalid {
                name: "id",
                reason: "node ids start at 1".into(),
            });
        }
        if self.zone.trim().is_empty() {
            return Err(ConfigError::Invalid {
                name: "zone",
                reason: "every node needs a zone label".into(),
            });
        }
        if !self.init.is_empty() && self.join.is_some() {
            return Err(ConfigError::Invalid {
                name: "init/join",
                reason: "a node either forms a new cluster (init) or joins one (join), not both".into(),
            });
        }
        if !self.init.is_empty() && !self.init.iter().any(|m| m.id == self.id) {
            return Err(ConfigError::Invalid {
                name: "init",
                reason: format!("the initial members do not include this node ({})", self.id),
            });
        }
        match (&self.tls, self.insecure_dev) {
            (None, false) => {
                return Err(ConfigError::Invalid {
                    name: "tls",
                    reason: "no TLS configured: set tls.cert, tls.key and tls.ca (`safekeep-node certs` makes \
                             development ones), or pass --insecure-dev to serve plaintext for development"
                        .into(),
                });
            }
            (Some(_), true) => {
                return Err(ConfigError::Invalid {
                    name: "insecure_dev",
                    reason: "TLS is configured; drop --insecure-dev or the [tls] settings".into(),
                });
            }
            (None, true) if self.encryption.master_key_file.is_some() || self.encryption.kms_key_id.is_some() => {
                return Err(ConfigError::Invalid {
                    name: "encryption",
                    reason: "encryption at rest runs with TLS and authentication, not with --insecure-dev".into(),
                });
            }
            (Some(tls), false) if tls.reload_interval_ms < MIN_TLS_RELOAD_MS => {
                return Err(ConfigError::Invalid {
                    name: "tls.reload_interval_ms",
                    reason: format!("must be at least {MIN_TLS_RELOAD_MS}"),
                });
            }
            _ => {}
        }
        self.encryption.validate()?;
        if let Some(backup) = &self.backup {
            if self.insecure_dev {
                return Err(ConfigError::Invalid {
                    name: "backup",
                    reason: "backups are sealed with the master key, which --insecure-dev does not have".into(),
                });
            }
            backup.validate()?;
        }
        let r = &self.raft;
        if r.heartbeat_ms == 0 || r.election_min_ms <= r.heartbeat_ms || r.election_max_ms <= r.election_min_ms {
            return Err(ConfigError::Invalid {
                name: "raft",
                reason: format!(
                    "need 0 < heartbeat_ms ({}) < election_min_ms ({}) < election_max_ms ({})",
                    r.heartbeat_ms, r.election_min_ms, r.election_max_ms
                ),
            });
        }
        let l = &self.limits;
        let zero = [
            ("limits.max_connections", l.max_connections as u64),
            ("limits.max_handshakes_per_address", l.max_handshakes_per_address as u64),
            ("limits.handshake_timeout_ms", l.handshake_timeout_ms),
            ("limits.max_concurrent_streams", u64::from(l.max_concurrent_streams)),
            (
                "limits.max_peer_concurrent_streams",
                u64::from(l.max_peer_concurrent_streams),
            ),
            ("limits.keepalive_interval_ms", l.keepalive_interval_ms),
            ("limits.keepalive_timeout_ms", l.keepalive_timeout_ms),
            ("limits.max_connection_age_ms", l.max_connection_age_ms),
            ("limits.unknown_key_cache_entries", l.unknown_key_cache_entries as u64),
        ]
        .into_iter()
        .find(|(_, value)| *value == 0);
        if let Some((name, _)) = zero {
            return Err(ConfigError::Invalid {
                name,
                reason: "must be above 0".into(),
            });
        }
        if self.limits.max_value_bytes == 0
            || self.limits.max_value_bytes > crate::model::limits::MAX_VALUE_BYTES_CEILING
        {
            return Err(ConfigError::Invalid {
                name: "limits.max_value_bytes",
                reason: format!(
                    "must be between 1 and {}",
                    crate::model::limits::MAX_VALUE_BYTES_CEILING
                ),
            });
        }
        Ok(())
    }
}

/// A config file's contents: anything may be left to flags.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialConfig {
    pub id: Option<u64>,
    pub zone: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub cluster_name: Option<String>,
    pub client_listen: Option<SocketAddr>,
    pub peer_listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub client_advertise: Option<String>,
    pub peer_advertise: Option<String>,
    #[serde(default)]
    pub init: Vec<InitialMember>,
    pub join: Option<String>,
    #[serde(default)]
    pub learner: bool,
    pub tls: Option<TlsSettings>,
    #[serde(default)]
    pub insecure_dev: bool,
    #[serde(default)]
    pub encryption: EncryptionSettings,
    #[serde(default)]
    pub raft: RaftSettings,
    #[serde(default)]
    pub limits: LimitSettings,
    #[serde(default)]
    pub backup: Option<BackupSettings>,
    pub log_format: Option<LogFormat>,
}

impl PartialConfig {
    /// Completes the config, failing on the first missing setting.
    pub fn finish(self) -> Result<NodeConfig, ConfigError> {
        let id = self.id.ok_or(ConfigError::Missing("id"))?;
        let zone = self.zone.ok_or(ConfigError::Missing("zone"))?;
        let data_dir = self.data_dir.ok_or(ConfigError::Missing("data_dir"))?;
        let listen = ListenAddresses {
            client: self.client_listen.ok_or(ConfigError::Missing("client_listen"))?,
            peer: self.peer_listen.ok_or(ConfigError::Missing("peer_listen"))?,
            http: self.http_listen.ok_or(ConfigError::Missing("http_listen"))?,
        };
        let base = NodeConfig::new(id, zone, data_dir, listen);
        let config = NodeConfig {
            cluster_name: self.cluster_name.unwrap_or_else(default_cluster_name),
            client_advertise: self.client_advertise,
            peer_advertise: self.peer_advertise,
            init: self.init,
            join: self.join,
            learner: self.learner,
            tls: self.tls,
            insecure_dev: self.insecure_dev,
            encryption: self.encryption,
            raft: self.raft,
            limits: self.limits,
            backup: self.backup,
            log_format: self.log_format.unwrap_or_default(),
            ..base
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
id = 1
zone = "a"
data_dir = "data/1"
client_listen = "127.0.0.1:7101"
peer_listen = "127.0.0.1:7201"
http_listen = "127.0.0.1:7301"

[tls]
cert = "certs/node-1.pem"
key = "certs/node-1.key"
ca = "certs/ca.pem"

[[init]]
id = 1
zone = "a"
peer_address = "127.0.0.1:7201"
client_address = "127.0.0.1:7101"

[raft]
heartbeat_ms = 50
"#;

    fn parse(text: &str) -> Result<PartialConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn the_log_format_is_text_unless_the_file_says_json() {
        assert_eq!(parse(FILE).unwrap().finish().unwrap().log_format, LogFormat::Text);
        let json = format!("log_format = \"json\"\n{FILE}");
        assert_eq!(parse(&json).unwrap().finish().unwrap().log_format, LogFormat::Json);
        let unknown = format!("log_format = \"yaml\"\n{FILE}");
        assert!(parse(&unknown).is_err());
    }

    #[test]
    fn a_file_with_defaults_becomes_a_config() {
        let config = parse(FILE).unwrap().finish().unwrap();
        assert_eq!(config.id, 1);
        assert_eq!(config.raft.heartbeat_ms, 50);
        assert_eq!(config.raft.election_min_ms, DEFAULT_ELECTION_MIN_MS);
        assert_eq!(config.cluster_name, DEFAULT_CLUSTER_NAME);
        assert_eq!(config.init.len(), 1);
        assert_eq!(config.peer_address(), "127.0.0.1:7201");
        let tls = config.tls.unwrap();
        assert_eq!(tls.reload_interval_ms, DEFAULT_TLS_RELOAD_MS);
        assert_eq!(tls.client_ca, None);
    }

    #[test]
    fn a_missing_setting_is_named() {
        let mut partial = parse(FILE).unwrap();
        partial.zone = None;
        let err = partial.finish().unwrap_err();
        assert!(err.to_string().contains("'zone'"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = parse(&format!("{FILE}\nzones = \"b\"\n")).unwrap_err();
        assert!(err.to_string().contains("zones"), "{err}");
    }

    #[test]
    fn contradictory_settings_are_refused() {
        let mut both = parse(FILE).unwrap();
        both.join = Some("127.0.0.1:7202".into());
        assert!(both.finish().unwrap_err().to_string().contains("not both"));

        let mut timing = parse(FILE).unwrap();
        timing.raft.election_min_ms = 40;
        assert!(timing.finish().unwrap_err().to_string().contains("heartbeat_ms"));

        let mut outsider = parse(FILE).unwrap();
        outsider.id = Some(9);
        assert!(
            outsider
                .finish()
                .unwrap_err()
                .to_string()
                .contains("do not include this node")
        );

        let mut zero = parse(FILE).unwrap();
        zero.id = Some(0);
        assert!(zero.finish().is_err());

        let mut plaintext = parse(FILE).unwrap();
        plaintext.tls = None;
        assert!(plaintext.finish().unwrap_err().to_string().contains("--insecure-dev"));

        let mut both_modes = parse(FILE).unwrap();
        both_modes.insecure_dev = true;
        assert!(both_modes.finish().unwrap_err().to_string().contains("insecure_dev"));
    }

    #[test]
    fn one_source_of_master_keys_is_allowed() {
        let mut both = parse(FILE).unwrap();
        both.encryption.master_key_file = Some("master.keys".into());
        both.encryption.kms_key_id = Some("alias/safekeep".into());
        assert!(both.finish().unwrap_err().to_string().contains("exactly one"));

        let mut stray = parse(FILE).unwrap();
        stray.encryption.kms_region = Some("eu-west-1".into());
        assert!(stray.finish().unwrap_err().to_string().contains("need kms_key_id"));

        let mut plaintext = parse(FILE).unwrap();
        plaintext.tls = None;
        plaintext.insecure_dev = true;
        plaintext.encryption.kms_key_id = Some("alias/safekeep".into());
        assert!(
            plaintext
                .finish()
                .unwrap_err()
                .to_string()
                .contains("not with --insecure-dev")
        );
    }

    #[cfg(not(feature = "aws-kms"))]
    #[test]
    fn a_kms_key_is_refused_by_a_build_without_aws_kms() {
        let mut kms = parse(FILE).unwrap();
        kms.encryption.kms_key_id = Some("alias/safekeep".into());
        let err = kms.finish().unwrap_err().to_string();
        assert!(err.contains("--features aws-kms"), "{err}");
    }

    #[cfg(feature = "aws-kms")]
    #[test]
    fn kms_settings_are_checked() {
        let mut kms = parse(FILE).unwrap();
        kms.encryption.kms_key_id = Some("arn:aws:kms:eu-west-1:111122223333:key/1234abcd".into());
        kms.encryption.kms_region = Some("eu-west-1".into());
        kms.encryption.kms_endpoint = Some("https://vpce-1.kms.eu-west-1.vpce.amazonaws.com".into());
        kms.clone().finish().unwrap();
        for (key_id, region) in [("", "eu-west-1"), ("alias/x y", "eu-west-1"), ("alias/x", "eu west")] {
            let mut bad = kms.clone();
            bad.encryption.kms_key_id = Some(key_id.into());
            bad.encryption.kms_region = Some(region.into());
            assert!(bad.finish().is_err(), "{key_id:?} in {region:?}");
        }
    }

    #[test]
    fn a_kms_endpoint_is_https_unless_on_loopback() {
        for good in [
            "https://kms.eu-west-1.amazonaws.com",
            "https://10.0.0.5:8443/",
            "http://127.0.0.1:4566",
            "http://localhost:5000",
            "http://[::1]:5000",
        ] {
            assert_eq!(check_kms_endpoint(good), Ok(()), "{good}");
        }
        for bad in [
            "http://kms.eu-west-1.amazonaws.com",
            "http://10.0.0.5:80",
            "http://127.0.0.1.example.com",
            "ftp://127.0.0.1",
            "kms.eu-west-1.amazonaws.com",
            "https://",
        ] {
            assert!(check_kms_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn initial_members_parse_from_flags() {
        let member: InitialMember = "2,b,10.0.0.2:7201,10.0.0.2:7101".parse().unwrap();
        assert_eq!((member.id, member.zone.as_str()), (2, "b"));
        assert!(
            "2,b,10.0.0.2:7201"
                .parse::<InitialMember>()
                .unwrap_err()
                .contains("expected")
        );
        assert!("x,b,p,c".parse::<InitialMember>().unwrap_err().contains("node id"));
    }
}
