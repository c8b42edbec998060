//! Authentication: turning a request's credentials into a principal. An API
//! key is checked against the local replica's tenancy state (the key exists,
//! is not revoked, its secret matches, its tenant is live); a client
//! certificate names an operator or support principal in its URI SAN.

use std::fmt;

use tonic::{Request, Status};

use super::AUTHORIZATION_HEADER;
use super::ApiKeyToken;
use crate::identity::CertPrincipal;
use crate::model::command::ApiKeyRole;
use crate::raft::{Consensus, ReadLevel};
use crate::status::storage_read;
use crate::storage::RecordReader;
use crate::transport::ConnectionIdentity;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An application holding an API key of `tenant`.
    Tenant {
        tenant: String,
        role: ApiKeyRole,
        key_id: String,
        /// The operator who issued this key: its record access is staff
        /// access, audited under their name.
        staff_issuer: Option<String>,
    },
    /// An operator, by client certificate.
    Operator(String),
    /// Support staff, by client certificate.
    Support(String),
    /// Anyone, on a node running `--insecure-dev`.
    Dev,
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tenant {
                tenant,
                key_id,
                staff_issuer: Some(operator),
                ..
            } => write!(f, "operator:{operator} via api-key:{key_id}@{tenant}"),
            Self::Tenant { tenant, key_id, .. } => write!(f, "api-key:{key_id}@{tenant}"),
            Self::Operator(name) => write!(f, "operator:{name}"),
            Self::Support(name) => write!(f, "support:{name}"),
            Self::Dev => write!(f, "insecure-dev"),
        }
    }
}

/// Authenticates requests against one node's replica.
#[derive(Clone)]
pub struct Authenticator {
    consensus: Consensus,
    reader: RecordReader,
    required: bool,
}

/// One message for every bad key, so a caller learns nothing about which ids exist.
const INVALID_KEY: &str = "the API key is not valid";

impl Authenticator {
    /// `required` is false only on `--insecure-dev` nodes.
    pub fn new(consensus: Consensus, required: bool) -> Self {
        Self {
            reader: consensus.reader().clone(),
            consensus,
            required,
        }
    }

    /// Whether callers must authenticate.
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// The principal behind a request, or `UNAUTHENTICATED`.
    pub async fn authenticate<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        if !self.required {
            return Ok(Principal::Dev);
        }
        if let Some(header) = request.metadata().get(AUTHORIZATION_HEADER) {
            let token = header
                .to_str()
                .ok()
                .and_then(safekeep_api::wire::bearer_key)
                .and_then(|value| ApiKeyToken::parse(value.trim()))
                .ok_or_else(|| Status::unauthenticated("the authorization header must be 'Bearer <API key>'"))?;
            return self.api_key(&token).await;
        }
        match ConnectionIdentity::of(request) {
            Some(CertPrincipal::Operator(name)) => Ok(Principal::Operator(name.clone())),
            Some(CertPrincipal::Support(name)) => Ok(Principal::Support(name.clone())),
            _ => Err(Status::unauthenticated(
                "no credentials: present an API key ('authorization: Bearer <key>') or an operator or support \
                 client certificate",
            )),
        }
    }

    async fn api_key(&self, token: &ApiKeyToken) -> Result<Principal, Status> {
        let mut record = self.reader.api_key(&token.key_id).map_err(|e| storage_read(&e))?;
        if record.is_none() {
            // A key issued through another node may not have reached this replica
            // yet: catch up with the leader's commit once before refusing.
            if self.consensus.read_barrier(ReadLevel::Linearizable).await.is_ok() {
                record = self.reader.api_key(&token.key_id).map_err(|e| storage_read(&e))?;
            }
        }
        let record = record
            .filter(|record| record.revoked_at_ms.is_none() && token.matches(&record.secret_hash))
            .ok_or_else(|| Status::unauthenticated(INVALID_KEY))?;
        let live = self
            .reader
            .tenant(&record.tenant)
            .map_err(|e| storage_read(&e))?
            .is_some_and(|tenant| tenant.is_live());
        if !live {
            return Err(Status::unauthenticated(INVALID_KEY));
        }
        let staff_issuer = self.reader.staff_issuer(&record.key_id).map_err(|e| storage_read(&e))?;
        Ok(Principal::Tenant {
            tenant: record.tenant,
            role: record.role,
            key_id: record.key_id,
            staff_issuer,
        })
    }
}
