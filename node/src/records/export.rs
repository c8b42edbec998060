//! `Records.Export`: every record of a tenant, streamed from one snapshot of
//! the local replica after a linearizable read barrier, so the export holds
//! the tenant exactly as of one log index. Each chunk carries a resume token;
//! a resumed export keeps that point in time or is refused. Every export is
//! committed to the audit log before its first record leaves.

use safekeep_api::v1::{self, ExportRequest};
use tokio::sync::mpsc;
use tonic::{Request, Status};

use super::service::{Admitted, ExportStream, RecordsService, open_record};
use crate::auth::{REASON_HEADER, RecordAccess, audit};
use crate::model::limits::{EXPORT_CHUNK_BYTES, EXPORT_CHUNK_RECORDS};
use crate::model::validate;
use crate::raft::ReadLevel;
use crate::status::export_refused;
use crate::storage::{ChunkLimits, ExportPoint};

/// Chunks read ahead of the slowest client: bounds an export's memory.
const CHUNKS_IN_FLIGHT: usize = 2;

impl RecordsService {
    pub(super) async fn do_export(&self, request: Request<ExportRequest>) -> Result<ExportStream, Status> {
        let tenant = request.get_ref().tenant.clone();
        self.admit_request(&request, &tenant, RecordAccess::Read).await?;
        let resume = validate::parse_resume_token(&request.get_ref().resume_token)?
            .map(|(as_of, after)| ExportPoint { as_of, after });
        self.consensus().read_barrier(ReadLevel::Linearizable).await?;
        let admitted = self.readmit(&request, &tenant).await?;

        let reason = request
            .metadata()
            .get(REASON_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let detail = match &resume {
            None => "from the start".to_string(),
            Some(point) => format!("resumed at version {} after key {:?}", point.as_of, point.after),
        };
        let event = audit::event(&admitted.principal, "export", reason, &detail, None);
        self.guard().auditor.record(&tenant, event).await?;

        let (sender, receiver) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let reader = self.reader().clone();
        let header = self.header();
        let data_keys = self.guard().data_keys.clone();
        tokio::task::spawn_blocking(move || {
            let Admitted { tenant: keys, .. } = admitted;
            let limits = ChunkLimits {
                records: EXPORT_CHUNK_RECORDS,
                bytes: EXPORT_CHUNK_BYTES,
            };
            let outcome = reader.export(&tenant, resume.as_ref(), limits, |chunk| {
                let last_key = chunk.records.last().map(|(key, _)| key.clone());
                let records = chunk
                    .records
                    .into_iter()
                    .map(|(key, stored)| open_record(data_keys.as_deref(), keys.as_ref(), &tenant, &key, stored))
                    .collect::<Result<Vec<_>, Status>>();
                let message = records.map(|records| v1::ExportChunk {
                    header: Some(header.clone()),
                    as_of_version: chunk.as_of,
                    last: chunk.last,
                    // An empty chunk resumes where the export resumed, or at the start.
                    resume_token: validate::resume_token(
                        chunk.as_of,
                        last_key
                            .as_deref()
                            .or(resume.as_ref().map(|p| p.after.as_str()))
                            .unwrap_or(""),
                    ),
                    records,
                });
                let failed = message.is_err();
                // A send fails only when the client went away: stop reading.
                sender.blocking_send(message).is_ok() && !failed
            });
            if let Err(e) = outcome {
                let _ = sender.blocking_send(Err(export_refused(&e)));
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver)))
    }
}
