//! Proof that the restart-inside-lease scenario can fail: with the node's
//! `CampaignInsideLease` test fault on (a node campaigns as soon as it
//! starts), the restarted follower leads beside a cut-off leader that still
//! serves lease reads, and the history checks must find a read no order
//! explains. Runs only with the test faults compiled in:
//! `cargo test -p safekeep-sim --features test-faults --test restart_inside_lease`.

use safekeep_node::test_faults::{TestFault, enable};
use safekeep_sim::{RunConfig, Scenario, Topology, run};

/// Seeds tried; the bug must be caught on every one of them.
const SEEDS: &[u64] = &[1, 2];

#[test]
fn a_campaign_inside_a_lease_is_caught_by_lease_reads() {
    enable(TestFault::CampaignInsideLease);
    for seed in SEEDS {
        let config = RunConfig {
            seed: *seed,
            scenario: Scenario::RestartInsideLease,
            topology: Topology::ThreeByOne,
        };
        let report = run(config).expect("the simulation runs");
        let found = report.violations.join("\n");
        println!("seed {seed} trace: {:?}\nfound:\n{found}", report.trace);
        assert!(
            report.history_check.has_violations(),
            "seed {seed}: a node campaigned inside a lease it granted, yet the history checks found nothing:\n{found}"
        );
    }
}
