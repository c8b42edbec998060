//! Proof that the wiped-disk-same-id scenario can fail: with the node's
//! `IgnoreIncarnation` test fault on (the peer channel does not check
//! incarnations), the member restarted on an emptied data directory takes
//! part under its old id and votes a lagging node in, and the run must say
//! so. Runs only with the test faults compiled in:
//! `cargo test -p safekeep-sim --features test-faults --test wiped_disk_same_id`.

use safekeep_node::test_faults::{TestFault, enable};
use safekeep_sim::{RunConfig, Scenario, Topology, run};

/// Seeds tried; the bug must be caught on every one of them.
const SEEDS: &[u64] = &[1, 2];

#[test]
fn a_wiped_member_under_its_old_id_is_caught() {
    enable(TestFault::IgnoreIncarnation);
    for seed in SEEDS {
        let config = RunConfig {
            seed: *seed,
            scenario: Scenario::WipedDiskSameId,
            topology: Topology::ThreeByOne,
        };
        let report = run(config).expect("the simulation runs");
        let found = report.violations.join("\n");
        println!("seed {seed} trace: {:#?}\nfound:\n{found}", report.trace);
        assert!(
            found.contains("took part under its old id"),
            "seed {seed}: the wiped node was not caught taking part under its old id:\n{found}"
        );
        // The damage must also show in what clients saw: an acknowledged
        // write lost, or a read no order explains.
        assert!(
            report.history_check.has_violations(),
            "seed {seed}: the history checks should name the damage, found:\n{found}"
        );
    }
}
