//! A large random history that is linearizable by construction must pass
//! within the state bound, and a copy with one corrupted answer must fail.
//!
//! The generator runs clients with overlapping invocation windows against a
//! sequential register per key: every operation takes effect at one instant
//! (inside its window when acknowledged, possibly after its client gave up
//! when its outcome is unknown), and operations are applied in the order of
//! those instants to compute what each one returned. Versions come from one
//! counter with gaps, as Raft log indices shared by all keys would.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safekeep_history::{
    ClientId, History, LostWriteReason, Op, OpId, Operation, Outcome, Recorder, Verdict, Versioned, check_all,
};

const SEED: u64 = 0x5afe_4ee9;
const CLIENTS: u64 = 8;
const OPS_PER_CLIENT: u64 = 250;
const KEYS: usize = 4;
/// The client that reads every key once at the end.
const FINAL_READER: ClientId = ClientId(1_000);
/// Longest time an answered operation takes, in nanoseconds of the fake clock.
const MAX_LATENCY_NS: u64 = 60;
/// Longest time after its invocation an operation of unknown outcome may still take effect.
const MAX_LATE_EFFECT_NS: u64 = 200;

/// What happens to one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Took effect and was answered.
    Acked,
    /// Certainly did not take effect.
    Failed,
    /// The client gave up at its return time; `applied` says whether it took effect anyway.
    TimedOut { applied: bool },
    /// Never completed; `applied` says whether it took effect.
    Pending { applied: bool },
}

impl Fate {
    fn applies(self) -> bool {
        matches!(
            self,
            Fate::Acked | Fate::TimedOut { applied: true } | Fate::Pending { applied: true }
        )
    }
}

struct Planned {
    client: ClientId,
    op: Op,
    invoke_ns: u64,
    effect_ns: u64,
    return_ns: u64,
    fate: Fate,
    outcome: Outcome,
}

fn plan_client_operations(rng: &mut StdRng, client: u64, planned: &mut Vec<Planned>) {
    let mut now = rng.random_range(0..20);
    for i in 0..OPS_PER_CLIENT {
        let invoke_ns = now + rng.random_range(0..10);
        let key = format!("key{}", rng.random_range(0..KEYS));
        let value = format!("c{client}-{i}").into_bytes();
        let op = match rng.random_range(0..100) {
            0..35 => Op::Put { key, value },
            35..50 => Op::PutIf {
                key,
                value,
                expected_version: 0, // chosen when the operation takes effect
            },
            50..60 => Op::Delete { key },
            _ => Op::Get { key },
        };
        let fate = match (op.is_write(), rng.random_range(0..100)) {
            (false, 0..5) => Fate::Failed,
            (false, _) => Fate::Acked,
            (true, 0..78) => Fate::Acked,
            (true, 78..84) => Fate::Failed,
            (true, 84..94) => Fate::TimedOut {
                applied: rng.random_bool(0.5),
            },
            (true, _) => Fate::Pending {
                applied: rng.random_bool(0.5),
            },
        };
        let latency = rng.random_range(1..=MAX_LATENCY_NS);
        let effect_ns = match fate {
            Fate::TimedOut { .. } | Fate::Pending { .. } => invoke_ns + rng.random_range(0..MAX_LATE_EFFECT_NS),
            Fate::Acked | Fate::Failed => invoke_ns + rng.random_range(0..=latency),
        };
        planned.push(Planned {
            client: ClientId(client),
            op,
            invoke_ns,
            effect_ns,
            return_ns: invoke_ns + latency,
            fate,
            outcome: Outcome::Unknown,
        });
        now = invoke_ns + latency;
    }
}

/// Applies `planned` to one sequential register per key in effect order, filling in outcomes.
fn apply_in_effect_order(
    rng: &mut StdRng,
    planned: &mut [Planned],
    registers: &mut BTreeMap<String, Option<Versioned>>,
) {
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&index| (planned[index].effect_ns, index));
    let mut last_version = 0;
    let mut next_version = |rng: &mut StdRng| {
        last_version += rng.random_range(1..4);
        last_version
    };
    for index in order {
        let operation = &mut planned[index];
        let applies = operation.fate.applies();
        let register = registers.entry(operation.op.key().to_owned()).or_default();
        let current_version = register.as_ref().map_or(0, |record| record.version);
        let answer = match &mut operation.op {
            Op::Put { value, .. } if applies => {
                let version = next_version(rng);
                *register = Some(Versioned {
                    value: value.clone(),
                    version,
                });
                Outcome::Written { version }
            }
            Op::PutIf {
                value,
                expected_version,
                ..
            } => {
                *expected_version = match rng.random_range(0..10) {
                    0..6 => current_version,
                    6..8 => 0,
                    _ => current_version + 1,
                };
                if *expected_version != current_version {
                    Outcome::Conflict { current_version }
                } else if applies {
                    let version = next_version(rng);
                    *register = Some(Versioned {
                        value: value.clone(),
                        version,
                    });
                    Outcome::Written { version }
                } else {
                    Outcome::Fail
                }
            }
            Op::Delete { .. } if applies => Outcome::Deleted {
                deleted: register.take().is_some(),
                version: next_version(rng),
            },
            Op::Get { .. } => Outcome::Read {
                record: register.clone(),
            },
            Op::Put { .. } | Op::Delete { .. } => Outcome::Fail,
        };
        operation.outcome = match operation.fate {
            Fate::Acked => answer,
            Fate::Failed => Outcome::Fail,
            Fate::TimedOut { .. } | Fate::Pending { .. } => Outcome::Unknown,
        };
    }
}

/// A linearizable history of about `CLIENTS * OPS_PER_CLIENT` operations plus one final read per key.
fn generate(seed: u64) -> History {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut planned = Vec::new();
    for client in 0..CLIENTS {
        plan_client_operations(&mut rng, client, &mut planned);
    }
    let mut registers = BTreeMap::new();
    apply_in_effect_order(&mut rng, &mut planned, &mut registers);

    let end_ns = planned.iter().map(|p| p.effect_ns.max(p.return_ns)).max().unwrap_or(0) + 10;
    for (index, (key, record)) in registers.into_iter().enumerate() {
        let invoke_ns = end_ns + 2 * index as u64;
        planned.push(Planned {
            client: FINAL_READER,
            op: Op::Get { key },
            invoke_ns,
            effect_ns: invoke_ns,
            return_ns: invoke_ns + 1,
            fate: Fate::Acked,
            outcome: Outcome::Read { record },
        });
    }

    planned.sort_by_key(|p| p.invoke_ns);
    let recorder = Recorder::new();
    let ids: Vec<OpId> = planned
        .iter()
        .map(|p| recorder.invoke(p.client, p.op.clone(), p.invoke_ns).unwrap())
        .collect();
    for (p, id) in planned.into_iter().zip(ids) {
        if !matches!(p.fate, Fate::Pending { .. }) {
            recorder.complete(id, p.outcome, p.return_ns).unwrap();
        }
    }
    recorder.history()
}

/// Makes the last read that can be broken this way (among those `eligible`) return the
/// acknowledged write before the one it saw, whose writer was acknowledged before the
/// read began: a stale read. Returns the corrupted history, the read and the hidden writer.
fn corrupt_with_stale_read(history: &History, eligible: impl Fn(&Operation) -> bool) -> (History, OpId, OpId) {
    let mut operations = history.operations().to_vec();
    let acked_write = |operation: &Operation| match (&operation.op, &operation.outcome) {
        (Op::Put { value, .. } | Op::PutIf { value, .. }, Outcome::Written { version }) => {
            Some((value.clone(), *version))
        }
        _ => None,
    };
    for read in operations.iter().rev().filter(|operation| eligible(operation)) {
        let Outcome::Read { record: Some(seen) } = &read.outcome else {
            continue;
        };
        let same_key = |operation: &&Operation| operation.op.key() == read.op.key();
        let writer = operations.iter().filter(same_key).find(|operation| {
            acked_write(operation) == Some((seen.value.clone(), seen.version))
                && operation.return_ns.is_some_and(|at| at < read.invoke_ns)
        });
        let older = operations
            .iter()
            .filter(same_key)
            .filter_map(acked_write)
            .filter(|(_, version)| *version < seen.version)
            .max_by_key(|(_, version)| *version);
        if let (Some(writer), Some((value, version))) = (writer, older) {
            let (read_id, writer_id) = (read.id, writer.id);
            let read = operations.iter_mut().find(|operation| operation.id == read_id).unwrap();
            read.outcome = Outcome::Read {
                record: Some(Versioned { value, version }),
            };
            return (History::new(operations).unwrap(), read_id, writer_id);
        }
    }
    panic!("the generated history has no read that can be made stale");
}

#[test]
fn large_random_linearizable_history_passes_within_the_state_bound() {
    let history = generate(SEED);
    let count = |wanted: fn(&Outcome) -> bool| history.operations().iter().filter(|o| wanted(&o.outcome)).count();
    // The history exercises what it should: unknown writes, conflicts, deletes, reads.
    assert!(history.len() as u64 >= CLIENTS * OPS_PER_CLIENT);
    assert!(count(|o| *o == Outcome::Unknown) >= 100);
    assert!(count(|o| matches!(o, Outcome::Conflict { .. })) >= 50);
    assert!(count(|o| matches!(o, Outcome::Deleted { deleted: true, .. })) >= 20);
    assert!(count(|o| matches!(o, Outcome::Read { record: Some(_) })) >= 300);

    let report = check_all(&history);
    assert!(report.is_ok(), "{report}");
    for result in &report.linearizability.keys {
        assert_eq!(result.verdict, Verdict::Linearizable);
        assert!(
            result.operations >= 300,
            "{} has only {} operations",
            result.key,
            result.operations
        );
    }
    assert_eq!(report.lost_writes.final_reads, KEYS);
}

#[test]
fn random_history_with_one_stale_read_fails() {
    let history = generate(SEED);
    let (corrupted, read, _) = corrupt_with_stale_read(&history, |operation| operation.client != FINAL_READER);
    let report = check_all(&corrupted);
    assert!(!report.is_ok(), "{report}");
    let key = corrupted.get(read).unwrap().op.key();
    let violations: Vec<_> = report.linearizability.violations().map(|v| v.key.as_str()).collect();
    assert_eq!(violations, vec![key], "{report}");
}

#[test]
fn random_history_whose_final_read_misses_a_write_reports_it_lost() {
    let history = generate(SEED);
    let (corrupted, read, hidden) = corrupt_with_stale_read(&history, |operation| operation.client == FINAL_READER);
    let report = check_all(&corrupted);
    assert!(report.has_violations(), "{report}");
    let key = corrupted.get(read).unwrap().op.key();
    assert!(report.linearizability.violations().any(|v| v.key == key), "{report}");
    let lost = report.lost_writes.lost.iter().find(|w| w.op_id == hidden);
    let lost = lost.unwrap_or_else(|| panic!("{hidden} not reported lost:\n{report}"));
    assert!(matches!(lost.reason, LostWriteReason::FinalReadOlder { final_read, .. } if final_read == read));
}
