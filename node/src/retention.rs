//! The retention sweeper: on the leader, about once a second, it finds
//! records whose time to live has passed (from the expiry index) and records
//! a tenant has not written for longer than its retention window (a bounded
//! scan per tenant from where the last pass stopped), and proposes their
//! removal through Raft, one audited command per tenant and at most
//! `MAX_EXPIRED_PER_COMMAND` records each, so every replica removes the same
//! records. A record written again since it was found stays: the state
//! machine removes it only at the version found.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics_names as names;
use crate::model::command::{AuditEvent, Command, CommandBody, CommandResponse, Expiry};
use crate::model::limits::MAX_EXPIRED_PER_COMMAND;
use crate::raft::{Consensus, Role};

/// Time between two passes.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Most records one pass removes, over every tenant.
const MAX_EXPIRED_PER_PASS: usize = 4 * MAX_EXPIRED_PER_COMMAND;
/// Most records one pass reads of one tenant with a retention window.
const SCAN_PER_TENANT: usize = 10_000;

/// Why a record is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reason {
    Ttl,
    Retention,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Reason::Ttl => "ttl",
            Reason::Retention => "retention",
        }
    }
}

/// Found expired in one pass: by tenant and reason.
type Found = BTreeMap<(String, Reason), Vec<Expiry>>;

/// Runs the sweeper until `stop` turns true.
pub fn spawn(consensus: Consensus, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Where each tenant's retention scan goes on from.
        let mut cursors: HashMap<String, String> = HashMap::new();
        loop {
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(SWEEP_INTERVAL) => {}
            }
            if *stop.borrow() {
                return;
            }
            if consensus.view().role != Role::Leader {
                cursors.clear();
                continue;
            }
            let now_ms = consensus.wall_clock_ms();
            let reader = consensus.reader().clone();
            // Off the runtime's workers, but inline on a single-threaded
            // (simulated) runtime, so a simulation stays deterministic.
            let found = crate::storage::off_runtime(|| find_expired(&reader, now_ms, &cursors));
            let (found, next_cursors) = match found {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "retention pass could not read the store");
                    continue;
                }
            };
            cursors = next_cursors;
            for ((tenant, reason), expired) in found {
                for chunk in expired.chunks(MAX_EXPIRED_PER_COMMAND) {
                    propose(&consensus, &tenant, reason, chunk.to_vec()).await;
                }
            }
        }
    })
}

/// Finds at most `MAX_EXPIRED_PER_PASS` expired records, and where each
/// tenant's retention scan goes on next pass.
fn find_expired(
    reader: &crate::storage::RecordReader,
    now_ms: i64,
    cursors: &HashMap<String, String>,
) -> std::io::Result<(Found, HashMap<String, String>)> {
    let mut found = Found::new();
    let mut count = 0;
    for (tenant, expiry) in reader.due_expiries(now_ms, MAX_EXPIRED_PER_PASS)? {
        found.entry((tenant, Reason::Ttl)).or_default().push(expiry);
        count += 1;
    }
    let mut next = HashMap::new();
    for (tenant, window_ms) in reader.retention_windows()? {
        if count >= MAX_EXPIRED_PER_PASS {
            if let Some(cursor) = cursors.get(&tenant) {
                next.insert(tenant, cursor.clone());
            }
            continue;
        }
        let cutoff_ms = now_ms.saturating_sub(i64::try_from(window_ms).unwrap_or(i64::MAX));
        let scan = reader.stale_records(
            &tenant,
            cutoff_ms,
            cursors.get(&tenant).map(String::as_str),
            SCAN_PER_TENANT,
        )?;
        let room = MAX_EXPIRED_PER_PASS - count;
        let stale: Vec<Expiry> = scan.stale.into_iter().take(room).collect();
        count += stale.len();
        if !stale.is_empty() {
            found
                .entry((tenant.clone(), Reason::Retention))
                .or_default()
                .extend(stale);
        }
        if let Some(after) = scan.resume_after {
            next.insert(tenant, after);
        }
    }
    Ok((found, next))
}

async fn propose(consensus: &Consensus, tenant: &str, reason: Reason, expired: Vec<Expiry>) {
    let count = expired.len();
    let why = match reason {
        Reason::Ttl => "their time to live passed",
        Reason::Retention => "the tenant's retention window passed",
    };
    let command = Command {
        write_id: None,
        proposed_at_ms: 0,
        leader_clock_ms: 0,
        tenant: tenant.to_string(),
        api_key: None,
        body: CommandBody::Expire(expired),
        audit: Some(AuditEvent {
            actor: "retention".into(),
            action: "expire".into(),
            reason: why.into(),
            detail: format!("{count} records found expired"),
            result: None,
        }),
    };
    match consensus.propose(command).await {
        Ok(applied) => {
            let removed = match &applied.response {
                CommandResponse::Applied { existed, .. } => existed.iter().filter(|r| **r).count(),
                _ => 0,
            };
            metrics::counter!(names::RECORDS_EXPIRED, "reason" => reason.label()).increment(removed as u64);
            tracing::info!(
                tenant,
                reason = reason.label(),
                found = count,
                removed,
                "records expired"
            );
        }
        Err(e) => tracing::warn!(tenant, error = %e, "proposing expired records failed; the next pass tries again"),
    }
}
