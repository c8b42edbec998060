//! Writing the audit log: who did what to which tenant, why, and with what
//! result. Entries are replicated through Raft (hash-chained by the state
//! machine) and also written to the structured log under target
//! `safekeep::audit`. An entry that must exist before an action (a support
//! read) is committed first; without it the action does not happen.

use std::fmt::Display;

use tonic::Status;

use crate::model::command::{AuditEvent, Command};
use crate::raft::Consensus;

/// Tracing target of audit entries.
pub const AUDIT_TARGET: &str = "safekeep::audit";

/// Builds an audit event.
pub fn event(actor: &impl Display, action: &str, reason: &str, detail: &str, result: Option<String>) -> AuditEvent {
    AuditEvent {
        actor: actor.to_string(),
        action: action.to_string(),
        reason: reason.to_string(),
        detail: detail.to_string(),
        result,
    }
}

/// Writes an event to the structured log (never values or secrets: events hold neither).
pub fn log(tenant: &str, event: &AuditEvent, result: &str) {
    tracing::info!(
        target: AUDIT_TARGET,
        actor = %event.actor,
        action = %event.action,
        tenant,
        reason = %event.reason,
        detail = %event.detail,
        result,
        "audit"
    );
}

/// Appends standalone audit entries through consensus.
#[derive(Clone)]
pub struct Auditor {
    consensus: Consensus,
}

impl Auditor {
    pub fn new(consensus: Consensus) -> Self {
        Self { consensus }
    }

    /// Commits `event` about `tenant` to the audit log; fails if it could not be committed.
    pub async fn record(&self, tenant: &str, event: AuditEvent) -> Result<(), Status> {
        let result = event.result.clone().unwrap_or_else(|| "ok".to_string());
        log(tenant, &event, &result);
        self.consensus.propose(Command::audit_only(tenant, event)).await?;
        Ok(())
    }

    /// Like `record`, for entries whose loss must not fail the action they describe.
    pub async fn record_best_effort(&self, tenant: &str, event: AuditEvent) {
        let action = event.action.clone();
        if let Err(status) = self.record(tenant, event).await {
            tracing::error!(target: AUDIT_TARGET, action, error = %status, "could not append to the audit log");
        }
    }
}
