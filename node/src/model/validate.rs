//! Checks of client input before anything reaches consensus: bad input is
//! refused with a message that says what was wrong, and never changes data.

use super::limits::{
    API_KEY_ID_LEN, MAX_AUDIT_FIELD_BYTES, MAX_BATCH_BYTES, MAX_BATCH_OPS, MAX_CLIENT_ID_BYTES,
    MAX_DATA_KEYS_PER_TENANT, MAX_EXPIRED_PER_COMMAND, MAX_KEY_BYTES, MAX_LABEL_BYTES, MAX_LIST_PAGE,
    MAX_RETENTION_SECONDS, MAX_SEALING_OVERHEAD, MAX_TENANT_BYTES, MAX_TTL_SECONDS, MAX_WRAPPED_KEY_BYTES,
};

/// A request the records API refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("tenant must not be empty")]
    EmptyTenant,
    #[error("tenant is {len} bytes; the limit is {MAX_TENANT_BYTES}")]
    TenantTooLong { len: usize },
    #[error("tenant may only hold lowercase letters, digits, '-' and '_'; found {found:?}")]
    TenantCharacter { found: char },
    #[error("key must not be empty")]
    EmptyKey,
    #[error("key is {len} bytes; the limit is {MAX_KEY_BYTES}")]
    KeyTooLong { len: usize },
    #[error("value is {len} bytes; the limit is {limit}")]
    ValueTooLarge { len: usize, limit: usize },
    #[error("prefix is {len} bytes; the limit is {MAX_KEY_BYTES}")]
    PrefixTooLong { len: usize },
    #[error("unknown consistency level {0}")]
    UnknownConsistency(i32),
    #[error("limit {0} is above the largest page, {MAX_LIST_PAGE}")]
    PageTooLarge(u32),
    #[error("page token is not one this server issued")]
    BadPageToken,
    #[error("resume token is not one an export chunk carried")]
    BadResumeToken,
    #[error("ttl_seconds must be between 1 and {MAX_TTL_SECONDS}; got {0}")]
    BadTtl(u64),
    #[error("retention_seconds must be between 1 and {MAX_RETENTION_SECONDS} (0 keeps records forever); got {0}")]
    BadRetention(u64),
    #[error("an expiry removes between 1 and {MAX_EXPIRED_PER_COMMAND} records; this one has {0}")]
    BadExpiry(usize),
    #[error("a batch needs at least one operation")]
    EmptyBatch,
    #[error("a batch holds at most {MAX_BATCH_OPS} operations; this one has {0}")]
    BatchTooLong(usize),
    #[error("a batch holds at most {MAX_BATCH_BYTES} bytes of keys and values; this one has {0}")]
    BatchTooLarge(usize),
    #[error("operation {0} of the batch names no operation")]
    EmptyBatchOp(usize),
    #[error("key {0:?} appears more than once in the batch")]
    DuplicateBatchKey(String),
    #[error("write_id.client_id must not be empty")]
    EmptyClientId,
    #[error(
        "write_id.first_incomplete ({first_incomplete}) is above its own request_id ({request_id}): \
         a write in flight is not complete"
    )]
    FirstIncompleteAboveRequest { request_id: u64, first_incomplete: u64 },
    #[error("write_id.client_id is {len} bytes; the limit is {MAX_CLIENT_ID_BYTES}")]
    ClientIdTooLong { len: usize },
    #[error("an API key id is {API_KEY_ID_LEN} lowercase hex digits")]
    BadApiKeyId,
    #[error("a label holds at most {MAX_LABEL_BYTES} bytes and no control characters")]
    BadLabel,
    #[error("malformed data key")]
    BadDataKey,
    #[error("malformed audit event")]
    BadAuditEvent,
}

/// Checks a tenant id: 1 to 128 bytes of `[a-z0-9-_]`.
pub fn tenant(tenant: &str) -> Result<(), InvalidRequest> {
    if tenant.is_empty() {
        return Err(InvalidRequest::EmptyTenant);
    }
    if tenant.len() > MAX_TENANT_BYTES {
        return Err(InvalidRequest::TenantTooLong { len: tenant.len() });
    }
    match tenant
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        Some(found) => Err(InvalidRequest::TenantCharacter { found }),
        None => Ok(()),
    }
}

/// Checks a record key: 1 to 1 KiB.
pub fn key(key: &str) -> Result<(), InvalidRequest> {
    if key.is_empty() {
        return Err(InvalidRequest::EmptyKey);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(InvalidRequest::KeyTooLong { len: key.len() });
    }
    Ok(())
}

/// Checks a value against the configured limit.
pub fn value(value: &[u8], limit: usize) -> Result<(), InvalidRequest> {
    if value.len() > limit {
        return Err(InvalidRequest::ValueTooLarge {
            len: value.len(),
            limit,
        });
    }
    Ok(())
}

/// Checks a list prefix (may be empty).
pub fn prefix(prefix: &str) -> Result<(), InvalidRequest> {
    if prefix.len() > MAX_KEY_BYTES {
        return Err(InvalidRequest::PrefixTooLong { len: prefix.len() });
    }
    Ok(())
}

/// Checks a write id's client id.
pub fn client_id(client_id: &str) -> Result<(), InvalidRequest> {
    if client_id.is_empty() {
        return Err(InvalidRequest::EmptyClientId);
    }
    if client_id.len() > MAX_CLIENT_ID_BYTES {
        return Err(InvalidRequest::ClientIdTooLong { len: client_id.len() });
    }
    Ok(())
}

/// Checks a write id: a valid client id, and a first-incomplete mark that
/// does not claim the write itself complete.
pub fn write_id(client: &str, request_id: u64, first_incomplete: u64) -> Result<(), InvalidRequest> {
    client_id(client)?;
    if first_incomplete > request_id {
        return Err(InvalidRequest::FirstIncompleteAboveRequest {
            request_id,
            first_incomplete,
        });
    }
    Ok(())
}

/// Checks a whole replicated command against the limits every node enforces,
/// whatever the configured value limit: the leader re-checks what a peer
/// forwards, so no malformed entry can reach the log.
pub fn command(command: &super::command::Command) -> Result<(), InvalidRequest> {
    use super::command::CommandBody;
    // Cluster-wide audit entries (membership, certificates) name no tenant.
    let cluster_wide =
        matches!(command.body, CommandBody::AuditOnly | CommandBody::RequestBackup) && command.tenant.is_empty();
    if !cluster_wide {
        tenant(&command.tenant)?;
    }
    if let Some(id) = &command.write_id {
        write_id(&id.client_id, id.request_id, id.first_incomplete)?;
    }
    if let Some(key_id) = &command.api_key {
        api_key_id(key_id)?;
    }
    if let Some(event) = &command.audit {
        audit_event(event)?;
    }
    match &command.body {
        CommandBody::Write(mutations) => write_mutations(mutations),
        CommandBody::Tenancy(change) => tenancy_change(change),
        CommandBody::Expire(expired) => {
            if expired.is_empty() || expired.len() > MAX_EXPIRED_PER_COMMAND {
                return Err(InvalidRequest::BadExpiry(expired.len()));
            }
            expired.iter().try_for_each(|e| key(&e.key))
        }
        CommandBody::RequestBackup if command.tenant.is_empty() => Ok(()),
        CommandBody::RequestBackup => Err(InvalidRequest::BadAuditEvent),
        CommandBody::AuditOnly if command.audit.is_some() => Ok(()),
        CommandBody::AuditOnly => Err(InvalidRequest::BadAuditEvent),
    }
}

fn audit_event(event: &super::command::AuditEvent) -> Result<(), InvalidRequest> {
    let fields = [
        event.actor.as_str(),
        event.action.as_str(),
        event.reason.as_str(),
        event.detail.as_str(),
        event.result.as_deref().unwrap_or(""),
    ];
    if fields.iter().any(|f| f.len() > MAX_AUDIT_FIELD_BYTES) {
        return Err(InvalidRequest::BadAuditEvent);
    }
    Ok(())
}

/// Checks the form of an API key id: 16 lowercase hex digits.
pub fn api_key_id(key_id: &str) -> Result<(), InvalidRequest> {
    let well_formed = key_id.len() == API_KEY_ID_LEN && key_id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if well_formed {
        Ok(())
    } else {
        Err(InvalidRequest::BadApiKeyId)
    }
}

/// Checks an API key's label.
pub fn api_key_label(label: &str) -> Result<(), InvalidRequest> {
    if label.len() > MAX_LABEL_BYTES || label.chars().any(char::is_control) {
        return Err(InvalidRequest::BadLabel);
    }
    Ok(())
}

fn tenancy_change(change: &super::command::TenancyChange) -> Result<(), InvalidRequest> {
    use super::command::{TenancyChange, WrappedDataKey};
    let data_key = |key: &WrappedDataKey| {
        let fits = key.wrapped.len() <= MAX_WRAPPED_KEY_BYTES && key.master_key_id.len() <= MAX_LABEL_BYTES;
        if fits && key.version > 0 {
            Ok(())
        } else {
            Err(InvalidRequest::BadDataKey)
        }
    };
    match change {
        TenancyChange::CreateTenant { data_key: key } | TenancyChange::AddDataKey { data_key: key } => data_key(key),
        TenancyChange::RewrapDataKeys { data_keys } => {
            if data_keys.len() > MAX_DATA_KEYS_PER_TENANT {
                return Err(InvalidRequest::BadDataKey);
            }
            data_keys.iter().try_for_each(data_key)
        }
        TenancyChange::DeleteTenant => Ok(()),
        TenancyChange::IssueApiKey { key_id, label, .. } => {
            api_key_id(key_id)?;
            api_key_label(label)
        }
        TenancyChange::IssueStaffApiKey {
            key_id,
            label,
            operator,
            ..
        } => {
            api_key_id(key_id)?;
            api_key_label(label)?;
            api_key_label(operator)
        }
        TenancyChange::RevokeApiKey { key_id } => api_key_id(key_id),
        TenancyChange::SetRetention { retention_ms: None } => Ok(()),
        TenancyChange::SetRetention { retention_ms: Some(ms) } => retention_seconds(ms / 1000).map(|_| ()),
    }
}

/// Checks a record's time to live; returns it in ms.
pub fn ttl_seconds(ttl: u64) -> Result<u64, InvalidRequest> {
    if ttl == 0 || ttl > MAX_TTL_SECONDS {
        return Err(InvalidRequest::BadTtl(ttl));
    }
    Ok(ttl * 1000)
}

/// Checks a tenant's retention window (0: none); returns it in ms.
pub fn retention_seconds(retention: u64) -> Result<Option<u64>, InvalidRequest> {
    match retention {
        0 => Ok(None),
        r if r > MAX_RETENTION_SECONDS => Err(InvalidRequest::BadRetention(r)),
        r => Ok(Some(r * 1000)),
    }
}

fn write_mutations(mutations: &[super::command::Mutation]) -> Result<(), InvalidRequest> {
    if mutations.is_empty() {
        return Err(InvalidRequest::EmptyBatch);
    }
    if mutations.len() > MAX_BATCH_OPS {
        return Err(InvalidRequest::BatchTooLong(mutations.len()));
    }
    let mut bytes = 0usize;
    for mutation in mutations {
        key(mutation.key())?;
        bytes += mutation.key().len();
        if let super::command::Mutation::PutWithTtl { ttl_ms, .. } = mutation {
            ttl_seconds(ttl_ms / 1000)?;
        }
        if let Some(v) = mutation.value() {
            // Values arrive sealed: allow for the envelope around the largest plaintext.
            value(v, super::limits::MAX_VALUE_BYTES_CEILING + MAX_SEALING_OVERHEAD)?;
            bytes += v.len();
        }
    }
    if bytes > MAX_BATCH_BYTES + mutations.len() * MAX_SEALING_OVERHEAD {
        return Err(InvalidRequest::BatchTooLarge(bytes));
    }
    Ok(())
}

/// Encodes the last key of a page as an opaque token.
pub fn page_token(last_key: &str) -> String {
    hex::encode(last_key.as_bytes())
}

/// Decodes a page token back into the key the page stopped at.
pub fn parse_page_token(token: &str) -> Result<Option<String>, InvalidRequest> {
    if token.is_empty() {
        return Ok(None);
    }
    let bytes = hex::decode(token).map_err(|_| InvalidRequest::BadPageToken)?;
    let key = String::from_utf8(bytes).map_err(|_| InvalidRequest::BadPageToken)?;
    if key.len() > MAX_KEY_BYTES {
        return Err(InvalidRequest::BadPageToken);
    }
    Ok(Some(key))
}

/// Encodes where an export stands: its point in time and the last key out.
pub fn resume_token(as_of: u64, last_key: &str) -> String {
    format!("{as_of}-{}", hex::encode(last_key.as_bytes()))
}

/// Decodes a resume token into the export's point in time and last key.
pub fn parse_resume_token(token: &str) -> Result<Option<(u64, String)>, InvalidRequest> {
    if token.is_empty() {
        return Ok(None);
    }
    let (as_of, key) = token.split_once('-').ok_or(InvalidRequest::BadResumeToken)?;
    let as_of = as_of.parse::<u64>().map_err(|_| InvalidRequest::BadResumeToken)?;
    let key = parse_page_token(key).map_err(|_| InvalidRequest::BadResumeToken)?;
    Ok(Some((as_of, key.unwrap_or_default())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_accepts_lowercase_digits_dash_underscore() {
        assert_eq!(tenant("acme-corp_42"), Ok(()));
    }

    #[test]
    fn tenant_refuses_empty_long_and_odd_characters() {
        assert_eq!(tenant(""), Err(InvalidRequest::EmptyTenant));
        assert_eq!(
            tenant(&"a".repeat(129)),
            Err(InvalidRequest::TenantTooLong { len: 129 })
        );
        assert_eq!(tenant("Acme"), Err(InvalidRequest::TenantCharacter { found: 'A' }));
        assert_eq!(tenant("a/b"), Err(InvalidRequest::TenantCharacter { found: '/' }));
        assert_eq!(
            tenant("a\u{0}"),
            Err(InvalidRequest::TenantCharacter { found: '\u{0}' })
        );
    }

    #[test]
    fn key_bounds() {
        assert_eq!(key(""), Err(InvalidRequest::EmptyKey));
        assert_eq!(key(&"k".repeat(1024)), Ok(()));
        assert_eq!(key(&"k".repeat(1025)), Err(InvalidRequest::KeyTooLong { len: 1025 }));
    }

    #[test]
    fn value_bound_is_the_configured_limit() {
        assert_eq!(value(&[0; 10], 10), Ok(()));
        assert_eq!(
            value(&[0; 11], 10),
            Err(InvalidRequest::ValueTooLarge { len: 11, limit: 10 })
        );
    }

    #[test]
    fn page_tokens_round_trip_and_garbage_is_refused() {
        let token = page_token("users/7");
        assert_eq!(parse_page_token(&token), Ok(Some("users/7".to_string())));
        assert_eq!(parse_page_token(""), Ok(None));
        assert_eq!(parse_page_token("zz"), Err(InvalidRequest::BadPageToken));
    }

    #[test]
    fn resume_tokens_round_trip_and_garbage_is_refused() {
        let token = resume_token(42, "users/7");
        assert_eq!(parse_resume_token(&token), Ok(Some((42, "users/7".to_string()))));
        assert_eq!(parse_resume_token(""), Ok(None));
        for garbage in ["42", "x-00", "42-zz", "-75"] {
            assert_eq!(
                parse_resume_token(garbage),
                Err(InvalidRequest::BadResumeToken),
                "{garbage}"
            );
        }
    }
}
