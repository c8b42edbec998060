//! Names of the node's Prometheus metrics, and the histogram buckets they use.
//! The dashboard and alert rules under `deploy/` refer to these names; their
//! check fails when a name used there is not one of these.

/// Always 1, labelled `cluster`, `node_id` and `zone`: joins a node's other series to its zone (gauge).
pub const NODE_INFO: &str = "safekeep_node_info";
/// Current Raft term (gauge).
pub const RAFT_TERM: &str = "safekeep_raft_term";
/// Leader changes seen by this node (counter).
pub const LEADER_CHANGES: &str = "safekeep_raft_leader_changes_total";
/// 1 on the leader, 0 elsewhere (gauge).
pub const IS_LEADER: &str = "safekeep_raft_is_leader";
/// Last log index, commit index and applied index (gauges).
pub const LAST_LOG_INDEX: &str = "safekeep_raft_last_log_index";
pub const COMMITTED_INDEX: &str = "safekeep_raft_committed_index";
pub const APPLIED_INDEX: &str = "safekeep_raft_applied_index";
/// On the leader: entries each follower is behind the leader's log (gauge, label `peer`).
pub const FOLLOWER_LAG: &str = "safekeep_raft_follower_lag_entries";
/// Voters in the membership this node knows (gauge).
pub const VOTERS: &str = "safekeep_raft_voters";
/// On the leader: voters, itself included, that answered it recently; 0 on other nodes (gauge).
pub const VOTERS_REACHABLE: &str = "safekeep_raft_voters_reachable";
/// Time from proposing a write on the leader to its application (histogram).
pub const COMMIT_SECONDS: &str = "safekeep_raft_commit_seconds";
/// Time to apply one batch of entries to the state machine (histogram).
pub const APPLY_SECONDS: &str = "safekeep_raft_apply_seconds";
/// Client request latency by method and status code (histogram).
pub const REQUEST_SECONDS: &str = "safekeep_request_duration_seconds";
/// Write results the idempotency table remembers (gauge).
pub const IDEMPOTENCY_RESULTS: &str = "safekeep_idempotency_results";
/// Clients whose write floor the idempotency table keeps (gauge).
pub const IDEMPOTENCY_CLIENTS: &str = "safekeep_idempotency_clients";
/// Raft calls refused because an incarnation did not match, by `reason`:
/// `this_node_replaced` (on a member whose data directory was emptied),
/// `target_replaced` (on a node such a member refused) or `sender_replaced`
/// (on the members a replaced node calls) (counter).
pub const PEER_INCARNATION_REFUSALS: &str = "safekeep_peer_incarnation_refusals_total";
/// TLS handshakes refused, by listener (counter, label `listener`).
pub const TLS_HANDSHAKE_FAILURES: &str = "safekeep_tls_handshake_failures_total";
/// Certificates reloaded from disk (counter).
pub const TLS_RELOADS: &str = "safekeep_tls_reloads_total";
/// New certificates found on disk but refused (counter).
pub const TLS_RELOAD_FAILURES: &str = "safekeep_tls_reload_failures_total";
/// When the node certificate in use expires, Unix seconds (gauge).
pub const TLS_CERT_NOT_AFTER: &str = "safekeep_tls_cert_not_after_seconds";
/// Bytes the node may still use in the file system of its data directory (gauge).
pub const DATA_DIR_FREE_BYTES: &str = "safekeep_data_dir_free_bytes";
/// Size of the file system of the data directory, bytes (gauge).
pub const DATA_DIR_TOTAL_BYTES: &str = "safekeep_data_dir_total_bytes";
/// When the log archive was last current (every committed entry shipped),
/// Unix seconds; exported by the node that ships backups (gauge).
pub const BACKUP_LAST_SUCCESS: &str = "safekeep_backup_last_success_timestamp_seconds";
/// When the last full backup finished, Unix seconds (gauge).
pub const BACKUP_LAST_FULL: &str = "safekeep_backup_last_full_timestamp_seconds";
/// The latest time a restore can reach from the backups, Unix seconds: the
/// commit time of the last archived command (gauge).
pub const BACKUP_RESTORABLE: &str = "safekeep_backup_latest_restorable_timestamp_seconds";
/// Seconds the log archive is behind this node's applied log; 0 when caught up (gauge).
pub const BACKUP_ARCHIVE_LAG: &str = "safekeep_backup_archive_lag_seconds";
/// Backup steps that failed, by `step` (`full`, `archive`, `list`, `retention`) (counter).
pub const BACKUP_FAILURES: &str = "safekeep_backup_failures_total";

/// Buckets of every latency histogram, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];
