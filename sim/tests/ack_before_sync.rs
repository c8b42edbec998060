//! Proof that the unsynced-write-loss scenario can fail: with the node's
//! `AckBeforeSync` test fault on (log appends acknowledged as flushed but
//! never synced), a cluster-wide power loss must lose acknowledged writes and
//! the run must say so. Runs only with the test faults compiled in:
//! `cargo test -p safekeep-sim --features test-faults --test ack_before_sync`.

use safekeep_node::test_faults::{TestFault, enable};
use safekeep_sim::{RunConfig, Scenario, Topology, run};

/// Seeds tried; the bug must be caught on every one of them.
const SEEDS: &[u64] = &[1, 2];

#[test]
fn acknowledging_before_a_sync_is_caught_by_a_power_loss() {
    enable(TestFault::AckBeforeSync);
    for seed in SEEDS {
        let config = RunConfig {
            seed: *seed,
            scenario: Scenario::UnsyncedWriteLoss,
            topology: Topology::ThreeByOne,
        };
        let report = run(config).expect("the simulation runs");
        assert!(
            report.operations > 100,
            "the workload ran: {} operations",
            report.operations
        );
        let found = report.violations.join("\n");
        assert!(
            !report.is_ok(),
            "seed {seed}: acknowledged-but-unsynced writes were dropped, yet the run found nothing"
        );
        // The damage must show in what clients saw (an acknowledged write
        // lost, or a read no order explains), not only in an inconclusive search.
        assert!(
            report.history_check.has_violations(),
            "seed {seed}: the history checks should name the damage, found:\n{found}"
        );
        println!("seed {seed} caught:\n{found}");
    }
}
