//! Backups through the `Cluster` service: `BackupNow` puts an operator's
//! request for a full backup in the log (audited with it), where the node
//! that ships backups sees it, and with `wait` answers once a set that
//! covers the request is in the target; `Status` reports where the backups
//! stand from the progress the shipping node last wrote beside them.

use std::time::Duration;

use safekeep_api::v1::{BackupNowRequest, BackupNowResponse, BackupStatus};
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::cluster_service::ClusterService;
use crate::auth::audit;
use crate::backup::{self, Catalog};
use crate::model::command::{Command, CommandBody};
use crate::model::limits::MAX_AUDIT_FIELD_BYTES;

/// Longest a `BackupNow` with `wait` waits for its set.
const BACKUP_NOW_WAIT: Duration = Duration::from_secs(600);
/// How often a waiting `BackupNow` looks for its set.
const BACKUP_NOW_POLL: Duration = Duration::from_millis(250);
/// Longest `Status` waits to read the backups' progress.
const PROGRESS_READ_TIMEOUT: Duration = Duration::from_secs(2);

impl ClusterService {
    pub(super) async fn do_backup_now(
        &self,
        request: Request<BackupNowRequest>,
    ) -> Result<Response<BackupNowResponse>, Status> {
        let principal = self.operator_only(&request).await?;
        let access = self.backups.clone().ok_or_else(|| {
            Status::failed_precondition("this cluster takes no backups: its nodes have no [backup] section")
        })?;
        let BackupNowRequest { wait, reason } = request.into_inner();
        if reason.len() > MAX_AUDIT_FIELD_BYTES {
            return Err(Status::invalid_argument(format!(
                "reason is {} bytes; the limit is {MAX_AUDIT_FIELD_BYTES}",
                reason.len()
            )));
        }
        let event = audit::event(&principal, "backup-now", &reason, "", None);
        let command = Command {
            write_id: None,
            proposed_at_ms: 0,
            leader_clock_ms: 0,
            tenant: String::new(),
            api_key: None,
            body: CommandBody::RequestBackup,
            audit: Some(event),
        };
        let requested = self.consensus.propose(command).await?.index;
        let mut response = BackupNowResponse {
            header: Some(self.header()),
            requested_at_index: requested,
            ..Default::default()
        };
        if !wait {
            return Ok(Response::new(response));
        }
        let started = Instant::now();
        loop {
            let sets = Catalog::list_sets(&access.target)
                .await
                .map_err(|e| Status::unavailable(format!("reading the backup target: {e}")))?;
            if let Some(set) = sets.iter().find(|s| s.index >= requested) {
                response.set = set.folder();
                response.set_index = set.index;
                response.taken_at_unix_ms = set.taken_at_ms;
                return Ok(Response::new(response));
            }
            if started.elapsed() > BACKUP_NOW_WAIT {
                return Err(Status::deadline_exceeded(format!(
                    "no full backup covering log index {requested} after {} s: see the shipping node's log",
                    BACKUP_NOW_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(BACKUP_NOW_POLL).await;
        }
    }

    /// Where the cluster's backups stand, as the shipping node last wrote it.
    pub(super) async fn backup_status(&self) -> BackupStatus {
        let Some(access) = &self.backups else {
            return BackupStatus::default();
        };
        let mut status = BackupStatus {
            configured: true,
            target: access.target.url.clone(),
            ..Default::default()
        };
        let read = tokio::time::timeout(
            PROGRESS_READ_TIMEOUT,
            backup::read_progress(&access.target, &access.provider),
        )
        .await;
        match read {
            Ok(Ok(Some(progress))) => {
                status.shipper_node_id = progress.node;
                status.current_at_unix_ms = progress.current_at_ms;
                status.last_full_unix_ms = progress.last_full_ms;
                status.last_full_index = progress.last_full_index;
                status.restorable_unix_ms = progress.restorable_at_ms;
                status.archived_index = progress.archived_index;
            }
            Ok(Ok(None)) => status.error = "no backup has been written yet".into(),
            Ok(Err(e)) => status.error = e.to_string(),
            Err(_) => {
                status.error = format!(
                    "the backup target did not answer within {} s",
                    PROGRESS_READ_TIMEOUT.as_secs()
                )
            }
        }
        status
    }
}
