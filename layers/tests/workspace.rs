//! The layering of safekeep's own crates: each crate's layers, lowest first,
//! as the README's Architecture section describes them. A new upward or
//! sideways import, a new cycle, or a new file with no layer fails here.

use std::path::{Path, PathBuf};

use safekeep_layers::{Layers, ModuleTree, check};

fn src(crate_dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("src")
}

fn assert_layered(crate_dir: &str, root: &str, layers: &Layers) {
    let tree = ModuleTree::load(&src(crate_dir), root).unwrap_or_else(|e| panic!("{crate_dir}/src/{root}: {e}"));
    let violations = check(&tree, layers);
    let report: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(
        violations.is_empty(),
        "{crate_dir}/src/{root} breaks its layers:\n  {}",
        report.join("\n  ")
    );
}

#[test]
fn the_node_imports_only_downward() {
    let layers = Layers::new(&[
        &[
            "model/",
            "identity.rs",
            "metrics_names.rs",
            "test_faults.rs",
            "logging.rs",
        ],
        &["config.rs", "transport.rs"],
        &["storage/", "tls/"],
        &["environment.rs"],
        &["crypto/"],
        &["raft/"],
        &["backup/", "retention.rs"],
        &["status.rs"],
        &["auth/"],
        &["records/", "admin/"],
        &["http.rs"],
        &["serve.rs"],
        &["node.rs"],
        &["local_cluster/", "lib.rs"],
    ]);
    assert_layered("node", "lib.rs", &layers);
    assert_layered("node", "main.rs", &Layers::new(&[&["main.rs"]]));
}

#[test]
fn the_sdk_and_the_cli_import_only_downward() {
    let sdk = Layers::new(&[
        &["types.rs", "backoff.rs", "write_id.rs"],
        &["error.rs"],
        &["tls.rs"],
        &["config.rs"],
        &["endpoints.rs"],
        &["retry.rs"],
        &["client.rs"],
        &["admin.rs", "export.rs"],
        &["lib.rs"],
    ]);
    assert_layered("client", "lib.rs", &sdk);
    let cli = Layers::new(&[
        &["cli/args.rs"],
        &["cli/mod.rs"],
        &["cli/output.rs", "cli/credentials.rs"],
        &["cli/context.rs"],
        &["cli/export.rs", "cli/import.rs", "cli/docs.rs"],
        &["cli/admin.rs"],
        &["cli/run.rs"],
        &["main.rs"],
    ]);
    assert_layered("client", "main.rs", &cli);
}

#[test]
fn the_simulation_imports_only_downward() {
    let sim = Layers::new(&[
        &["topology.rs", "net.rs", "progress.rs"],
        &["scenario.rs"],
        &["cluster.rs"],
        &["invariants.rs", "workload.rs"],
        &["raw_tenants.rs"],
        &["run.rs"],
        &["lib.rs"],
    ]);
    assert_layered("sim", "lib.rs", &sim);
    assert_layered("sim", "main.rs", &Layers::new(&[&["main.rs"]]));
}

#[test]
fn the_chaos_drills_import_only_downward() {
    let chaos = Layers::new(&[
        &["netns.rs"],
        &["disks.rs"],
        &["cluster.rs"],
        &["faults.rs", "workload.rs", "monitor.rs", "converge.rs", "existing.rs"],
        &["target.rs"],
        &["measure.rs"],
        &["backups.rs"],
        &["report.rs"],
        &["drill.rs"],
        &["lib.rs"],
    ]);
    assert_layered("chaos", "lib.rs", &chaos);
    assert_layered("chaos", "main.rs", &Layers::new(&[&["main.rs"]]));
}

#[test]
fn the_benchmarks_import_only_downward() {
    let bench = Layers::new(&[
        &["error.rs", "measure.rs", "workloads.rs"],
        &["settings.rs", "procs.rs"],
        &["targets/"],
        &["load.rs"],
        &["report.rs"],
        &["plot.rs"],
        &["operations/"],
        &["session.rs"],
        &["lib.rs"],
    ]);
    assert_layered("bench", "lib.rs", &bench);
    assert_layered("bench", "main.rs", &Layers::new(&[&["main.rs"]]));
}
