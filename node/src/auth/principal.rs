//! Authentication: turning a request's credentials into a principal. An API
//! key is checked against the local replica's tenancy state (the key exists,
//! is not revoked, its secret matches, its tenant is live); a client
//! certificate names an operator or support principal in its URI SAN.

use std::fmt;
use std::sync::Arc;

use tonic::{Request, Status};

use super::AUTHORIZATION_HEADER;
use super::ApiKeyToken;
use super::unknown_keys::{UnknownKeyVerdict, UnknownKeys};
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
    unknown: Arc<UnknownKeys>,
}

/// One message for every bad key, so a caller learns nothing about which ids exist.
const INVALID_KEY: &str = "the API key is not valid";

fn parse_bearer(header: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>) -> Option<ApiKeyToken> {
    header
        .to_str()
        .ok()
        .and_then(safekeep_api::wire::bearer_key)
        .and_then(|value| ApiKeyToken::parse(value.trim()))
}

fn malformed_header() -> Status {
    Status::unauthenticated("the authorization header must be 'Bearer <API key>'")
}

fn no_credentials() -> Status {
    Status::unauthenticated(
        "no credentials: present an API key ('authorization: Bearer <key>') or an operator or support client \
         certificate",
    )
}

impl Authenticator {
    /// `required` is false only on `--insecure-dev` nodes; `unknown` decides
    /// what key ids this replica does not hold cost.
    pub fn new(consensus: Consensus, required: bool, unknown: UnknownKeys) -> Self {
        Self {
            reader: consensus.reader().clone(),
            consensus,
            required,
            unknown: Arc::new(unknown),
        }
    }

    /// Checks a request's credentials as far as it can without storage or
    /// the network, before its body is read: a malformed `authorization`
    /// header, a key id already found unknown, or no credentials at all are
    /// refused here. Anything else is checked in full by `authenticate`.
    pub fn precheck<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if !self.required {
            return Ok(());
        }
        let refused = |status: Status| {
            metrics::counter!(crate::metrics_names::EARLY_AUTH_REFUSALS).increment(1);
            Err(status)
        };
        match request.metadata().get(AUTHORIZATION_HEADER) {
            Some(header) => match parse_bearer(header) {
                None => refused(malformed_header()),
                Some(token) if self.unknown.refuse_remembered(&token.key_id) => {
                    Err(Status::unauthenticated(INVALID_KEY))
                }
                Some(_) => Ok(()),
            },
            None => match ConnectionIdentity::of(request) {
                Some(CertPrincipal::Operator(_) | CertPrincipal::Support(_)) => Ok(()),
                _ => refused(no_credentials()),
            },
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
            let token = parse_bearer(header).ok_or_else(malformed_header)?;
            return self.api_key(&token).await;
        }
        match ConnectionIdentity::of(request) {
            Some(CertPrincipal::Operator(name)) => Ok(Principal::Operator(name.clone())),
            Some(CertPrincipal::Support(name)) => Ok(Principal::Support(name.clone())),
            _ => Err(no_credentials()),
        }
    }

    async fn api_key(&self, token: &ApiKeyToken) -> Result<Principal, Status> {
        let mut record = self.reader.api_key(&token.key_id).map_err(|e| storage_read(&e))?;
        if record.is_none() {
            // A key issued through another node may not have reached this replica
            // yet: catch up with the leader's commit once before refusing, within
            // the node's budget, and never again for an id found unknown.
            if self.unknown.verdict(&token.key_id) == UnknownKeyVerdict::Refuse {
                return Err(Status::unauthenticated(INVALID_KEY));
            }
            if self.consensus.read_barrier(ReadLevel::Linearizable).await.is_ok() {
                record = self.reader.api_key(&token.key_id).map_err(|e| storage_read(&e))?;
                if record.is_none() {
                    self.unknown.remember(&token.key_id);
                }
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
