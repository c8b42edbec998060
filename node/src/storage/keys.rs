//! Byte layout of the state machine's keys. The tenant id is length-prefixed,
//! so no tenant's key prefix can ever reach into another tenant's records
//! (tenant `a` with key `bc` never collides with tenant `ab` with key `c`).
//!
//! ```text
//! 0x00 name                                   applied state (meta)
//! 0x01 u16-be tenant-len  tenant  key         a record
//! 0x02 u16-be client-len  client  u64-be id   a remembered write result
//! 0x03 u16-be tenant-len  tenant              a tenant (state, wrapped data keys)
//! 0x04 key-id                                 an API key (hash, tenant, role)
//! 0x05 u64-be seq                             an audit log entry
//! ```

/// First byte of state machine metadata keys.
pub const META_TAG: u8 = 0x00;
/// First byte of record keys.
pub const RECORD_TAG: u8 = 0x01;
/// First byte of idempotency-table keys.
pub const IDEMPOTENCY_TAG: u8 = 0x02;
/// First byte of tenant keys.
pub const TENANT_TAG: u8 = 0x03;
/// First byte of API key keys.
pub const API_KEY_TAG: u8 = 0x04;
/// First byte of audit log keys.
pub const AUDIT_TAG: u8 = 0x05;
/// One past the last tag: every state machine key sorts below this.
pub const END_TAG: u8 = 0x06;

/// Why a stored key could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("stored key is malformed: {0}")]
    Malformed(&'static str),
}

/// Key of a state machine metadata entry.
pub fn meta_key(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + name.len());
    out.push(META_TAG);
    out.extend_from_slice(name.as_bytes());
    out
}

fn push_length_prefixed(out: &mut Vec<u8>, part: &str) {
    // Callers validate tenant and client ids to well under u16::MAX bytes.
    let len = u16::try_from(part.len()).expect("validated id fits a u16 length");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(part.as_bytes());
}

/// The prefix every record of `tenant` starts with.
pub fn tenant_prefix(tenant: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + tenant.len());
    out.push(RECORD_TAG);
    push_length_prefixed(&mut out, tenant);
    out
}

/// The storage key of record `key` of `tenant`.
pub fn record_key(tenant: &str, key: &str) -> Vec<u8> {
    let mut out = tenant_prefix(tenant);
    out.extend_from_slice(key.as_bytes());
    out
}

/// The record key part of a storage key that starts with `tenant_prefix`.
pub fn record_key_suffix(storage_key: &[u8], tenant_prefix_len: usize) -> Result<String, KeyError> {
    let suffix = storage_key
        .get(tenant_prefix_len..)
        .ok_or(KeyError::Malformed("shorter than its tenant prefix"))?;
    String::from_utf8(suffix.to_vec()).map_err(|_| KeyError::Malformed("record key is not UTF-8"))
}

/// The prefix of every remembered result of `client_id`.
pub fn idempotency_client_prefix(client_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + client_id.len() + 8);
    out.push(IDEMPOTENCY_TAG);
    push_length_prefixed(&mut out, client_id);
    out
}

/// The key of the remembered result of one write.
pub fn idempotency_key(client_id: &str, request_id: u64) -> Vec<u8> {
    let mut out = idempotency_client_prefix(client_id);
    out.extend_from_slice(&request_id.to_be_bytes());
    out
}

/// The key of a tenant's own entry.
pub fn tenant_key(tenant: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + tenant.len());
    out.push(TENANT_TAG);
    push_length_prefixed(&mut out, tenant);
    out
}

/// The tenant id of a key made by `tenant_key`.
pub fn tenant_of_key(storage_key: &[u8]) -> Result<String, KeyError> {
    let name = storage_key
        .get(3..)
        .ok_or(KeyError::Malformed("tenant key shorter than its prefix"))?;
    String::from_utf8(name.to_vec()).map_err(|_| KeyError::Malformed("tenant id is not UTF-8"))
}

/// The key of an API key's entry.
pub fn api_key_key(key_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key_id.len());
    out.push(API_KEY_TAG);
    out.extend_from_slice(key_id.as_bytes());
    out
}

/// The key of audit entry `seq`.
pub fn audit_key(seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(AUDIT_TAG);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// The smallest key past every key starting with `prefix`, if there is one.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_prefix_cannot_reach_another_tenant() {
        let a = record_key("a", "bc");
        let ab = record_key("ab", "c");
        assert_ne!(a, ab);
        assert!(!ab.starts_with(&tenant_prefix("a")));
        assert!(!a.starts_with(&tenant_prefix("ab")));
    }

    #[test]
    fn record_key_round_trips() {
        let prefix = tenant_prefix("acme");
        let key = record_key("acme", "users/42");
        assert_eq!(record_key_suffix(&key, prefix.len()).unwrap(), "users/42");
    }

    #[test]
    fn kinds_of_keys_do_not_overlap() {
        assert!(meta_key("applied") < record_key("", ""));
        assert!(record_key("zzz", "zzz") < idempotency_key("", 0));
        assert!(idempotency_key("c", u64::MAX) < tenant_key(""));
        assert!(tenant_key("zzz") < api_key_key(""));
        assert!(api_key_key("ffff") < audit_key(0));
        assert!(audit_key(u64::MAX) < vec![END_TAG]);
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 255]), Some(vec![2]));
        assert_eq!(prefix_end(&[255]), None);
        assert_eq!(tenant_of_key(&tenant_key("acme")).unwrap(), "acme");
    }
}
