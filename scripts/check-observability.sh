#!/usr/bin/env bash
# Checks the operations artifacts under deploy/:
# - the Prometheus alert rules are valid (`promtool check rules`) and pass
#   their unit tests (`promtool test rules`);
# - every alert has a severity, a summary, a description, a runbook link to a
#   section of deploy/README.md that exists, and unit tests where it fires
#   and where it stays silent; links inside the runbook resolve;
# - the Grafana dashboard is well-formed, and each of its queries parses with
#   Prometheus's own parser and returns data on a synthetic healthy
#   three-node cluster (a promtool test built here);
# - every metric the rules, their tests and the dashboard use is one the node
#   exports (node/src/metrics_names.rs), so a renamed metric fails here.
#
# Installs what it needs, idempotently and without prompts: Debian's
# `prometheus` package (for promtool) through apt, and a Python virtual
# environment with a PromQL parser and PyYAML from PyPI, cached outside the
# clone. Runs in seconds once those are installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned Python tools, and where they are cached.
readonly PROMQL_PARSER_VERSION="0.11.0"
readonly PYYAML_VERSION="6.0.3"
readonly TOOLS_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/safekeep-tools"
readonly VENV="$TOOLS_DIR/observability-venv"

readonly RULES="deploy/prometheus/safekeep-alerts.yml"
readonly RULE_TESTS="deploy/prometheus/safekeep-alerts.test.yml"
readonly DASHBOARD="deploy/grafana/safekeep.json"
readonly RUNBOOK="deploy/README.md"
readonly METRIC_NAMES="node/src/metrics_names.rs"

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
apt_updated=false
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ "$apt_updated" = false ]; then
    "${sudo_cmd[@]}" apt-get update -qq
    apt_updated=true
  fi
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$@"
}

if ! command -v promtool >/dev/null 2>&1; then
  echo "installing Debian's prometheus package (for promtool)"
  apt_install prometheus
fi
if ! command -v promtool >/dev/null 2>&1; then
  echo "error: promtool is still missing after installing Debian's prometheus package" >&2
  exit 1
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "installing python3 and python3-venv"
  apt_install python3 python3-venv
fi

stamp="promql-parser==$PROMQL_PARSER_VERSION pyyaml==$PYYAML_VERSION $(python3 -c 'import sys; print(sys.version.split()[0])')"
if [ "$(cat "$VENV/stamp" 2>/dev/null || true)" != "$stamp" ]; then
  echo "creating $VENV"
  rm -rf "$VENV"
  mkdir -p "$TOOLS_DIR"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    "promql-parser==$PROMQL_PARSER_VERSION" "PyYAML==$PYYAML_VERSION"
  echo "$stamp" >"$VENV/stamp"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== promtool check rules"
promtool check rules "$RULES"

echo "== promtool test rules"
promtool test rules "$RULE_TESTS"

echo "== metric names, dashboard and runbook links"
"$VENV/bin/python" - "$RULES" "$RULE_TESTS" "$DASHBOARD" "$RUNBOOK" "$METRIC_NAMES" "$work" <<'PY'
"""Cross-checks the rules, their tests and the dashboard against the node's
metric names and the runbook. Writes the dashboard's queries out as rules
(`absent(QUERY)`, one alert each) with a promtool test on synthetic series of
a healthy cluster, so that promtool parses every query and shows it returns
data."""
import json
import re
import sys

import promql_parser
import yaml

rules_path, tests_path, dashboard_path, runbook_path, names_path, work_dir = sys.argv[1:]

# Series that are not the node's own but may be used anyway.
ALLOWED_OTHERS = {
    "up": "Prometheus's own scrape health",
    # Exported by the backup feature once it lands; the alert on it is inert until then.
    "safekeep_backup_last_success_timestamp_seconds": "the backup feature",
}
SEVERITIES = {"critical", "warning"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# What Grafana's interval variables become before parsing.
GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
# What the dashboard's own variables become: they pick the synthetic cluster below.
VARIABLE_VALUES = {"cluster": "prod", "instance": "node-1:7301|node-2:7301|node-3:7301"}

# A healthy synthetic cluster for the dashboard's queries: three nodes, one
# per zone, node 1 leading, some requests failing; a sample a minute for
# SYNTHETIC_MINUTES minutes, queried at the end.
SYNTHETIC_MINUTES = 180
LATENCY_BUCKETS = ["0.001", "0.01", "0.1", "+Inf"]


def synthetic_series():
    n = SYNTHETIC_MINUTES
    series = []

    def add(name, labels, values):
        text = ",".join(f'{k}="{v}"' for k, v in labels.items())
        series.append({"series": f"{name}{{{text}}}", "values": values})

    def histogram(name, labels, per_minute):
        for le, count in zip(LATENCY_BUCKETS, per_minute):
            add(f"{name}_bucket", dict(labels, le=le), f"0+{count}x{n}")
        add(f"{name}_count", labels, f"0+{per_minute[-1]}x{n}")
        add(f"{name}_sum", labels, f"0+{per_minute[-1] * 0.005}x{n}")

    for node, zone in ((1, "a"), (2, "b"), (3, "c")):
        own = {"job": "safekeep", "instance": f"node-{node}:7301"}
        leader = node == 1
        add("up", own, f"1x{n}")
        add("safekeep_node_info", dict(own, cluster="prod", node_id=node, zone=zone), f"1x{n}")
        add("safekeep_raft_term", own, f"4x{n}")
        add("safekeep_raft_is_leader", own, f"{int(leader)}x{n}")
        add("safekeep_raft_leader_changes_total", own, f"1x{n}")
        for index in ("last_log", "committed", "applied"):
            add(f"safekeep_raft_{index}_index", own, f"0+100x{n}")
        add("safekeep_raft_voters", own, f"3x{n}")
        add("safekeep_raft_voters_reachable", own, f"{3 if leader else 0}x{n}")
        if leader:
            for peer in (2, 3):
                add("safekeep_raft_follower_lag_entries", dict(own, peer=peer), f"0x{n}")
            histogram("safekeep_raft_commit_seconds", own, [10, 80, 99, 100])
        histogram("safekeep_raft_apply_seconds", own, [50, 90, 100, 100])
        for method, code in (("Put", "OK"), ("Get", "OK"), ("Get", "NotFound"), ("Put", "Unavailable")):
            histogram("safekeep_request_duration_seconds", dict(own, method=method, code=code), [20, 90, 99, 100])
        for listener in ("client", "peer"):
            add("safekeep_tls_handshake_failures_total", dict(own, listener=listener), f"0+1x{n}")
        add("safekeep_tls_reloads_total", own, f"0x60 1x{n - 60}")
        add("safekeep_tls_reload_failures_total", own, f"0x{n}")
        add("safekeep_tls_cert_not_after_seconds", own, f"7776000x{n}")
        add("safekeep_data_dir_total_bytes", own, f"100000000000x{n}")
        add("safekeep_data_dir_free_bytes", own, f"60000000000-1000000x{n}")
        add("safekeep_backup_last_success_timestamp_seconds", own, f"0+60x{n}")
    return series

errors = []


def fail(message):
    errors.append(message)


def exported_names(path):
    """Series names the node exports: each constant's name, a histogram's with its suffixes."""
    names = set()
    doc = ""
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line.startswith("///"):
            doc = line
            continue
        match = re.match(r'pub const \w+: &str = "([a-zA-Z_:][a-zA-Z0-9_:]*)";', line)
        if match:
            name = match.group(1)
            if "(histogram" in doc:
                names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
            else:
                names.add(name)
        elif not line.startswith("pub const"):
            doc = ""
    return names


def selectors(expr):
    """Every vector selector in a PromQL expression."""
    found = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def check_names(expr, where, allowed):
    try:
        found = selectors(expr)
    except Exception as e:  # the parser raises ValueError and its own errors
        fail(f"{where}: does not parse: {e}: {expr}")
        return []
    names = []
    for selector in found:
        if not selector.name:
            fail(f"{where}: selects series without naming a metric: {expr}")
        elif selector.name not in allowed:
            fail(f"{where}: uses {selector.name}, which the node does not export ({names_path})")
        else:
            names.append(selector.name)
    return names


def github_anchor(heading):
    anchor = heading.strip().lower()
    anchor = re.sub(r"[^\w\- ]", "", anchor)
    return anchor.replace(" ", "-")


exported = exported_names(names_path)
if len(exported) < 10:
    fail(f"found only {len(exported)} metric names in {names_path}: has its format changed?")
allowed = exported | set(ALLOWED_OTHERS)
used = set()

anchors = set()
runbook = open(runbook_path, encoding="utf-8").read()
for match in re.finditer(r"^#{1,6} (.+)$", runbook, re.MULTILINE):
    anchors.add(github_anchor(match.group(1)))
for link in re.findall(r"\]\(#([^)]+)\)", runbook):
    if link not in anchors:
        fail(f"{runbook_path}: link to #{link}, which is no section of it")

# --- alert rules
rules = yaml.safe_load(open(rules_path, encoding="utf-8"))
alerts = []
for group in rules["groups"]:
    for rule in group["rules"]:
        name = rule.get("alert") or rule.get("record")
        where = f"{rules_path}: {name}"
        used.update(check_names(rule["expr"], where, allowed))
        if "alert" not in rule:
            continue
        alerts.append(name)
        severity = rule.get("labels", {}).get("severity")
        if severity not in SEVERITIES:
            fail(f"{where}: severity {severity!r} is not one of {sorted(SEVERITIES)}")
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not str(annotations.get(key, "")).strip():
                fail(f"{where}: no {key} annotation")
        url = annotations.get("runbook_url", "")
        expected = f"{runbook_path}#{name.lower()}"
        if url != expected:
            fail(f"{where}: runbook_url is {url!r}, expected {expected!r}")
        elif name.lower() not in anchors:
            fail(f"{where}: {runbook_path} has no section {name!r} for the runbook link")
if len(alerts) != len(set(alerts)):
    fail(f"{rules_path}: an alert name appears twice")

# --- their unit tests: each alert fires somewhere and stays silent somewhere
tests = yaml.safe_load(open(tests_path, encoding="utf-8"))
fires, silent = set(), set()
for test in tests["tests"]:
    where = f"{tests_path}: {test.get('name', 'unnamed test')}"
    for series in test.get("input_series", []):
        used.update(check_names(series["series"], where, allowed))
    for case in test.get("alert_rule_test", []):
        (fires if case.get("exp_alerts") else silent).add(case["alertname"])
for name in alerts:
    if name not in fires:
        fail(f"{tests_path}: no test shows {name} firing")
    if name not in silent:
        fail(f"{tests_path}: no test shows {name} silent on healthy series")
for name in (fires | silent) - set(alerts):
    fail(f"{tests_path}: tests {name}, which is not an alert in {rules_path}")

# --- the dashboard
dashboard = json.load(open(dashboard_path, encoding="utf-8"))
for key in ("description", "title", "uid", "schemaVersion", "panels", "templating"):
    if key not in dashboard:
        fail(f"{dashboard_path}: no {key!r}")
variables = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
if "datasource" not in variables:
    fail(f"{dashboard_path}: no datasource variable, so it would be tied to one Grafana's data source")


def grafana_to_promql(expr):
    for variable, value in GRAFANA_INTERVALS.items():
        expr = expr.replace(variable, value)
    for variable in re.findall(r"\$\{?(\w+)\}?", expr):
        if variable not in variables:
            fail(f"{dashboard_path}: uses ${variable}, which is not a dashboard variable")
        elif variable not in VARIABLE_VALUES:
            fail(f"{dashboard_path}: no value to check queries with for ${variable}: add it to VARIABLE_VALUES")
    # The dashboard's variables only stand in label values, inside quotes.
    return re.sub(r"\$\{?(\w+)\}?", lambda m: VARIABLE_VALUES.get(m.group(1), "x"), expr)


for variable in dashboard.get("templating", {}).get("list", []):
    query = variable.get("query")
    if isinstance(query, dict):
        query = query.get("query", "")
    match = re.fullmatch(r"label_values\((.+),\s*\w+\)", str(query or "").strip())
    if variable.get("type") == "query":
        if not match:
            fail(f"{dashboard_path}: variable {variable['name']}: expected label_values(SELECTOR, LABEL)")
        else:
            used.update(check_names(grafana_to_promql(match.group(1)), f"variable {variable['name']}", allowed))

queries = []
ids = set()
for panel in dashboard.get("panels", []):
    where = f"{dashboard_path}: panel {panel.get('id')} {panel.get('title')!r}"
    if panel.get("id") in ids:
        fail(f"{where}: panel id used twice")
    ids.add(panel.get("id"))
    if not {"h", "w", "x", "y"} <= set(panel.get("gridPos", {})):
        fail(f"{where}: no complete gridPos")
    if panel.get("type") == "row":
        continue
    if panel.get("datasource", {}).get("uid") != "${datasource}":
        fail(f"{where}: data source is not ${{datasource}}")
    if not panel.get("description"):
        fail(f"{where}: no description")
    targets = panel.get("targets", [])
    if not targets:
        fail(f"{where}: no queries")
    for target in targets:
        expr = target.get("expr", "")
        if not expr.strip():
            fail(f"{where}: query {target.get('refId')} is empty")
            continue
        promql = grafana_to_promql(expr)
        used.update(check_names(promql, where, allowed))
        queries.append((f"DashboardPanel{panel['id']}Query{target['refId']}", panel.get("title", ""), promql))

# promtool parses each query (as a rule) and shows it returns data on the synthetic cluster.
synthetic = synthetic_series()
for series in synthetic:
    used.update(check_names(series["series"], "synthetic cluster", allowed))
with open(f"{work_dir}/dashboard-rules.yml", "w", encoding="utf-8") as out:
    rules_out = [{"alert": name, "expr": f"absent(\n{promql}\n)", "labels": {"panel": title}}
                 for name, title, promql in queries]
    yaml.safe_dump({"groups": [{"name": "dashboard-queries-return-data", "rules": rules_out}]}, out)
with open(f"{work_dir}/dashboard-rules.test.yml", "w", encoding="utf-8") as out:
    cases = [{"eval_time": f"{SYNTHETIC_MINUTES}m", "alertname": name, "exp_alerts": []} for name, _, _ in queries]
    test = {"name": "every dashboard query returns data on a healthy cluster", "interval": "1m",
            "input_series": synthetic, "alert_rule_test": cases}
    yaml.safe_dump({"rule_files": ["dashboard-rules.yml"], "evaluation_interval": "1m", "tests": [test]}, out)

for message in errors:
    print(f"error: {message}", file=sys.stderr)
if errors:
    sys.exit(1)
print(f"{len(alerts)} alerts, {len(tests['tests'])} rule tests, {len(queries)} dashboard queries; "
      f"{len(used)} metric names used, all exported by the node or allowed: {', '.join(sorted(ALLOWED_OTHERS))}")
PY

echo "== dashboard queries: promtool parses each, and each returns data on a healthy cluster"
promtool check rules "$work/dashboard-rules.yml"
promtool test rules "$work/dashboard-rules.test.yml"

echo "observability checks passed"
