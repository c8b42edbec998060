//! Names of the node's Prometheus metrics, what each one means (the HELP
//! text `/metrics` shows, with its type and unit), and the histogram buckets
//! they use. Every name ends in its unit (`_seconds`, `_bytes`, `_entries`)
//! unless it counts things, and counters end in `_total`. The dashboard and
//! alert rules under `deploy/` refer to these names; their check fails when a
//! name used there is not one of these.

use metrics::Unit;

/// Always 1, labelled `cluster`, `node_id` and `zone`: joins a node's other series to its zone (gauge).
pub const NODE_INFO: &str = "safekeep_node_info";
/// Current Raft term (gauge).
pub const RAFT_TERM: &str = "safekeep_raft_term";
/// Leader changes seen by this node (counter).
pub const LEADER_CHANGES: &str = "safekeep_raft_leader_changes_total";
/// 1 on the leader, 0 elsewhere (gauge).
pub const IS_LEADER: &str = "safekeep_raft_is_leader";
/// Index of the last entry in this node's Raft log (gauge).
pub const LAST_LOG_INDEX: &str = "safekeep_raft_last_log_index";
/// Highest log index this node knows to be committed (gauge).
pub const COMMITTED_INDEX: &str = "safekeep_raft_committed_index";
/// Highest log index applied to this node's state machine (gauge).
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
/// Peer connections this node opened and closed in the handshake because
/// the certificate there, though issued by the cluster CA, named another
/// node than the one dialed (counter).
pub const PEER_IDENTITY_REFUSALS: &str = "safekeep_peer_identity_refusals_total";
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
/// Records the retention sweeper removed, by `reason` (`ttl`, `retention`) (counter).
pub const RECORDS_EXPIRED: &str = "safekeep_records_expired_total";
/// When the newest full backup last passed a test restore, Unix seconds (gauge).
pub const BACKUP_LAST_VERIFIED: &str = "safekeep_backup_last_verified_timestamp_seconds";
/// Test restores that failed or brought back other records than the set was taken with (counter).
pub const BACKUP_VERIFY_FAILURES: &str = "safekeep_backup_verify_failures_total";
/// Backup steps that failed, by `step` (`full`, `archive`, `list`, `retention`) (counter).
pub const BACKUP_FAILURES: &str = "safekeep_backup_failures_total";
/// Requests refused for their caller's request rate on this node (counter).
pub const RATE_LIMITED: &str = "safekeep_rate_limited_requests_total";
/// API keys refused without a catch-up with the leader, by `reason`:
/// `remembered` (an id found unknown before) or `catch_up_budget` (this
/// node's catch-ups for unknown ids were spent) (counter).
pub const UNKNOWN_KEY_REFUSALS: &str = "safekeep_unknown_api_key_refusals_total";
/// Catch-ups with the leader made for an API key id this replica did not know (counter).
pub const UNKNOWN_KEY_CATCH_UPS: &str = "safekeep_unknown_api_key_catch_ups_total";
/// Records requests refused before their body was read, for a malformed
/// `authorization` header or no credentials at all (counter).
pub const EARLY_AUTH_REFUSALS: &str = "safekeep_early_auth_refusals_total";
/// Connections closed as they arrived, by `listener` and `reason`:
/// `max_connections` or `handshakes_per_address` (counter).
pub const CONNECTIONS_REFUSED: &str = "safekeep_connections_refused_total";

/// How Prometheus types a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution over [`LATENCY_BUCKETS`].
    Histogram,
}

/// One metric as `/metrics` describes it: name, type, unit and help text.
#[derive(Debug, Clone, Copy)]
pub struct Description {
    /// The metric's name, one of the constants above.
    pub name: &'static str,
    /// Its Prometheus type.
    pub kind: Kind,
    /// What one unit of its value is; `Count` for numbers of things.
    pub unit: Unit,
    /// The HELP line: what it measures, and its labels.
    pub help: &'static str,
}

const fn described(name: &'static str, kind: Kind, unit: Unit, help: &'static str) -> Description {
    Description { name, kind, unit, help }
}

/// Every metric the node exports, described.
pub const DESCRIPTIONS: &[Description] = &[
    described(
        NODE_INFO,
        Kind::Gauge,
        Unit::Count,
        "Always 1; labels cluster, node_id and zone join a node's other series to its zone.",
    ),
    described(RAFT_TERM, Kind::Gauge, Unit::Count, "Current Raft term of this node."),
    described(
        LEADER_CHANGES,
        Kind::Counter,
        Unit::Count,
        "Leader changes this node has seen.",
    ),
    described(
        IS_LEADER,
        Kind::Gauge,
        Unit::Count,
        "1 while this node is the Raft leader, 0 otherwise.",
    ),
    described(
        LAST_LOG_INDEX,
        Kind::Gauge,
        Unit::Count,
        "Index of the last entry in this node's Raft log.",
    ),
    described(
        COMMITTED_INDEX,
        Kind::Gauge,
        Unit::Count,
        "Highest log index this node knows to be committed.",
    ),
    described(
        APPLIED_INDEX,
        Kind::Gauge,
        Unit::Count,
        "Highest log index applied to this node's state machine.",
    ),
    described(
        FOLLOWER_LAG,
        Kind::Gauge,
        Unit::Count,
        "On the leader: log entries each follower (label peer) is behind the leader's log.",
    ),
    described(
        VOTERS,
        Kind::Gauge,
        Unit::Count,
        "Voters in the membership this node knows.",
    ),
    described(
        VOTERS_REACHABLE,
        Kind::Gauge,
        Unit::Count,
        "On the leader: voters, itself included, that answered it recently; 0 on other nodes.",
    ),
    described(
        COMMIT_SECONDS,
        Kind::Histogram,
        Unit::Seconds,
        "Time from proposing a write on the leader to its application.",
    ),
    described(
        APPLY_SECONDS,
        Kind::Histogram,
        Unit::Seconds,
        "Time to apply one batch of log entries to the state machine.",
    ),
    described(
        REQUEST_SECONDS,
        Kind::Histogram,
        Unit::Seconds,
        "Client request latency, by gRPC method and status code.",
    ),
    described(
        IDEMPOTENCY_RESULTS,
        Kind::Gauge,
        Unit::Count,
        "Write results the idempotency table remembers.",
    ),
    described(
        IDEMPOTENCY_CLIENTS,
        Kind::Gauge,
        Unit::Count,
        "Clients whose write floor the idempotency table keeps.",
    ),
    described(
        PEER_INCARNATION_REFUSALS,
        Kind::Counter,
        Unit::Count,
        "Raft calls refused because an incarnation did not match, by reason \
         (this_node_replaced, target_replaced, sender_replaced).",
    ),
    described(
        PEER_IDENTITY_REFUSALS,
        Kind::Counter,
        Unit::Count,
        "Peer connections this node dialed and closed in the handshake because the certificate there named another node than the one dialed (a wrong or stale address).",
    ),
    described(
        TLS_HANDSHAKE_FAILURES,
        Kind::Counter,
        Unit::Count,
        "TLS handshakes refused, by listener (client or peer).",
    ),
    described(
        TLS_RELOADS,
        Kind::Counter,
        Unit::Count,
        "Certificates reloaded from disk.",
    ),
    described(
        TLS_RELOAD_FAILURES,
        Kind::Counter,
        Unit::Count,
        "New certificates found on disk but refused; the ones in use stay.",
    ),
    described(
        TLS_CERT_NOT_AFTER,
        Kind::Gauge,
        Unit::Seconds,
        "When the node certificate in use expires, as a Unix time in seconds.",
    ),
    described(
        DATA_DIR_FREE_BYTES,
        Kind::Gauge,
        Unit::Bytes,
        "Bytes the node may still use in the file system of its data directory.",
    ),
    described(
        DATA_DIR_TOTAL_BYTES,
        Kind::Gauge,
        Unit::Bytes,
        "Size of the file system of the data directory.",
    ),
    described(
        BACKUP_LAST_SUCCESS,
        Kind::Gauge,
        Unit::Seconds,
        "On the node shipping backups: when the log archive was last current, as a Unix time in seconds.",
    ),
    described(
        BACKUP_LAST_FULL,
        Kind::Gauge,
        Unit::Seconds,
        "On the node shipping backups: when the last full backup finished, as a Unix time in seconds.",
    ),
    described(
        BACKUP_RESTORABLE,
        Kind::Gauge,
        Unit::Seconds,
        "On the node shipping backups: the commit time of the last archived write, the latest a restore reaches.",
    ),
    described(
        BACKUP_ARCHIVE_LAG,
        Kind::Gauge,
        Unit::Seconds,
        "On the node shipping backups: how long committed entries have waited unshipped; 0 when caught up.",
    ),
    described(
        RECORDS_EXPIRED,
        Kind::Counter,
        Unit::Count,
        "Records the retention sweeper removed, by reason: ttl (a record's time to live) or retention (its tenant's window).",
    ),
    described(
        BACKUP_LAST_VERIFIED,
        Kind::Gauge,
        Unit::Seconds,
        "On the node shipping backups: when the newest full backup last passed a test restore, as a Unix time in seconds.",
    ),
    described(
        BACKUP_VERIFY_FAILURES,
        Kind::Counter,
        Unit::Count,
        "Test restores of the newest full backup that failed or found other records than it was taken with.",
    ),
    described(
        BACKUP_FAILURES,
        Kind::Counter,
        Unit::Count,
        "Backup steps that failed, by step: list, full, archive or retention.",
    ),
    described(
        RATE_LIMITED,
        Kind::Counter,
        Unit::Count,
        "Requests refused with RESOURCE_EXHAUSTED because their caller was over its request rate on this node.",
    ),
    described(
        UNKNOWN_KEY_REFUSALS,
        Kind::Counter,
        Unit::Count,
        "API keys refused with no catch-up with the leader, by reason: remembered (the id was found unknown before) or catch_up_budget (this node's catch-ups for unknown ids were spent).",
    ),
    described(
        UNKNOWN_KEY_CATCH_UPS,
        Kind::Counter,
        Unit::Count,
        "Catch-ups with the leader (read barriers) made for an API key id this replica did not know.",
    ),
    described(
        EARLY_AUTH_REFUSALS,
        Kind::Counter,
        Unit::Count,
        "Records requests refused before their body was decoded, for a malformed authorization header or no credentials at all.",
    ),
    described(
        CONNECTIONS_REFUSED,
        Kind::Counter,
        Unit::Count,
        "Connections closed as they arrived, by listener and reason: max_connections or handshakes_per_address.",
    ),
];

/// Describes every metric to the recorder in scope, so `/metrics` carries a
/// HELP line (and the unit, for exporters that show it) for each family.
pub fn describe() {
    for d in DESCRIPTIONS {
        match d.kind {
            Kind::Counter => metrics::describe_counter!(d.name, d.unit, d.help),
            Kind::Gauge => metrics::describe_gauge!(d.name, d.unit, d.help),
            Kind::Histogram => metrics::describe_histogram!(d.name, d.unit, d.help),
        }
    }
}

/// Buckets of every latency histogram, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of every `pub const NAME: &str = "..."` in this file.
    fn declared_names() -> Vec<&'static str> {
        include_str!("metrics_names.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("pub const ")?.split_once(": &str = \""))
            .filter_map(|(_, rest)| rest.strip_suffix("\";"))
            .collect()
    }

    #[test]
    fn every_metric_name_is_described_once() {
        let declared = declared_names();
        assert!(declared.len() >= 20, "found only {declared:?}: has the format changed?");
        for name in &declared {
            let count = DESCRIPTIONS.iter().filter(|d| d.name == *name).count();
            assert_eq!(count, 1, "{name} is described {count} times");
        }
        assert_eq!(
            DESCRIPTIONS.len(),
            declared.len(),
            "a description names no declared metric"
        );
        for d in DESCRIPTIONS {
            assert!(
                d.help.ends_with('.') && d.help.len() > 20,
                "{}: help {:?}",
                d.name,
                d.help
            );
        }
    }

    #[test]
    fn names_carry_their_unit_and_counters_end_in_total() {
        for d in DESCRIPTIONS {
            let stem = d.name.strip_suffix("_total").unwrap_or(d.name);
            assert_eq!(
                d.kind == Kind::Counter,
                stem != d.name,
                "{}: _total marks counters only",
                d.name
            );
            match d.unit {
                Unit::Seconds => assert!(stem.ends_with("_seconds"), "{}", d.name),
                Unit::Bytes => assert!(stem.ends_with("_bytes"), "{}", d.name),
                Unit::Count => assert!(
                    !["_seconds", "_bytes", "_ms", "_milliseconds"]
                        .iter()
                        .any(|u| stem.ends_with(u)),
                    "{} names a unit but is described as a count",
                    d.name
                ),
                other => panic!("{}: unit {other:?}: Prometheus wants base units", d.name),
            }
        }
    }
}
