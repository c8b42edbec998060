#!/usr/bin/env bash
# Runs every check CI runs: the deploy files checked offline (Terraform,
# systemd, alert rules, dashboard), formatting, lints, and the whole test
# suite (unit tests, openraft's storage conformance suite, multi-node cluster
# tests on loopback with real RocksDB, the CLI against a test server, the
# turmoil simulations, chaos drills on real processes in network namespaces,
# and the KMS key provider against a local emulator).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/check-terraform.sh
scripts/check-observability.sh
# check-observability.sh installed promtool: the metrics test must run
# `promtool check metrics` against live nodes, not skip it.
export SAFEKEEP_REQUIRE_PROMTOOL=1
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The AWS KMS key provider (an optional feature), against a local KMS emulator.
cargo clippy -p safekeep-node --features aws-kms --all-targets -- -D warnings
scripts/check-kms.sh
# The simulation must catch each deliberate bug its scenarios are about: a
# node that acknowledges log appends before syncing them, one that lets a
# member restarted on an emptied disk take part under its old id, and one
# that campaigns inside a lease it granted (one test binary per bug, each
# switching on only its own).
cargo test -p safekeep-sim --features test-faults \
    --test ack_before_sync --test wiped_disk_same_id --test restart_inside_lease
