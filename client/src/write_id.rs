//! Identities for writes, so that a retried write is applied at most once.
//!
//! Each [`Client`](crate::Client) draws a random 128-bit client id when it is
//! created and numbers its writes from an atomic counter. One logical write
//! takes one id and every retry of it sends that same id; the server's
//! idempotency table then answers a retry with the first attempt's outcome.

use std::sync::atomic::{AtomicU64, Ordering};

use safekeep_api::v1;

/// Hands out the write ids of one client instance.
#[derive(Debug)]
pub(crate) struct WriteIdSource {
    client_id: String,
    next_request_id: AtomicU64,
}

impl WriteIdSource {
    /// A source with a client id drawn from `rng` whose first request id is 1.
    pub(crate) fn new(rng: &mut impl rand::Rng) -> Self {
        Self {
            client_id: format!("{:032x}", rng.random::<u128>()),
            next_request_id: AtomicU64::new(1),
        }
    }

    /// The random hex id of this client instance.
    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The id of a new logical write; its retries must reuse it.
    pub(crate) fn next(&self) -> v1::WriteId {
        v1::WriteId {
            client_id: self.client_id.clone(),
            request_id: self.next_request_id.fetch_add(1, Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_is_128_bits_of_hex() {
        let source = WriteIdSource::new(&mut rand::rng());
        assert_eq!(source.client_id().len(), 32);
        assert!(source.client_id().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(source.client_id(), WriteIdSource::new(&mut rand::rng()).client_id());
    }

    #[test]
    fn a_seeded_source_draws_the_same_client_id() {
        use rand::SeedableRng;
        let seeded = |seed| WriteIdSource::new(&mut rand::rngs::StdRng::seed_from_u64(seed));
        assert_eq!(seeded(5).client_id(), seeded(5).client_id());
        assert_ne!(seeded(5).client_id(), seeded(6).client_id());
    }

    #[test]
    fn request_ids_grow_and_share_the_client_id() {
        let source = WriteIdSource::new(&mut rand::rng());
        let first = source.next();
        let second = source.next();
        assert_eq!(first.client_id, second.client_id);
        assert_eq!(first.request_id + 1, second.request_id);
    }
}
