#!/usr/bin/env bash
# Quick start: builds safekeep and runs a local three-node cluster, one node
# per zone (a, b, c), on loopback until Ctrl-C. Extra arguments go to
# `safekeep-node local-cluster` (see --help), e.g. --dir or --nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build -p safekeep-node -p safekeep-client
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
echo "CLI: ${target_dir}/debug/safekeep"
exec "${target_dir}/debug/safekeep-node" local-cluster "$@"
