//! Identities for writes, so that a retried write is applied at most once.
//!
//! Each [`Client`](crate::Client) draws a random 128-bit client id when it is
//! created and numbers its writes in order. One logical write takes one id
//! and every retry of it sends that same id; the server's idempotency table
//! then answers a retry with the first attempt's outcome.
//!
//! A client is shared by many tasks, so many of its writes are in flight at
//! once and reach the server in any order. Each write also carries the
//! lowest id still in flight (`first_incomplete`, as in RIFL): the server may
//! forget every result below it, because no write below it will be sent
//! again. A write leaves the in-flight set when its outcome is handed to the
//! caller (success or final error) or when the caller drops it.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use safekeep_api::v1;

/// Hands out the write ids of one client instance.
#[derive(Debug)]
pub(crate) struct WriteIdSource {
    client_id: String,
    ids: Mutex<Ids>,
}

#[derive(Debug)]
struct Ids {
    next: u64,
    in_flight: BTreeSet<u64>,
}

/// The id of one logical write, in flight until this is dropped.
#[derive(Debug)]
pub(crate) struct WriteTicket<'a> {
    source: &'a WriteIdSource,
    id: v1::WriteId,
}

impl WriteTicket<'_> {
    /// The id every attempt of this write sends.
    pub(crate) fn id(&self) -> v1::WriteId {
        self.id.clone()
    }
}

impl Drop for WriteTicket<'_> {
    fn drop(&mut self) {
        let mut ids = self.source.ids.lock().unwrap_or_else(PoisonError::into_inner);
        let was_in_flight = ids.in_flight.remove(&self.id.request_id);
        debug_assert!(was_in_flight, "a write leaves the in-flight set once");
    }
}

impl WriteIdSource {
    /// A source with a client id drawn from `rng` whose first request id is 1.
    pub(crate) fn new(rng: &mut impl rand::Rng) -> Self {
        Self {
            client_id: format!("{:032x}", rng.random::<u128>()),
            ids: Mutex::new(Ids {
                next: 1,
                in_flight: BTreeSet::new(),
            }),
        }
    }

    /// The random hex id of this client instance.
    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The id of a new logical write; its retries must reuse it.
    pub(crate) fn next(&self) -> WriteTicket<'_> {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        let request_id = ids.next;
        ids.next += 1;
        ids.in_flight.insert(request_id);
        let first_incomplete = *ids.in_flight.first().expect("holds this write");
        assert!(first_incomplete <= request_id, "a write in flight is not complete");
        WriteTicket {
            source: self,
            id: v1::WriteId {
                client_id: self.client_id.clone(),
                request_id,
                first_incomplete,
            },
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
        assert_eq!(first.id.client_id, second.id.client_id);
        assert_eq!(first.id.request_id + 1, second.id.request_id);
    }

    #[test]
    fn first_incomplete_is_the_oldest_write_still_in_flight() {
        let source = WriteIdSource::new(&mut rand::rng());
        let one = source.next();
        let two = source.next();
        assert_eq!(two.id.first_incomplete, 1);
        // The newer write finishing first does not move the mark past the older one.
        drop(two);
        assert_eq!(source.next().id.first_incomplete, 1);
        drop(one);
        let four = source.next();
        assert_eq!((four.id.request_id, four.id.first_incomplete), (4, 4));
    }
}
