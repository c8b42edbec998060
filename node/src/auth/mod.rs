//! Who is calling and what they may do. Tenants' applications present API
//! keys; operators and support staff present client certificates. A node in
//! `--insecure-dev` mode skips authentication and treats every caller as a
//! development superuser (it says so at start and in `/readyz`).

pub mod api_key;
pub mod audit;
pub mod policy;
pub mod principal;
pub mod rate_limit;
pub mod unknown_keys;

pub use api_key::ApiKeyToken;
pub use audit::Auditor;
pub use policy::RecordAccess;
pub use principal::{Authenticator, Principal};
pub use rate_limit::TenantRateLimiter;
pub use unknown_keys::UnknownKeys;

/// Metadata header carrying `Bearer <API key>`.
pub use safekeep_api::wire::AUTHORIZATION as AUTHORIZATION_HEADER;
/// Metadata header carrying a support read's stated reason.
pub use safekeep_api::wire::REASON as REASON_HEADER;
