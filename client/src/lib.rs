//! The safekeep client SDK: typed calls to a safekeep cluster over gRPC.
//!
//! Build a [`ClientConfig`] with the endpoints (nodes or a load balancer in
//! front of them), [`Client::connect`], then read and write records of a
//! tenant. The client retries transient failures across endpoints with
//! bounded, jittered backoff; every write carries a `WriteId` so a retried
//! write is applied once, and an error that leaves a write's fate unknown says
//! so through [`Error::may_have_applied`].
//!
//! ```no_run
//! # async fn example() -> Result<(), safekeep_client::Error> {
//! use safekeep_client::{Client, ClientConfig};
//!
//! let client = Client::connect(ClientConfig::new(["127.0.0.1:7101"])).await?;
//! let put = client.put("acme", "greeting", b"hello".to_vec()).await?;
//! let record = client.get("acme", "greeting").await?;
//! assert_eq!(record.map(|r| r.version), Some(put.version));
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod admin;
pub mod backoff;
pub mod config;
pub mod endpoints;
pub mod error;
pub mod tls;
pub mod types;

mod client;
mod export;
mod retry;
mod write_id;

pub use client::Client;
pub use config::ClientConfig;
pub use error::Error;
pub use export::{Export, ExportChunk};
pub use tls::{ApiKey, ClientTls};
pub use types::{
    ApiKeyInfo, ApiKeyRole, AuditEntryInfo, AuditVerification, BackupInfo, BatchOp, BatchOutcome, ClusterStatus,
    Consistency, DeleteOutcome, IssuedApiKey, LeaderHint, ListPage, Member, PutOutcome, Record, ResponseHeader, Role,
    TenantInfo,
};
