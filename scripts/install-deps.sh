#!/usr/bin/env bash
# Installs what building and testing safekeep needs on a Debian machine:
# clang and libclang for RocksDB's bindings, a C++ compiler, the tools
# the chaos drills use, and etcd for the side-by-side benchmarks. Runs as root without prompts; does nothing when
# everything is already there.
set -euo pipefail

need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
# The chaos drills: namespaces and links (iproute2), rules (nftables), and a
# font for the timeline plot's labels.
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
# The benchmarks run etcd beside safekeep (etcd-server), and etcdctl
# (etcd-client) is there to look at the etcd cluster by hand.
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
# The benchmark's etcd client crate compiles etcd's protos with protoc,
# which needs protobuf's own well-known types (libprotobuf-dev) beside it.
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
[ -e /usr/include/google/protobuf/descriptor.proto ] || need+=(libprotobuf-dev)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust from https://rustup.rs" >&2
  exit 1
fi
