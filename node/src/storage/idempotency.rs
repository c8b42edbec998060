//! The idempotency table: the results of recent writes, keyed by
//! `(client_id, request_id)`, so a retried write returns its first result and
//! is not applied twice.
//!
//! The table lives in the state machine (so it is replicated, durable and part
//! of every snapshot); this index keeps its order in memory to bound it: at
//! most `MAX_RESULTS_PER_CLIENT` per client and `MAX_RESULTS_TOTAL` in all, and
//! none older than `RESULT_TTL_MS` of log time. Log time is the largest
//! `proposed_at_ms` the log has carried, and results are stamped with it, so
//! stamps never decrease along the log and every replica (and a replica
//! rebuilt from disk) forgets the same entries at the same log index.
//!
//! A request id older than every result still remembered for its client was
//! either applied and forgotten or never applied: that cannot be told apart,
//! so such a write is refused rather than risk applying it twice.

use std::collections::{HashMap, HashSet, VecDeque};

use rocksdb::{ColumnFamily, DB, Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use super::command::{CommandResponse, WriteId};
use super::db::{decode_err, io_err};
use super::keys::{IDEMPOTENCY_TAG, idempotency_key};

/// How long a write's result is remembered, in log time. Must exceed the
/// longest time a client keeps retrying one write.
pub const RESULT_TTL_MS: i64 = 120_000;
/// Most results remembered per client; older ones are forgotten first.
pub const MAX_RESULTS_PER_CLIENT: usize = 65_536;
/// Most results remembered in all.
pub const MAX_RESULTS_TOTAL: usize = 1_000_000;

/// A remembered result as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RememberedResult {
    pub log_index: u64,
    pub at_ms: i64,
    pub response: CommandResponse,
}

/// In-memory order of the remembered results, for eviction.
#[derive(Debug, Default)]
pub struct IdempotencyIndex {
    /// Every remembered write in log order, with its log time.
    by_age: VecDeque<(i64, WriteId)>,
    /// Per client, its remembered request ids in log order.
    by_client: HashMap<String, VecDeque<u64>>,
    /// Every write whose result is remembered now.
    live: HashSet<WriteId>,
    total: usize,
}

/// What the table knows of a write id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Its result is remembered: return it.
    Remembered,
    /// Older than every remembered result of its client: its outcome is unknowable.
    Forgotten,
    /// Never seen: apply it.
    New,
}

impl IdempotencyIndex {
    /// Rebuilds the index from the table stored in `sm`.
    pub fn load(db: &DB, sm: &ColumnFamily) -> std::io::Result<Self> {
        let mut found = Vec::new();
        let start = [IDEMPOTENCY_TAG];
        for item in db.iterator_cf(sm, IteratorMode::From(&start, Direction::Forward)) {
            let (key, value) = item.map_err(io_err)?;
            if key.first() != Some(&IDEMPOTENCY_TAG) {
                break;
            }
            let id = decode_write_id(&key)?;
            let remembered: RememberedResult = postcard::from_bytes(&value).map_err(decode_err)?;
            found.push((remembered.log_index, remembered.at_ms, id));
        }
        found.sort_by_key(|(index, _, _)| *index);
        let mut index = Self::default();
        for (_, at_ms, id) in found {
            index.push(at_ms, id);
        }
        Ok(index)
    }

    /// What the table knows of `id`.
    pub fn seen(&self, id: &WriteId) -> Seen {
        if self.live.contains(id) {
            return Seen::Remembered;
        }
        match self.by_client.get(&id.client_id).and_then(VecDeque::front) {
            Some(oldest) if id.request_id < *oldest => Seen::Forgotten,
            _ => Seen::New,
        }
    }

    fn push(&mut self, at_ms: i64, id: WriteId) {
        self.live.insert(id.clone());
        self.by_client
            .entry(id.client_id.clone())
            .or_default()
            .push_back(id.request_id);
        self.by_age.push_back((at_ms, id));
        self.total += 1;
    }

    /// Remembers a new result (already put in `batch` by the caller) and
    /// queues deletions for whatever falls out of the bounds.
    pub fn remember(&mut self, id: WriteId, at_ms: i64, log_clock_ms: i64, batch: &mut WriteBatch, sm: &ColumnFamily) {
        let client = id.client_id.clone();
        self.push(at_ms, id);
        if let Some(ids) = self.by_client.get_mut(&client) {
            while ids.len() > MAX_RESULTS_PER_CLIENT {
                if let Some(old) = ids.pop_front() {
                    batch.delete_cf(sm, idempotency_key(&client, old));
                    self.live.remove(&WriteId {
                        client_id: client.clone(),
                        request_id: old,
                    });
                    self.total -= 1;
                }
            }
        }
        self.expire(log_clock_ms, batch, sm);
    }

    /// Forgets results older than the TTL, or beyond the total bound.
    fn expire(&mut self, log_clock_ms: i64, batch: &mut WriteBatch, sm: &ColumnFamily) {
        while let Some((at_ms, _)) = self.by_age.front() {
            let too_old = at_ms.saturating_add(RESULT_TTL_MS) < log_clock_ms;
            if !too_old && self.total <= MAX_RESULTS_TOTAL {
                break;
            }
            let Some((_, id)) = self.by_age.pop_front() else { break };
            let Some(ids) = self.by_client.get_mut(&id.client_id) else {
                continue;
            };
            // Already gone if the per-client bound evicted it earlier.
            if ids.front() == Some(&id.request_id) {
                ids.pop_front();
                self.total -= 1;
                batch.delete_cf(sm, idempotency_key(&id.client_id, id.request_id));
                self.live.remove(&id);
            }
            if ids.is_empty() {
                self.by_client.remove(&id.client_id);
            }
        }
    }
}

fn decode_write_id(key: &[u8]) -> std::io::Result<WriteId> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed idempotency key");
    let len_bytes: [u8; 2] = key.get(1..3).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
    let len = usize::from(u16::from_be_bytes(len_bytes));
    let client = key.get(3..3 + len).ok_or_else(bad)?;
    let id_bytes: [u8; 8] = key.get(3 + len..).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
    Ok(WriteId {
        client_id: String::from_utf8(client.to_vec()).map_err(|_| bad())?,
        request_id: u64::from_be_bytes(id_bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_id_round_trips_through_its_key() {
        let key = idempotency_key("client-7", 99);
        let id = decode_write_id(&key).unwrap();
        assert_eq!(id.client_id, "client-7");
        assert_eq!(id.request_id, 99);
    }
}

#[cfg(test)]
mod index_tests {
    use rocksdb::{ColumnFamilyDescriptor, DB, Options};

    use super::*;

    fn id(client: &str, request_id: u64) -> WriteId {
        WriteId {
            client_id: client.into(),
            request_id,
        }
    }

    #[test]
    fn evicted_ids_are_forgotten_not_new_and_stamps_expire_in_order() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let db = DB::open_cf_descriptors(
            &options,
            dir.path(),
            [ColumnFamilyDescriptor::new("sm", Options::default())],
        )
        .unwrap();
        let sm = db.cf_handle("sm").unwrap();
        let mut index = IdempotencyIndex::default();
        let mut batch = WriteBatch::default();
        for request in 0..=MAX_RESULTS_PER_CLIENT as u64 {
            index.remember(id("c", request), 1_000, 1_000, &mut batch, sm);
        }
        // Request 0 fell out of the per-client bound within this very batch.
        assert_eq!(index.seen(&id("c", 0)), Seen::Forgotten);
        assert_eq!(index.seen(&id("c", 1)), Seen::Remembered);
        assert_eq!(index.seen(&id("c", u64::MAX)), Seen::New);
        assert_eq!(index.seen(&id("other", 0)), Seen::New);

        // Everything stamped 1,000 expires once log time passes the TTL.
        index.remember(
            id("late", 1),
            1_000 + RESULT_TTL_MS + 1,
            1_000 + RESULT_TTL_MS + 1,
            &mut batch,
            sm,
        );
        assert_eq!(index.seen(&id("c", 5)), Seen::New, "the client's results all expired");
        assert_eq!(index.seen(&id("late", 1)), Seen::Remembered);
    }
}
