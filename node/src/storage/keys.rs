//! Byte layout of the state machine's keys. The tenant id is length-prefixed,
//! so no tenant's key prefix can ever reach into another tenant's records
//! (tenant `a` with key `bc` never collides with tenant `ab` with key `c`).
//!
//! ```text
//! 0x00 name                                   applied state (meta)
//! 0x01 u16-be tenant-len  tenant  key         a record
//! 0x02 u16-be tenant-len  tenant  u16-be client-len  client  0x00
//!                                             a client's write floor
//! 0x02 u16-be tenant-len  tenant  u16-be client-len  client  0x01  u64-be id
//!                                             a remembered write result
//! 0x03 u16-be tenant-len  tenant              a tenant (state, wrapped data keys)
//! 0x04 key-id                                 an API key (hash, tenant, role)
//! 0x05 u64-be seq                             an audit log entry
//! 0x06 u16-be tenant-len  tenant              the log index of the tenant's
//!                                             last change of its records
//! 0x07 u64-be expires-at-ms  u16-be tenant-len  tenant  key
//!                                             a record's time to live (value:
//!                                             the version it was set with)
//! 0x08 u16-be tenant-len  tenant              the tenant's retention window
//! ```

/// Meta key of the last applied log id.
pub const APPLIED_KEY: &str = "applied";
/// Meta key of the leader's clock at the last applied command (i64-be ms
/// since the Unix epoch): the time a backup of the state machine reaches.
pub const APPLIED_AT_KEY: &str = "applied_at_ms";
/// Meta key of the log index of the latest request for a full backup (u64-be).
pub const BACKUP_REQUESTED_KEY: &str = "backup_requested";
/// Meta key of the last applied membership.
pub const MEMBERSHIP_KEY: &str = "membership";

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
/// First byte of the keys that hold each tenant's last record change.
pub const TENANT_WRITTEN_TAG: u8 = 0x06;
/// First byte of the expiry index: records with a time to live, by expiry time.
pub const EXPIRY_TAG: u8 = 0x07;
/// First byte of the keys that hold each tenant's retention window.
pub const RETENTION_TAG: u8 = 0x08;
/// First byte of the keys that mark an API key as issued by staff, holding the operator's name.
pub const STAFF_KEY_TAG: u8 = 0x09;
/// One past the last tag: every state machine key sorts below this.
pub const END_TAG: u8 = 0x0a;

/// Why a stored key could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("stored key is malformed: {0}")]
    Malformed(&'static str),
}

/// The tenant a state machine key belongs to: `None` for keys of no one
/// tenant (metadata, API keys, whose tenant is in their value, and the
/// audit log).
pub fn owner_of_key(key: &[u8]) -> Option<&str> {
    match key.first() {
        Some(&(RECORD_TAG | IDEMPOTENCY_TAG | TENANT_TAG | TENANT_WRITTEN_TAG | RETENTION_TAG)) => {
            let len = u16::from_be_bytes([*key.get(1)?, *key.get(2)?]) as usize;
            std::str::from_utf8(key.get(3..3 + len)?).ok()
        }
        Some(&EXPIRY_TAG) => {
            let len = u16::from_be_bytes([*key.get(9)?, *key.get(10)?]) as usize;
            std::str::from_utf8(key.get(11..11 + len)?).ok()
        }
        _ => None,
    }
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

/// Byte after the client id that marks a client's write floor.
pub const FLOOR_KIND: u8 = 0x00;
/// Byte after the client id that marks a remembered write result.
pub const RESULT_KIND: u8 = 0x01;

/// The prefix of every idempotency entry of `tenant`.
pub fn idempotency_tenant_prefix(tenant: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + tenant.len());
    out.push(IDEMPOTENCY_TAG);
    push_length_prefixed(&mut out, tenant);
    out
}

fn idempotency_client_prefix(tenant: &str, client_id: &str) -> Vec<u8> {
    let mut out = idempotency_tenant_prefix(tenant);
    out.reserve(2 + client_id.len() + 9);
    push_length_prefixed(&mut out, client_id);
    out
}

/// The key of the write floor of one client of one tenant.
pub fn idempotency_floor_key(tenant: &str, client_id: &str) -> Vec<u8> {
    let mut out = idempotency_client_prefix(tenant, client_id);
    out.push(FLOOR_KIND);
    out
}

/// The key of the remembered result of one write of one client of one tenant.
pub fn idempotency_result_key(tenant: &str, client_id: &str, request_id: u64) -> Vec<u8> {
    let mut out = idempotency_client_prefix(tenant, client_id);
    out.push(RESULT_KIND);
    out.extend_from_slice(&request_id.to_be_bytes());
    out
}

/// An idempotency key taken apart: tenant, client id, and the request id of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKeyParts {
    pub tenant: String,
    pub client_id: String,
    /// `None` for a floor entry.
    pub request_id: Option<u64>,
}

/// Decodes a key made by `idempotency_floor_key` or `idempotency_result_key`.
pub fn decode_idempotency_key(key: &[u8]) -> Result<IdempotencyKeyParts, KeyError> {
    let (tag, rest) = key.split_first().ok_or(KeyError::Malformed("empty idempotency key"))?;
    if *tag != IDEMPOTENCY_TAG {
        return Err(KeyError::Malformed("not an idempotency key"));
    }
    let (tenant, rest) = take_length_prefixed(rest)?;
    let (client_id, rest) = take_length_prefixed(rest)?;
    let request_id = match rest.split_first() {
        Some((&FLOOR_KIND, [])) => None,
        Some((&RESULT_KIND, id)) => {
            let id: [u8; 8] = id
                .try_into()
                .map_err(|_| KeyError::Malformed("request id is not 8 bytes"))?;
            Some(u64::from_be_bytes(id))
        }
        _ => return Err(KeyError::Malformed("unknown idempotency entry kind")),
    };
    Ok(IdempotencyKeyParts {
        tenant,
        client_id,
        request_id,
    })
}

fn take_length_prefixed(bytes: &[u8]) -> Result<(String, &[u8]), KeyError> {
    let len: [u8; 2] = bytes
        .get(..2)
        .and_then(|b| b.try_into().ok())
        .ok_or(KeyError::Malformed("missing length prefix"))?;
    let len = usize::from(u16::from_be_bytes(len));
    let part = bytes
        .get(2..2 + len)
        .ok_or(KeyError::Malformed("shorter than its length prefix"))?;
    let text = String::from_utf8(part.to_vec()).map_err(|_| KeyError::Malformed("id is not UTF-8"))?;
    Ok((text, &bytes[2 + len..]))
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

/// The key of the log index at which `tenant`'s records last changed.
pub fn tenant_written_key(tenant: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + tenant.len());
    out.push(TENANT_WRITTEN_TAG);
    push_length_prefixed(&mut out, tenant);
    out
}

/// The expiry index entry of record `key` of `tenant`, due at `expires_at_ms`.
pub fn expiry_key(expires_at_ms: i64, tenant: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(11 + tenant.len() + key.len());
    out.push(EXPIRY_TAG);
    out.extend_from_slice(&u64::try_from(expires_at_ms).unwrap_or(0).to_be_bytes());
    push_length_prefixed(&mut out, tenant);
    out.extend_from_slice(key.as_bytes());
    out
}

/// The first expiry index key due after `at_ms`: every entry due at or
/// before it sorts below.
pub fn expiry_bound(at_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(EXPIRY_TAG);
    out.extend_from_slice(&u64::try_from(at_ms).unwrap_or(0).saturating_add(1).to_be_bytes());
    out
}

/// Reads an expiry index key: when it is due, the tenant and the record key.
pub fn parse_expiry_key(storage_key: &[u8]) -> Result<(i64, String, String), KeyError> {
    if storage_key.first() != Some(&EXPIRY_TAG) || storage_key.len() < 11 {
        return Err(KeyError::Malformed("not an expiry index key"));
    }
    let at = u64::from_be_bytes(storage_key[1..9].try_into().expect("8 bytes"));
    let (tenant, rest) = take_length_prefixed(&storage_key[9..])?;
    let key = String::from_utf8(rest.to_vec()).map_err(|_| KeyError::Malformed("record key is not UTF-8"))?;
    Ok((i64::try_from(at).unwrap_or(i64::MAX), tenant, key))
}

/// The key of `tenant`'s retention window.
pub fn retention_key(tenant: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + tenant.len());
    out.push(RETENTION_TAG);
    push_length_prefixed(&mut out, tenant);
    out
}

/// The key of an API key's entry.
pub fn api_key_key(key_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key_id.len());
    out.push(API_KEY_TAG);
    out.extend_from_slice(key_id.as_bytes());
    out
}

/// The key that marks API key `key_id` as a staff key.
pub fn staff_key_key(key_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key_id.len());
    out.push(STAFF_KEY_TAG);
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
    fn a_key_names_its_tenant_only_when_it_has_one() {
        assert_eq!(owner_of_key(&record_key("a", "bc")), Some("a"));
        assert_eq!(owner_of_key(&record_key("ab", "c")), Some("ab"));
        assert_eq!(owner_of_key(&tenant_key("acme")), Some("acme"));
        assert_eq!(owner_of_key(&tenant_written_key("acme")), Some("acme"));
        assert_eq!(owner_of_key(&meta_key(APPLIED_KEY)), None);
        assert_eq!(owner_of_key(&api_key_key("3f9c")), None);
        assert_eq!(owner_of_key(&[RECORD_TAG, 0]), None);
        assert_eq!(owner_of_key(&expiry_key(5, "acme", "k")), Some("acme"));
        assert_eq!(owner_of_key(&retention_key("acme")), Some("acme"));
    }

    #[test]
    fn expiry_keys_sort_by_time_and_read_back() {
        let early = expiry_key(1_000, "zz", "k");
        let late = expiry_key(2_000, "aa", "k");
        assert!(early < late && late < expiry_bound(2_000) && expiry_bound(2_000) < expiry_key(2_001, "a", ""));
        assert_eq!(
            parse_expiry_key(&early).unwrap(),
            (1_000, "zz".to_string(), "k".to_string())
        );
        assert!(parse_expiry_key(&record_key("a", "b")).is_err());
        assert!(retention_key("zzz") < vec![END_TAG]);
    }

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
        assert!(record_key("zzz", "zzz") < idempotency_floor_key("", ""));
        assert!(idempotency_result_key("t", "c", u64::MAX) < tenant_key(""));
        assert!(tenant_key("zzz") < api_key_key(""));
        assert!(api_key_key("ffff") < audit_key(0));
        assert!(audit_key(u64::MAX) < tenant_written_key(""));
        assert!(tenant_written_key("zzz") < vec![END_TAG]);
    }

    #[test]
    fn idempotency_keys_round_trip_and_keep_tenants_apart() {
        let result = idempotency_result_key("acme", "worker-1", 7);
        let parts = decode_idempotency_key(&result).unwrap();
        assert_eq!(parts.tenant, "acme");
        assert_eq!(parts.client_id, "worker-1");
        assert_eq!(parts.request_id, Some(7));
        let floor = decode_idempotency_key(&idempotency_floor_key("acme", "worker-1")).unwrap();
        assert_eq!(floor.request_id, None);
        // The same client and request id under another tenant is another key.
        assert_ne!(result, idempotency_result_key("globex", "worker-1", 7));
        assert!(!result.starts_with(&idempotency_tenant_prefix("acm")));
        assert!(result.starts_with(&idempotency_tenant_prefix("acme")));
        assert!(decode_idempotency_key(&result[..result.len() - 1]).is_err());
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 255]), Some(vec![2]));
        assert_eq!(prefix_end(&[255]), None);
        assert_eq!(tenant_of_key(&tenant_key("acme")).unwrap(), "acme");
    }
}
