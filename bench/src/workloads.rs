//! The workloads: which operation each worker sends next, and the keys they
//! touch. Both targets run exactly the same sequence of operation kinds and
//! keys; only the client library differs.
//!
//! - `put`: a unique key per operation, so every write is a new record;
//! - `get` and `get-stale`: uniformly random keys of a set written before the run;
//! - `mixed`: 90% linearizable reads of that set, 10% overwrites of it;
//! - `cas`: each worker updates its own key, conditioned on the version it last saw.

use rand::Rng;
use serde::Serialize;

/// Percent of `mixed` operations that are (linearizable) reads.
pub const MIXED_READ_PERCENT: u32 = 90;
/// Prefix of every key the benchmark writes.
const KEY_PREFIX: &str = "bench";

/// One of the benchmark's workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Writes of unique keys.
    Put,
    /// Linearizable reads of existing keys.
    Get,
    /// Reads the answering replica serves on its own (etcd: serializable).
    GetStale,
    /// 90% linearizable reads, 10% overwrites of existing keys.
    Mixed,
    /// Compare-and-set on a version (etcd: a txn comparing the mod revision).
    Cas,
}

impl Workload {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
            Self::GetStale => "get-stale",
            Self::Mixed => "mixed",
            Self::Cas => "cas",
        }
    }

    /// Whether the run needs a set of keys written before it starts.
    pub fn reads_populated_keys(self) -> bool {
        matches!(self, Self::Get | Self::GetStale | Self::Mixed)
    }

    /// The next operation of worker `worker`, its `seq`th, in run `run`;
    /// `key_count` is the size of the populated key set.
    pub fn next_op(self, rng: &mut impl Rng, run: u64, worker: usize, seq: u64, key_count: usize) -> Op {
        match self {
            Self::Put => Op::Put {
                key: unique_key(run, worker, seq),
            },
            Self::Get => Op::Read {
                key: random_key(rng, key_count),
                freshness: Freshness::Linearizable,
            },
            Self::GetStale => Op::Read {
                key: random_key(rng, key_count),
                freshness: Freshness::Stale,
            },
            Self::Mixed if rng.random_range(0..100) < MIXED_READ_PERCENT => Op::Read {
                key: random_key(rng, key_count),
                freshness: Freshness::Linearizable,
            },
            Self::Mixed => Op::Put {
                key: random_key(rng, key_count),
            },
            Self::Cas => Op::CompareAndSet {
                key: cas_key(run, worker),
            },
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Sees every write acknowledged before it began.
    Linearizable,
    /// Whatever the answering replica holds.
    Stale,
}

/// One operation a worker sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// An unconditional write.
    Put { key: String },
    /// A read of a key that must exist.
    Read { key: String, freshness: Freshness },
    /// A write conditioned on the version the worker last saw of its key.
    CompareAndSet { key: String },
}

/// Key `index` of the set written before read workloads.
pub fn populated_key(index: usize) -> String {
    format!("{KEY_PREFIX}/keys/{index:08}")
}

fn random_key(rng: &mut impl Rng, key_count: usize) -> String {
    assert!(key_count > 0, "a read workload needs populated keys");
    populated_key(rng.random_range(0..key_count))
}

/// A key no other operation of any run writes.
fn unique_key(run: u64, worker: usize, seq: u64) -> String {
    format!("{KEY_PREFIX}/put/{run}/{worker}/{seq}")
}

/// The key worker `worker` of run `run` compares and sets.
pub fn cas_key(run: u64, worker: usize) -> String {
    format!("{KEY_PREFIX}/cas/{run}/{worker}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn put_keys_never_repeat_across_workers_seqs_and_runs() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = std::collections::HashSet::new();
        for run in 0..3 {
            for worker in 0..4 {
                for seq in 0..50 {
                    let Op::Put { key } = Workload::Put.next_op(&mut rng, run, worker, seq, 0) else {
                        panic!("put makes puts");
                    };
                    assert!(seen.insert(key));
                }
            }
        }
    }

    #[test]
    fn mixed_is_about_ninety_percent_linearizable_reads_of_the_populated_set() {
        let mut rng = StdRng::seed_from_u64(7);
        let ops: Vec<Op> = (0..10_000)
            .map(|seq| Workload::Mixed.next_op(&mut rng, 0, 0, seq, 100))
            .collect();
        let reads = ops
            .iter()
            .filter(|op| {
                matches!(
                    op,
                    Op::Read {
                        freshness: Freshness::Linearizable,
                        ..
                    }
                )
            })
            .count();
        assert!((8_800..=9_200).contains(&reads), "{reads} reads of 10000");
        let populated: std::collections::HashSet<String> = (0..100).map(populated_key).collect();
        for op in &ops {
            let (Op::Read { key, .. } | Op::Put { key }) = op else {
                panic!("mixed makes reads and puts only: {op:?}");
            };
            assert!(populated.contains(key), "{key} is not in the populated set");
        }
    }

    #[test]
    fn stale_reads_and_cas_use_their_own_kinds() {
        let mut rng = StdRng::seed_from_u64(3);
        let stale = Workload::GetStale.next_op(&mut rng, 0, 0, 0, 10);
        assert!(matches!(
            stale,
            Op::Read {
                freshness: Freshness::Stale,
                ..
            }
        ));
        let cas = Workload::Cas.next_op(&mut rng, 5, 2, 9, 0);
        assert_eq!(cas, Op::CompareAndSet { key: cas_key(5, 2) });
        assert!(Workload::Get.reads_populated_keys() && !Workload::Put.reads_populated_keys());
    }
}
