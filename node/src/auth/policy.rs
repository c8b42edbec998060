//! Authorization: what each principal may do. Tenant keys reach only their
//! own tenant, and a key asking about another tenant is refused the same way
//! whether or not that tenant or record exists. Operators manage the cluster,
//! tenants and keys but never touch record data; support staff read records
//! only with a stated reason, and every such read is audited. A key an
//! operator issued reaches records as staff: every access made with it is
//! audited under the operator's name.

use tonic::Status;

use super::Principal;

/// Longest stated reason of a support read.
pub const MAX_REASON_BYTES: usize = 512;

/// What a records call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordAccess {
    Read,
    Write,
}

/// How a records call was allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// The tenant's own key, or a development node.
    Owner,
    /// A support read: must be audited with this reason.
    SupportRead { name: String, reason: String },
    /// The tenant's records reached with a key an operator issued: staff
    /// access, audited under the operator's name.
    StaffKey { operator: String },
}

/// Decides whether `principal` may `access` records of `tenant`.
pub fn records(
    principal: &Principal,
    tenant: &str,
    access: RecordAccess,
    reason: Option<&str>,
) -> Result<Allowed, Status> {
    match principal {
        Principal::Dev => Ok(Allowed::Owner),
        Principal::Tenant {
            tenant: own,
            role,
            staff_issuer,
            ..
        } => {
            if own != tenant {
                return Err(Status::permission_denied(format!(
                    "this API key does not grant access to tenant {tenant:?}"
                )));
            }
            if access == RecordAccess::Write && !role.may_write() {
                return Err(Status::permission_denied("this API key may only read"));
            }
            Ok(match staff_issuer {
                Some(operator) => Allowed::StaffKey {
                    operator: operator.clone(),
                },
                None => Allowed::Owner,
            })
        }
        Principal::Operator(_) => Err(Status::permission_denied(
            "operators manage the cluster, tenants and keys, but never read or write record data",
        )),
        Principal::Support(name) => {
            if access == RecordAccess::Write {
                return Err(Status::permission_denied(
                    "support staff may read records, never write them",
                ));
            }
            let reason = reason.map(str::trim).filter(|r| !r.is_empty()).ok_or_else(|| {
                Status::permission_denied("a support read needs a reason: set the x-safekeep-reason header")
            })?;
            if reason.len() > MAX_REASON_BYTES || reason.chars().any(char::is_control) {
                return Err(Status::invalid_argument(format!(
                    "the reason holds at most {MAX_REASON_BYTES} bytes and no control characters"
                )));
            }
            Ok(Allowed::SupportRead {
                name: name.clone(),
                reason: reason.to_string(),
            })
        }
    }
}

/// Operators (and development nodes) only: cluster membership, tenants, data keys.
pub fn operator(principal: &Principal) -> Result<(), Status> {
    match principal {
        Principal::Operator(_) | Principal::Dev => Ok(()),
        _ => Err(Status::permission_denied("this needs an operator's client certificate")),
    }
}

/// Operators, or the tenant's own admin key: the tenant's API keys.
pub fn tenant_admin(principal: &Principal, tenant: &str) -> Result<(), Status> {
    use crate::model::command::ApiKeyRole;
    match principal {
        Principal::Operator(_) | Principal::Dev => Ok(()),
        Principal::Tenant {
            tenant: own,
            role: ApiKeyRole::Admin,
            ..
        } if own == tenant => Ok(()),
        _ => Err(Status::permission_denied(format!(
            "managing the API keys of tenant {tenant:?} needs an operator or that tenant's admin key"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::command::ApiKeyRole;

    fn key(tenant: &str, role: ApiKeyRole) -> Principal {
        Principal::Tenant {
            tenant: tenant.into(),
            role,
            key_id: "0123456789abcdef".into(),
            staff_issuer: None,
        }
    }

    #[test]
    fn a_tenant_key_reaches_only_its_tenant_and_its_role() {
        let writer = key("acme", ApiKeyRole::Writer);
        assert!(records(&writer, "acme", RecordAccess::Write, None).is_ok());
        let other = records(&writer, "acmf", RecordAccess::Read, None).unwrap_err();
        assert_eq!(other.code(), tonic::Code::PermissionDenied);
        let reader = key("acme", ApiKeyRole::Reader);
        assert!(records(&reader, "acme", RecordAccess::Read, None).is_ok());
        assert!(records(&reader, "acme", RecordAccess::Write, None).is_err());
        assert!(tenant_admin(&writer, "acme").is_err());
        assert!(tenant_admin(&key("acme", ApiKeyRole::Admin), "acme").is_ok());
        assert!(tenant_admin(&key("acme", ApiKeyRole::Admin), "other").is_err());
        assert!(operator(&key("acme", ApiKeyRole::Admin)).is_err());
        let staff_key = Principal::Tenant {
            tenant: "acme".into(),
            role: ApiKeyRole::Reader,
            key_id: "0123456789abcdef".into(),
            staff_issuer: Some("ops".into()),
        };
        assert_eq!(
            records(&staff_key, "acme", RecordAccess::Read, None).unwrap(),
            Allowed::StaffKey { operator: "ops".into() }
        );
    }

    #[test]
    fn operators_never_touch_data_and_support_reads_need_a_reason() {
        let operator_principal = Principal::Operator("ops".into());
        assert!(records(&operator_principal, "acme", RecordAccess::Read, None).is_err());
        assert!(operator(&operator_principal).is_ok());
        let support = Principal::Support("help".into());
        assert!(records(&support, "acme", RecordAccess::Read, None).is_err());
        assert!(records(&support, "acme", RecordAccess::Read, Some("  ")).is_err());
        assert!(records(&support, "acme", RecordAccess::Write, Some("ticket 1")).is_err());
        assert_eq!(
            records(&support, "acme", RecordAccess::Read, Some("ticket 1")).unwrap(),
            Allowed::SupportRead {
                name: "help".into(),
                reason: "ticket 1".into()
            }
        );
    }
}
