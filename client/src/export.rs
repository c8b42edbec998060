//! Exporting a tenant: [`Client::export`] opens the server's stream of
//! chunks, all at one point in time, and [`Export::next_chunk`] hands them
//! out. A stream that breaks (a node going down, a dropped connection) is
//! resumed from the last chunk's token, on any node, with the same point in
//! time; if the tenant's records changed since, the server refuses and the
//! error says so. A stream that ends without its final chunk counts as
//! broken, so a cut export is never mistaken for a whole one.

use safekeep_api::v1;
use tonic::{Request, Status, Streaming};

use crate::client::Client;
use crate::error::Error;
use crate::retry::{Failure, RetryPolicy};
use crate::types::{HasHeader, Record};

/// One chunk of an export, in key order after the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportChunk {
    /// The next records, in key order.
    pub records: Vec<Record>,
    /// The export's point in time: the log index every record is read at.
    pub as_of_version: u64,
    /// Pass to [`Client::export`] to go on after this chunk later.
    pub resume_token: String,
}

/// An export in progress; see [`Client::export`].
#[derive(Debug)]
pub struct Export {
    client: Client,
    tenant: String,
    stream: Option<Streaming<v1::ExportChunk>>,
    resume_token: Option<String>,
    as_of_version: Option<u64>,
    /// Resumptions since a chunk last arrived.
    failures: u32,
    done: bool,
}

/// The opened stream, as `Client::execute` wants a response: it has no header.
struct Opened(Streaming<v1::ExportChunk>);

impl HasHeader for Opened {
    fn header(&self) -> Option<&v1::ResponseHeader> {
        None
    }
}

impl Client {
    /// Starts exporting every record of `tenant`, or goes on after the chunk
    /// whose `resume_token` is given. Chunks come from [`Export::next_chunk`].
    pub async fn export(&self, tenant: &str, resume_token: Option<&str>) -> Result<Export, Error> {
        if tenant.is_empty() {
            return Err(Error::InvalidArgument("tenant must not be empty".into()));
        }
        let mut export = Export {
            client: self.clone(),
            tenant: tenant.to_string(),
            stream: None,
            resume_token: resume_token.map(str::to_string),
            as_of_version: None,
            failures: 0,
            done: false,
        };
        export.open().await?;
        Ok(export)
    }
}

impl Export {
    /// The next chunk, or `None` once every record has been handed out. On a
    /// failure that no resumption could mend, the error names the token to
    /// resume from later.
    pub async fn next_chunk(&mut self) -> Result<Option<ExportChunk>, Error> {
        loop {
            if self.done {
                return Ok(None);
            }
            if self.stream.is_none() {
                self.open().await?;
            }
            let stream = self.stream.as_mut().expect("opened above");
            let idle_limit = self.client.config().request_timeout;
            let failure = match tokio::time::timeout(idle_limit, stream.message()).await {
                Ok(Ok(Some(chunk))) => return self.accept(chunk).map(Some),
                Ok(Ok(None)) => {
                    Failure::Answered(Status::unavailable("the export stream ended before its final chunk"))
                }
                Ok(Err(status)) => Failure::from_status(status),
                Err(_) => Failure::TimedOut,
            };
            self.stream = None;
            self.failures += 1;
            if !failure.is_retryable(RetryPolicy::Read) || self.failures >= self.client.config().max_attempts {
                return Err(self.give_up(failure));
            }
            tokio::time::sleep(self.client.backoff_delay(self.failures)).await;
        }
    }

    /// The token of the last chunk handed out, to resume after it.
    pub fn resume_token(&self) -> Option<&str> {
        self.resume_token.as_deref()
    }

    /// The export's point in time, once a chunk has told it.
    pub fn as_of_version(&self) -> Option<u64> {
        self.as_of_version
    }

    async fn open(&mut self) -> Result<(), Error> {
        let message = v1::ExportRequest {
            tenant: self.tenant.clone(),
            resume_token: self.resume_token.clone().unwrap_or_default(),
        };
        let client = &self.client;
        let opened = client
            .execute(RetryPolicy::Read, |channel, _timeout| {
                // No deadline for the whole stream: `next_chunk` bounds each wait instead.
                let request: Request<v1::ExportRequest> = client.request_without_deadline(message.clone());
                async move {
                    let response = crate::client::records_client(channel).export(request).await?;
                    Ok(response.map(Opened))
                }
            })
            .await
            .map_err(|e| self.with_resume_hint(e))?;
        self.stream = Some(opened.0);
        Ok(())
    }

    fn accept(&mut self, chunk: v1::ExportChunk) -> Result<ExportChunk, Error> {
        if let Some(as_of) = self.as_of_version
            && as_of != chunk.as_of_version
        {
            return Err(Error::Internal(format!(
                "a resumed export moved its point in time from {as_of} to {}",
                chunk.as_of_version
            )));
        }
        self.as_of_version = Some(chunk.as_of_version);
        self.resume_token = Some(chunk.resume_token.clone());
        self.failures = 0;
        self.done = chunk.last;
        Ok(ExportChunk {
            records: chunk.records.into_iter().map(Record::from).collect(),
            as_of_version: chunk.as_of_version,
            resume_token: chunk.resume_token,
        })
    }

    fn give_up(&self, failure: Failure) -> Error {
        self.with_resume_hint(failure.into_error(false))
    }

    fn with_resume_hint(&self, error: Error) -> Error {
        match &self.resume_token {
            Some(token) => error.with_note(&format!("resume the export with token {token}")),
            None => error,
        }
    }
}
