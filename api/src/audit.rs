//! The audit log's hash chain. Each entry's hash covers the previous entry's
//! hash and every field of the entry, so removing, reordering or editing an
//! entry breaks the chain from that point on. The node computes it when it
//! applies an entry; `safekeep audit verify` recomputes it.

use ring::digest;

/// Hash of the entry before the first.
pub const GENESIS_HASH: [u8; 32] = [0; 32];
/// Domain separation of audit hashes.
const CHAIN_CONTEXT: &[u8] = b"safekeep/audit/v1";

/// The fields of one audit entry, as hashed.
#[derive(Debug, Clone, Copy)]
pub struct AuditFields<'a> {
    pub seq: u64,
    pub at_unix_ms: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub tenant: &'a str,
    pub reason: &'a str,
    pub result: &'a str,
    pub detail: &'a str,
}

/// The chained hash of `fields` after an entry whose hash was `previous`.
pub fn chain_hash(previous: &[u8; 32], fields: &AuditFields<'_>) -> [u8; 32] {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(CHAIN_CONTEXT);
    context.update(previous);
    context.update(&fields.seq.to_be_bytes());
    context.update(&fields.at_unix_ms.to_be_bytes());
    for part in [
        fields.actor,
        fields.action,
        fields.tenant,
        fields.reason,
        fields.result,
        fields.detail,
    ] {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// Where a chain of entries (in order, from the first) stops holding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// Entry `seq` does not follow its predecessor's sequence number.
    Gap { expected: u64, found: u64 },
    /// Entry `seq` does not name its predecessor's hash.
    Link { seq: u64 },
    /// Entry `seq`'s fields do not hash to its stored hash.
    Content { seq: u64 },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gap { expected, found } => write!(f, "entry {expected} is missing (found {found} next)"),
            Self::Link { seq } => write!(f, "entry {seq} does not link to the entry before it"),
            Self::Content { seq } => write!(f, "entry {seq} was altered after it was written"),
        }
    }
}

/// Checks a whole chain given as `(fields, prev_hash, hash)` from entry 1 on.
pub fn verify_chain<'a>(
    entries: impl IntoIterator<Item = (AuditFields<'a>, [u8; 32], [u8; 32])>,
) -> Result<u64, ChainBreak> {
    let mut previous = GENESIS_HASH;
    let mut expected = 1;
    for (fields, prev_hash, hash) in entries {
        if fields.seq != expected {
            return Err(ChainBreak::Gap {
                expected,
                found: fields.seq,
            });
        }
        if prev_hash != previous {
            return Err(ChainBreak::Link { seq: fields.seq });
        }
        if chain_hash(&previous, &fields) != hash {
            return Err(ChainBreak::Content { seq: fields.seq });
        }
        previous = hash;
        expected += 1;
    }
    Ok(expected - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(seq: u64, actor: &str) -> AuditFields<'_> {
        AuditFields {
            seq,
            at_unix_ms: 1_000 + seq as i64,
            actor,
            action: "create-tenant",
            tenant: "acme",
            reason: "",
            result: "ok",
            detail: "",
        }
    }

    fn chain(actors: &[&'static str]) -> Vec<(AuditFields<'static>, [u8; 32], [u8; 32])> {
        let mut previous = GENESIS_HASH;
        let mut out = Vec::new();
        for (i, actor) in actors.iter().enumerate() {
            let f = fields(i as u64 + 1, actor);
            let hash = chain_hash(&previous, &f);
            out.push((f, previous, hash));
            previous = hash;
        }
        out
    }

    #[test]
    fn an_intact_chain_verifies_and_every_kind_of_tampering_is_found() {
        let good = chain(&["a", "b", "c"]);
        assert_eq!(verify_chain(good.clone()), Ok(3));

        let mut edited = good.clone();
        edited[1].0.actor = "mallory";
        assert_eq!(verify_chain(edited), Err(ChainBreak::Content { seq: 2 }));

        let mut removed = good.clone();
        removed.remove(1);
        assert_eq!(verify_chain(removed), Err(ChainBreak::Gap { expected: 2, found: 3 }));

        // Removing an entry and renumbering the rest breaks the links instead.
        let mut renumbered = good.clone();
        renumbered.remove(1);
        renumbered[1].0.seq = 2;
        assert!(verify_chain(renumbered).is_err());

        let mut rehashed = good;
        rehashed[1].0.actor = "mallory";
        rehashed[1].2 = chain_hash(&rehashed[1].1, &rehashed[1].0);
        assert_eq!(verify_chain(rehashed), Err(ChainBreak::Link { seq: 3 }));
    }
}
