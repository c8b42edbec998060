#!/usr/bin/env bash
# Tests the AWS KMS key provider (safekeep-node's `aws-kms` feature) against a
# real KMS API, and backups against a real S3 API: moto's server (which
# speaks both), installed from PyPI into a cached virtual environment and run
# on loopback for the length of the test. Fake credentials
# and no instance metadata lookups: nothing leaves this machine. The server is
# stopped on exit, whatever happens. Idempotent; runs as root without prompts.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.5"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/safekeep-tools/moto"
# Longest wait for the server to accept connections, in tenths of a second.
STARTUP_POLLS=300
# Longest the tests may run, in seconds (they take well under a minute once built).
TEST_TIMEOUT_S=1800

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
apt_install() {
  echo "installing: $*"
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "$@"
}

command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_install python3-venv

if ! "$VENV/bin/python" -c "import sys, moto; sys.exit(moto.__version__ != '$MOTO_VERSION')" >/dev/null 2>&1 \
  || [ ! -x "$VENV/bin/moto_server" ]; then
  echo "installing moto[server]==$MOTO_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp -t safekeep-moto.XXXXXX.log)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
stop_moto() {
  kill "$moto_pid" 2>/dev/null || true
  wait "$moto_pid" 2>/dev/null || true
  rm -f "$log"
}
trap stop_moto EXIT

for ((i = 0; ; i++)); do
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "error: the KMS test server exited at start:" >&2
    cat "$log" >&2
    exit 1
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    break
  fi
  if ((i >= STARTUP_POLLS)); then
    echo "error: the KMS test server did not listen on 127.0.0.1:$port in $((STARTUP_POLLS / 10)) s:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "KMS test server (moto $MOTO_VERSION) on 127.0.0.1:$port"

# Fake credentials for the AWS default chain, no profile files, no instance metadata.
export SAFEKEEP_TEST_KMS_ENDPOINT="http://127.0.0.1:$port"
# The same server program, for a test that starts one of its own and stops it mid-run.
export SAFEKEEP_TEST_KMS_SERVER="$VENV/bin/moto_server"
export AWS_ACCESS_KEY_ID=safekeep-test AWS_SECRET_ACCESS_KEY=safekeep-test AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN \
  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KMS
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"

# The provider's own unit tests (time bounds, typed errors) and the settings, then the provider against KMS.
timeout "$TEST_TIMEOUT_S" cargo test -p safekeep-node --features aws-kms --lib -- crypto:: config::
timeout "$TEST_TIMEOUT_S" cargo test -p safekeep-node --features aws-kms --test kms_provider

# The same server speaks S3: the backup restore drills against an S3 target
# (a restore to a time between two rounds of writes, and the latest state
# after every node process is SIGKILLed).
SAFEKEEP_TEST_S3_ENDPOINT="http://127.0.0.1:$port" timeout "$TEST_TIMEOUT_S" \
  cargo test -p safekeep-node --features aws-kms --test backup --test backup_crash -- --ignored from_s3
