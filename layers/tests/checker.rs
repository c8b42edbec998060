//! The checker against small crates written for the purpose: it must find
//! an upward import, a sideways one, a cycle and a file with no layer, see
//! through a folder's re-exports, and pass a crate that keeps its layers.

use std::path::Path;

use safekeep_layers::{Layers, ModuleTree, Violation, check};

/// Writes `files` (path, text) under a fresh folder and checks them.
fn violations(files: &[(&str, &str)], layers: &Layers) -> Vec<Violation> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("the folder is made");
        std::fs::write(&path, text).expect("the file is written");
    }
    let tree = ModuleTree::load(Path::new(dir.path()), "lib.rs").expect("the fixture loads");
    check(&tree, layers)
}

fn layers() -> Layers {
    Layers::new(&[&["model/"], &["storage/", "tls/"], &["service.rs"], &["lib.rs"]])
}

const ROOT: &str = "pub mod model;\npub mod storage;\npub mod tls;\npub mod service;\n";

#[test]
fn a_crate_that_imports_only_downward_passes() {
    let found = violations(
        &[
            ("lib.rs", ROOT),
            ("model/mod.rs", "pub mod limits;\npub use limits::MAX;\n"),
            ("model/limits.rs", "pub const MAX: usize = 1;\n"),
            ("storage/mod.rs", "mod db;\npub use db::Store;\n"),
            (
                "storage/db.rs",
                "use crate::model::MAX;\npub struct Store([u8; MAX]);\n",
            ),
            (
                "tls/mod.rs",
                "pub fn handshake() -> usize { crate::model::limits::MAX }\n",
            ),
            (
                "service.rs",
                "use crate::storage::Store;\npub fn serve(_: Store) { crate::tls::handshake(); }\n",
            ),
        ],
        &layers(),
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn an_upward_import_through_a_facade_is_found_at_the_file_that_defines_it() {
    let found = violations(
        &[
            ("lib.rs", ROOT),
            ("model/mod.rs", "pub fn check() -> bool { crate::service::ready() }\n"),
            ("storage/mod.rs", ""),
            ("tls/mod.rs", ""),
            ("service.rs", "pub fn ready() -> bool { true }\n"),
        ],
        &layers(),
    );
    assert_eq!(
        found,
        vec![Violation::Upward {
            from: "model/mod.rs".into(),
            to: "service.rs".into(),
            path: "crate::service::ready".into(),
        }]
    );
}

#[test]
fn a_sideways_import_between_sibling_folders_is_found() {
    let found = violations(
        &[
            ("lib.rs", ROOT),
            ("model/mod.rs", ""),
            ("storage/mod.rs", "mod db;\n"),
            ("storage/db.rs", "use crate::tls::Cert;\npub fn open(_: Cert) {}\n"),
            ("tls/mod.rs", "mod cert;\npub use cert::Cert;\n"),
            ("tls/cert.rs", "pub struct Cert;\n"),
            ("service.rs", ""),
        ],
        &layers(),
    );
    assert!(
        matches!(found.as_slice(), [Violation::Sideways { from, to, .. }] if from == "storage/db.rs" && to == "tls/cert.rs"),
        "{found:?}"
    );
}

/// Checks a crate whose `storage/` folder holds `db.rs` and `log.rs`.
fn storage_violations(storage_mod: &str, db: &str, log: &str) -> Vec<Violation> {
    violations(
        &[
            ("lib.rs", ROOT),
            ("model/mod.rs", ""),
            ("storage/mod.rs", storage_mod),
            ("storage/db.rs", db),
            ("storage/log.rs", log),
            ("tls/mod.rs", ""),
            ("service.rs", ""),
        ],
        &layers(),
    )
}

fn db_and_log_in_a_cycle() -> Vec<Violation> {
    vec![Violation::Cycle {
        files: vec!["storage/db.rs".into(), "storage/log.rs".into()],
    }]
}

#[test]
fn files_that_import_one_another_are_a_cycle_even_within_one_folder() {
    let found = storage_violations(
        "mod db;\nmod log;\n",
        "use super::log::Log;\npub struct Db(pub Log);\npub fn cf() {}\n",
        "pub struct Log;\nimpl Log { pub fn open() { super::db::cf() } }\n",
    );
    assert_eq!(found, db_and_log_in_a_cycle());
}

#[test]
fn a_file_outside_every_layer_is_named_and_test_code_is_not_checked() {
    let found = violations(
        &[
            ("lib.rs", "pub mod model;\npub mod extra;\npub mod service;\n"),
            (
                "model/mod.rs",
                "#[cfg(test)]\nmod tests {\n    use crate::service::helper;\n}\n",
            ),
            ("extra.rs", ""),
            ("service.rs", "pub fn helper() {}\n"),
        ],
        &layers(),
    );
    assert_eq!(
        found,
        vec![Violation::Unplaced {
            file: "extra.rs".into()
        }]
    );
}

#[test]
fn imports_through_super_an_alias_an_earlier_import_or_a_function_are_all_seen() {
    let upward_from_model = |model: &str| {
        let found = violations(
            &[
                ("lib.rs", ROOT),
                ("model/mod.rs", "mod limits;\n"),
                ("model/limits.rs", model),
                ("storage/mod.rs", ""),
                ("tls/mod.rs", ""),
                ("service.rs", "pub struct Service;\npub fn ready() -> bool { true }\n"),
            ],
            &layers(),
        );
        found
            .iter()
            .any(|v| matches!(v, Violation::Upward { from, to, .. } if from == "model/limits.rs" && to == "service.rs"))
    };
    for (how, text) in [
        ("super", "pub fn f() -> bool { super::super::service::ready() }\n"),
        (
            "an alias",
            "use crate::service as s;\npub fn f() -> bool { s::ready() }\n",
        ),
        (
            "an earlier import",
            "use crate::service;\nuse service::Service;\npub fn f(_: Service) {}\n",
        ),
        (
            "a function's own use",
            "pub fn f() -> bool { use crate::service::ready; ready() }\n",
        ),
        ("a re-export", "pub use crate::service::Service;\n"),
        (
            "code behind a feature",
            "#[cfg(feature = \"test-faults\")]\npub fn f() -> bool { crate::service::ready() }\n",
        ),
    ] {
        assert!(upward_from_model(text), "an upward import through {how} is missed");
    }
    assert!(
        !upward_from_model("pub fn f() -> bool { true }\n"),
        "a clean file is flagged"
    );
}

#[test]
fn a_glob_re_export_is_followed_to_the_file_that_defines_the_item() {
    // `crate::storage::Log` is log.rs's, not the facade's: db.rs and log.rs
    // import one another.
    let found = storage_violations(
        "mod db;\nmod log;\npub use log::*;\n",
        "pub fn sync() {}\npub fn append(_: crate::storage::Log) {}\n",
        "pub struct Log;\npub fn flush() { super::db::sync() }\n",
    );
    assert_eq!(found, db_and_log_in_a_cycle());
}
