//! The idempotency table: what the state machine remembers of recent writes
//! so that a retried write returns its first result and is never applied
//! twice, following RIFL (RAMCloud's "Implementing Linearizability at Large
//! Scale").
//!
//! A write id is `(tenant, client_id, request_id)`: the tenant is the
//! command's own, so one tenant's ids never answer, block or pre-empt another
//! tenant's writes. Per client of a tenant the table keeps:
//! - a **floor**: every request id below it is retired and refused, never
//!   applied. It rises to the `first_incomplete` mark the client sends (the
//!   lowest id it has not yet seen completed), and past any result the table
//!   had to forget. So a result may be dropped without ever letting its write
//!   apply again: the floor outlives the result.
//! - the **results** of its writes at or above the floor.
//!
//! Bounds, all in log order so every replica (and a replica rebuilt from
//! disk) forgets the same entries at the same log index:
//! - a result lives at most `RESULT_TTL_MS` of expiry time;
//! - at most `MAX_RESULTS_PER_CLIENT` results per client and
//!   `MAX_RESULTS_TOTAL` in all, oldest forgotten first;
//! - a client with nothing remembered is forgotten (its floor too) after
//!   `CLIENT_IDLE_TTL_MS`, and the least recently active beyond
//!   `MAX_TRACKED_CLIENTS`.
//!
//! Expiry time is not the leader's wall clock: the state machine advances it
//! only by the leader's monotonic clock within one leader's term (see
//! `ExpiryClock`), so a wall clock that jumps forward cannot expire
//! everything at once.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use rocksdb::{ColumnFamily, DB, Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use super::columns::{decode_err, io_err};
use super::keys::{
    IDEMPOTENCY_TAG, decode_idempotency_key, idempotency_floor_key, idempotency_result_key, idempotency_tenant_prefix,
    prefix_end,
};
use crate::model::command::CommandResponse;

/// How long a write's result is remembered, in expiry time. Must exceed the
/// longest time a client keeps retrying one write.
pub const RESULT_TTL_MS: i64 = 120_000;
/// Most results remembered per client; older ones are forgotten first.
pub const MAX_RESULTS_PER_CLIENT: usize = 65_536;
/// Most results remembered in all.
pub const MAX_RESULTS_TOTAL: usize = 1_000_000;
/// How long a client with no remembered result keeps its floor.
pub const CLIENT_IDLE_TTL_MS: i64 = 3_600_000;
/// Most clients whose floor is kept; the least recently active go first.
pub const MAX_TRACKED_CLIENTS: usize = 1_000_000;

const _: () = assert!(
    CLIENT_IDLE_TTL_MS > RESULT_TTL_MS,
    "a floor outlives the results above it"
);

/// One client of one tenant: the owner of a sequence of request ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey {
    pub tenant: String,
    pub client_id: String,
}

/// A remembered result as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RememberedResult {
    pub log_index: u64,
    /// Expiry time when it was applied.
    pub at_ms: i64,
    /// Digest of what the write changes: a reused id for another write is refused.
    pub fingerprint: u64,
    pub response: CommandResponse,
}

/// A client's floor as stored.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct StoredFloor {
    floor: u64,
    last_active_ms: i64,
}

#[derive(Debug)]
struct ClientEntry {
    floor: u64,
    last_active_ms: i64,
    /// Remembered request ids and the log index each was applied at.
    results: BTreeMap<u64, u64>,
}

/// What the table knows of a write id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Its result is remembered: return it.
    Remembered,
    /// Below its client's floor: retired, so it is not applied now (it may
    /// have been applied long ago).
    Retired { floor: u64 },
    /// Never seen: apply it.
    New,
}

/// In-memory order of the table, for lookups and eviction.
#[derive(Debug, Default)]
pub struct IdempotencyIndex {
    clients: HashMap<Arc<ClientKey>, ClientEntry>,
    /// Remembered results in log order: (stamp, log index, client, request id).
    /// Entries whose result is already gone are skipped when reached.
    by_age: VecDeque<(i64, u64, Arc<ClientKey>, u64)>,
    /// Every client by its last activity.
    by_activity: BTreeSet<(i64, Arc<ClientKey>)>,
    results: usize,
}

impl IdempotencyIndex {
    /// Rebuilds the index from the table stored in `sm`.
    pub fn load(db: &DB, sm: &ColumnFamily) -> std::io::Result<Self> {
        let mut index = Self::default();
        let mut found = Vec::new();
        let start = [IDEMPOTENCY_TAG];
        for item in db.iterator_cf(sm, IteratorMode::From(&start, Direction::Forward)) {
            let (key, value) = item.map_err(io_err)?;
            if key.first() != Some(&IDEMPOTENCY_TAG) {
                break;
            }
            let parts =
                decode_idempotency_key(&key).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            let client = index.intern(ClientKey {
                tenant: parts.tenant,
                client_id: parts.client_id,
            });
            match parts.request_id {
                None => {
                    let stored: StoredFloor = postcard::from_bytes(&value).map_err(decode_err)?;
                    index.set_activity(&client, stored.last_active_ms);
                    if let Some(entry) = index.clients.get_mut(&client) {
                        entry.floor = stored.floor;
                    }
                }
                Some(request_id) => {
                    let remembered: RememberedResult = postcard::from_bytes(&value).map_err(decode_err)?;
                    found.push((remembered.log_index, remembered.at_ms, client, request_id));
                }
            }
        }
        found.sort_by_key(|(log_index, ..)| *log_index);
        for (log_index, at_ms, client, request_id) in found {
            index.insert_result(client, request_id, log_index, at_ms);
        }
        Ok(index)
    }

    /// What the table knows of request `request_id` of `client`.
    pub fn seen(&self, client: &ClientKey, request_id: u64) -> Seen {
        match self.clients.get(client) {
            Some(entry) if entry.results.contains_key(&request_id) => Seen::Remembered,
            Some(entry) if request_id < entry.floor => Seen::Retired { floor: entry.floor },
            _ => Seen::New,
        }
    }

    /// Notes a write of `client` admitted at expiry time `now_ms`: raises its
    /// floor to `first_incomplete` (the client has seen every id below it
    /// complete) and forgets the results below the floor.
    pub fn note_write(
        &mut self,
        client: &ClientKey,
        first_incomplete: u64,
        now_ms: i64,
        batch: &mut WriteBatch,
        sm: &ColumnFamily,
    ) {
        let client = self.intern(client.clone());
        self.set_activity(&client, now_ms);
        let Some(entry) = self.clients.get_mut(&client) else {
            unreachable!("interned just now");
        };
        if first_incomplete > entry.floor {
            entry.floor = first_incomplete;
            let kept = entry.results.split_off(&first_incomplete);
            let dropped = std::mem::replace(&mut entry.results, kept);
            for request_id in dropped.keys() {
                batch.delete_cf(
                    sm,
                    idempotency_result_key(&client.tenant, &client.client_id, *request_id),
                );
            }
            self.results -= dropped.len();
        }
        self.store_floor(&client, batch, sm);
    }

    /// Remembers the result of a newly applied write (after `note_write`),
    /// then forgets whatever falls out of the bounds at expiry time `result.at_ms`.
    pub fn remember(
        &mut self,
        client: &ClientKey,
        request_id: u64,
        result: &RememberedResult,
        batch: &mut WriteBatch,
        sm: &ColumnFamily,
    ) -> std::io::Result<()> {
        let client = self.intern(client.clone());
        debug_assert!(
            self.seen(&client, request_id) == Seen::New,
            "only a new write is remembered"
        );
        batch.put_cf(
            sm,
            idempotency_result_key(&client.tenant, &client.client_id, request_id),
            postcard::to_allocvec(result).map_err(decode_err)?,
        );
        self.insert_result(client.clone(), request_id, result.log_index, result.at_ms);
        let over = self.clients.get(&client).map_or(0, |e| e.results.len());
        for _ in MAX_RESULTS_PER_CLIENT..over {
            let oldest = self.clients.get(&client).and_then(|e| e.results.keys().next().copied());
            if let Some(oldest) = oldest {
                self.retire(&client, oldest, batch, sm);
            }
        }
        self.expire(result.at_ms, batch, sm);
        Ok(())
    }

    /// Forgets every client of `tenant` (the tenant was deleted).
    pub fn forget_tenant(&mut self, tenant: &str, batch: &mut WriteBatch, sm: &ColumnFamily) {
        let prefix = idempotency_tenant_prefix(tenant);
        if let Some(end) = prefix_end(&prefix) {
            batch.delete_range_cf(sm, &prefix, &end);
        }
        let gone: Vec<Arc<ClientKey>> = self.clients.keys().filter(|c| c.tenant == tenant).cloned().collect();
        for client in gone {
            if let Some(entry) = self.clients.remove(&client) {
                self.results -= entry.results.len();
                self.by_activity.remove(&(entry.last_active_ms, client));
            }
        }
    }

    /// Remembered results in all.
    pub fn result_count(&self) -> usize {
        self.results
    }

    /// Clients whose floor is kept.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    fn intern(&mut self, client: ClientKey) -> Arc<ClientKey> {
        if let Some((existing, _)) = self.clients.get_key_value(&client) {
            return existing.clone();
        }
        let client = Arc::new(client);
        self.clients.insert(
            client.clone(),
            ClientEntry {
                floor: 0,
                last_active_ms: i64::MIN,
                results: BTreeMap::new(),
            },
        );
        self.by_activity.insert((i64::MIN, client.clone()));
        client
    }

    fn set_activity(&mut self, client: &Arc<ClientKey>, now_ms: i64) {
        if let Some(entry) = self.clients.get_mut(client)
            && now_ms > entry.last_active_ms
        {
            self.by_activity.remove(&(entry.last_active_ms, client.clone()));
            entry.last_active_ms = now_ms;
            self.by_activity.insert((now_ms, client.clone()));
        }
    }

    fn insert_result(&mut self, client: Arc<ClientKey>, request_id: u64, log_index: u64, at_ms: i64) {
        if let Some(entry) = self.clients.get_mut(&client)
            && entry.results.insert(request_id, log_index).is_none()
        {
            self.results += 1;
            self.by_age.push_back((at_ms, log_index, client, request_id));
        }
    }

    /// Forgets one result and raises its client's floor past it, so the
    /// write can never apply again.
    fn retire(&mut self, client: &Arc<ClientKey>, request_id: u64, batch: &mut WriteBatch, sm: &ColumnFamily) {
        let Some(entry) = self.clients.get_mut(client) else {
            return;
        };
        if entry.results.remove(&request_id).is_some() {
            self.results -= 1;
            batch.delete_cf(
                sm,
                idempotency_result_key(&client.tenant, &client.client_id, request_id),
            );
        }
        entry.floor = entry.floor.max(request_id.saturating_add(1));
        self.store_floor(client, batch, sm);
    }

    fn store_floor(&self, client: &ClientKey, batch: &mut WriteBatch, sm: &ColumnFamily) {
        if let Some(entry) = self.clients.get(client) {
            let stored = StoredFloor {
                floor: entry.floor,
                last_active_ms: entry.last_active_ms,
            };
            let bytes = postcard::to_allocvec(&stored).expect("a floor always encodes");
            batch.put_cf(sm, idempotency_floor_key(&client.tenant, &client.client_id), bytes);
        }
    }

    /// Forgets results past their time or beyond the total bound, then
    /// clients idle too long or beyond their bound.
    fn expire(&mut self, now_ms: i64, batch: &mut WriteBatch, sm: &ColumnFamily) {
        while let Some((at_ms, log_index, client, request_id)) = self.by_age.front().cloned() {
            let live = self
                .clients
                .get(&client)
                .is_some_and(|e| e.results.get(&request_id) == Some(&log_index));
            if !live {
                self.by_age.pop_front();
                continue;
            }
            let too_old = at_ms.saturating_add(RESULT_TTL_MS) < now_ms;
            if !too_old && self.results <= MAX_RESULTS_TOTAL {
                break;
            }
            self.by_age.pop_front();
            self.retire(&client, request_id, batch, sm);
        }
        while let Some((last_active_ms, client)) = self.by_activity.first().cloned() {
            let idle_too_long = last_active_ms.saturating_add(CLIENT_IDLE_TTL_MS) < now_ms;
            if !idle_too_long && self.clients.len() <= MAX_TRACKED_CLIENTS {
                break;
            }
            self.by_activity.pop_first();
            if let Some(entry) = self.clients.remove(&client) {
                for request_id in entry.results.keys() {
                    batch.delete_cf(
                        sm,
                        idempotency_result_key(&client.tenant, &client.client_id, *request_id),
                    );
                }
                self.results -= entry.results.len();
            }
            batch.delete_cf(sm, idempotency_floor_key(&client.tenant, &client.client_id));
        }
    }
}

#[cfg(test)]
mod tests {
    use rocksdb::{ColumnFamilyDescriptor, DB, Options};

    use super::*;

    struct Table {
        _dir: tempfile::TempDir,
        db: DB,
        index: IdempotencyIndex,
        next_log_index: u64,
    }

    impl Table {
        fn new() -> Self {
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
            Self {
                _dir: dir,
                db,
                index: IdempotencyIndex::default(),
                next_log_index: 1,
            }
        }

        /// Applies one write as the state machine does; returns what the table said first.
        fn write(&mut self, client: &ClientKey, request_id: u64, first_incomplete: u64, now_ms: i64) -> Seen {
            let sm = self.db.cf_handle("sm").unwrap();
            let mut batch = WriteBatch::default();
            self.index.note_write(client, first_incomplete, now_ms, &mut batch, sm);
            let seen = self.index.seen(client, request_id);
            if seen == Seen::New {
                let result = RememberedResult {
                    log_index: self.next_log_index,
                    at_ms: now_ms,
                    fingerprint: 0,
                    response: CommandResponse::Noop,
                };
                self.index
                    .remember(client, request_id, &result, &mut batch, sm)
                    .unwrap();
            }
            self.next_log_index += 1;
            self.db.write(batch).unwrap();
            seen
        }

        fn reloaded(&self) -> IdempotencyIndex {
            IdempotencyIndex::load(&self.db, self.db.cf_handle("sm").unwrap()).unwrap()
        }
    }

    fn client(tenant: &str, id: &str) -> ClientKey {
        ClientKey {
            tenant: tenant.into(),
            client_id: id.into(),
        }
    }

    #[test]
    fn the_same_write_id_under_two_tenants_is_two_writes() {
        let mut table = Table::new();
        let acme = client("acme", "shared-worker-1");
        let globex = client("globex", "shared-worker-1");
        assert_eq!(table.write(&acme, 7, 0, 1_000), Seen::New);
        assert_eq!(
            table.write(&globex, 7, 0, 1_000),
            Seen::New,
            "acme's id answers nothing for globex"
        );
        assert_eq!(table.write(&acme, 7, 0, 1_000), Seen::Remembered);
        // A floor raised by one tenant's client retires nothing of the other's.
        assert_eq!(table.write(&acme, 9, 9, 1_000), Seen::New);
        assert_eq!(table.index.seen(&acme, 8), Seen::Retired { floor: 9 });
        assert_eq!(table.index.seen(&globex, 8), Seen::New);
    }

    #[test]
    fn out_of_order_ids_in_flight_all_apply_once() {
        let mut table = Table::new();
        let c = client("acme", "c");
        // Sent 1, 2, 3 concurrently; they reach the log as 3, 1, 2 with first_incomplete 1.
        for request_id in [3, 1, 2] {
            assert_eq!(table.write(&c, request_id, 1, 1_000), Seen::New, "request {request_id}");
        }
        for request_id in [3, 1, 2] {
            assert_eq!(
                table.write(&c, request_id, 1, 1_000),
                Seen::Remembered,
                "retry of {request_id}"
            );
        }
        // Without a mark (a client that sends none) the order does not matter either.
        let raw = client("acme", "raw");
        assert_eq!(table.write(&raw, 2, 0, 1_000), Seen::New);
        assert_eq!(table.write(&raw, 1, 0, 1_000), Seen::New);
    }

    #[test]
    fn the_first_incomplete_mark_frees_results_and_retires_ids_below_it() {
        let mut table = Table::new();
        let c = client("acme", "c");
        for request_id in 1..=4 {
            table.write(&c, request_id, 1, 1_000);
        }
        assert_eq!(table.index.result_count(), 4);
        table.write(&c, 5, 4, 1_000);
        assert_eq!(table.index.result_count(), 2, "ids 4 and 5 remain");
        assert_eq!(table.write(&c, 2, 4, 1_000), Seen::Retired { floor: 4 });
        assert_eq!(table.write(&c, 4, 4, 1_000), Seen::Remembered);
        let reloaded = table.reloaded();
        assert_eq!(reloaded.seen(&c, 2), Seen::Retired { floor: 4 });
        assert_eq!(reloaded.seen(&c, 4), Seen::Remembered);
        assert_eq!(reloaded.result_count(), 2);
    }

    #[test]
    fn a_late_retry_after_expiry_is_refused_not_applied_again() {
        let mut table = Table::new();
        let c = client("acme", "raw");
        assert_eq!(table.write(&c, 5, 0, 1_000), Seen::New);
        // Another client's write moves expiry time past the result's life.
        table.write(&client("acme", "other"), 1, 0, 1_000 + RESULT_TTL_MS + 1);
        assert_eq!(table.index.seen(&c, 5), Seen::Retired { floor: 6 });
        assert_eq!(
            table.write(&c, 5, 0, 1_000 + RESULT_TTL_MS + 2),
            Seen::Retired { floor: 6 }
        );
        assert_eq!(table.reloaded().seen(&c, 5), Seen::Retired { floor: 6 });
        // A higher id of the same client is still a new write.
        assert_eq!(table.write(&c, 6, 0, 1_000 + RESULT_TTL_MS + 2), Seen::New);
    }

    #[test]
    fn a_floor_outlives_its_results_until_the_client_is_idle_long() {
        let mut table = Table::new();
        let c = client("acme", "c");
        table.write(&c, 10, 0, 0);
        table.write(&client("acme", "tick"), 1, 0, RESULT_TTL_MS + 1);
        assert_eq!(table.index.seen(&c, 10), Seen::Retired { floor: 11 });
        assert_eq!(table.index.client_count(), 2);
        table.write(&client("acme", "tick"), 2, 0, CLIENT_IDLE_TTL_MS + 1);
        assert_eq!(
            table.index.seen(&c, 10),
            Seen::New,
            "an idle client is forgotten at last"
        );
        assert_eq!(table.index.client_count(), 1);
        assert_eq!(table.reloaded().client_count(), 1);
    }

    #[test]
    fn the_per_client_bound_retires_the_oldest_id() {
        let mut table = Table::new();
        let c = client("acme", "c");
        for request_id in 1..=MAX_RESULTS_PER_CLIENT as u64 + 1 {
            table.write(&c, request_id, 0, 1_000);
        }
        assert_eq!(table.index.seen(&c, 1), Seen::Retired { floor: 2 });
        assert_eq!(table.index.seen(&c, 2), Seen::Remembered);
        assert_eq!(table.index.result_count(), MAX_RESULTS_PER_CLIENT);
        assert_eq!(table.index.seen(&client("globex", "c"), 1), Seen::New);
    }

    #[test]
    fn deleting_a_tenant_forgets_its_clients_only() {
        let mut table = Table::new();
        let acme = client("acme", "c");
        let globex = client("globex", "c");
        table.write(&acme, 1, 0, 1_000);
        table.write(&globex, 1, 0, 1_000);
        let sm = table.db.cf_handle("sm").unwrap();
        let mut batch = WriteBatch::default();
        table.index.forget_tenant("acme", &mut batch, sm);
        table.db.write(batch).unwrap();
        assert_eq!(table.index.seen(&acme, 1), Seen::New);
        assert_eq!(table.index.seen(&globex, 1), Seen::Remembered);
        let reloaded = table.reloaded();
        assert_eq!(reloaded.seen(&acme, 1), Seen::New);
        assert_eq!(reloaded.result_count(), 1);
    }

    fn resident_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    /// Memory of the in-memory index at its total bound (about 10 s in a
    /// debug build); `-- --nocapture` prints the figure.
    #[test]
    fn idempotency_memory_at_a_million_results_stays_bounded() {
        let mut table = Table::new();
        let sm = table.db.cf_handle("sm").unwrap();
        let before = resident_bytes();
        // 1,000 SDK-like clients (32 hex digits) with 1,000 results each.
        for request_id in 1..=1_000u64 {
            let mut batch = WriteBatch::default();
            for client in 0..1_000u64 {
                let client = ClientKey {
                    tenant: "tenant-0001".into(),
                    client_id: format!("{client:032x}"),
                };
                table.index.note_write(&client, 0, 1_000, &mut batch, sm);
                let result = RememberedResult {
                    log_index: table.next_log_index,
                    at_ms: 1_000,
                    fingerprint: 0,
                    response: CommandResponse::Noop,
                };
                table.next_log_index += 1;
                table
                    .index
                    .remember(&client, request_id, &result, &mut batch, sm)
                    .unwrap();
            }
            drop(batch);
        }
        assert_eq!(table.index.result_count(), MAX_RESULTS_TOTAL);
        let used = resident_bytes().saturating_sub(before);
        println!(
            "idempotency index: {} results, {} clients, {} MiB resident, {} bytes per result",
            table.index.result_count(),
            table.index.client_count(),
            used >> 20,
            used / MAX_RESULTS_TOTAL as u64
        );
        assert!(used < 256 << 20, "the index at its bound uses {used} bytes");
    }
}
