"""Offline checks of the files the deploy/terraform module installs on nodes.

- deploy/systemd/safekeep-node.service is byte-identical to the module's copy
  (files/safekeep-node.service), so there is one unit;
- the module's systemd units verify with `systemd-analyze verify` (no unknown
  keys or sections, drop-in included) and the node unit's exposure score from
  `systemd-analyze security --offline=yes` stays at or below a limit;
- deploy/node.toml.example and the module's node.toml template are valid TOML
  using only keys the node's configuration (node/src/config.rs) accepts; the
  template may also use the KMS key provider's keys;
- the boot script passes shellcheck.

Usage: check_deploy_files.py REPO_ROOT SHELLCHECK
Exit status 1 on any finding.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

MODULE = Path("deploy/terraform")
UNIT = Path("deploy/systemd/safekeep-node.service")
MODULE_UNIT = MODULE / "files/safekeep-node.service"
AWS_DROP_IN = MODULE / "files/safekeep-node-aws.conf"
OTHER_UNITS = [
    MODULE / "files/safekeep-tls-refresh.service",
    MODULE / "files/safekeep-tls-refresh.timer",
]
NODE_TOML_EXAMPLE = Path("deploy/node.toml.example")
NODE_TOML_TEMPLATE = MODULE / "templates/node.toml.tftpl"
PREPARE_SCRIPT = MODULE / "files/safekeep-prepare.sh"
CONFIG_RS = Path("node/src/config.rs")
# Highest exposure `systemd-analyze security` may give the node unit (0 best, 10 worst; 2.0 is "OK").
MAX_UNIT_EXPOSURE = 2.0
# Keys of the KMS key provider ([encryption] kms_key_id, kms_region, kms_endpoint),
# which the module writes; the node's config gains them with that provider.
KMS_PROVIDER_KEYS = {"kms_key_id", "kms_region", "kms_endpoint"}
# TOML tables of the node config and the struct behind each.
SECTION_STRUCTS = {
    "tls": "TlsSettings",
    "encryption": "EncryptionSettings",
    "raft": "RaftSettings",
    "limits": "LimitSettings",
    "init": "InitialMember",
}


class Findings:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: Path | str, message: str) -> None:
        self.lines.append(f"{path}: {message}")


def struct_fields(source: str, struct: str) -> set[str]:
    """Public field names of one Rust struct in config.rs."""
    match = re.search(rf"pub struct {struct} \{{(.*?)\n\}}", source, re.S)
    if not match:
        raise SystemExit(f"{CONFIG_RS}: struct {struct} not found; update {__file__}")
    return set(re.findall(r"^\s*pub (\w+):", match.group(1), re.M))


def config_schema(root: Path) -> dict[str, set[str]]:
    """Accepted keys: '' for top-level keys, else one entry per table."""
    source = (root / CONFIG_RS).read_text(encoding="utf-8")
    schema = {"": struct_fields(source, "PartialConfig") - set(SECTION_STRUCTS)}
    for section, struct in SECTION_STRUCTS.items():
        schema[section] = struct_fields(source, struct)
    return schema


def check_keys(path: Path, document: dict, schema: dict[str, set[str]], findings: Findings) -> None:
    for key, value in document.items():
        if key in SECTION_STRUCTS:
            tables = value if isinstance(value, list) else [value]
            for table in tables:
                if not isinstance(table, dict):
                    findings.add(path, f"[{key}] must be a table")
                    continue
                for inner in table:
                    if inner not in schema[key]:
                        findings.add(path, f"[{key}] {inner} is not a node config key")
        elif key not in schema[""]:
            findings.add(path, f"{key} is not a node config key")


def render_template(text: str) -> str:
    """The node.toml template with every directive line dropped (both branches
    kept) and every interpolation replaced by a number, which is valid in and
    out of quotes."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("%{")]
    return re.sub(r"\$\{[^}]*\}", "1", "\n".join(lines)) + "\n"


def check_node_toml(root: Path, findings: Findings) -> None:
    schema = config_schema(root)
    try:
        example = tomllib.loads((root / NODE_TOML_EXAMPLE).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        findings.add(NODE_TOML_EXAMPLE, f"is not valid TOML: {error}")
    else:
        check_keys(NODE_TOML_EXAMPLE, example, schema, findings)
    template_schema = dict(schema, encryption=schema["encryption"] | KMS_PROVIDER_KEYS)
    try:
        rendered = tomllib.loads(render_template((root / NODE_TOML_TEMPLATE).read_text(encoding="utf-8")))
    except tomllib.TOMLDecodeError as error:
        findings.add(NODE_TOML_TEMPLATE, f"does not render to valid TOML: {error}")
    else:
        check_keys(NODE_TOML_TEMPLATE, rendered, template_schema, findings)


def runnable_copy(unit: Path, directory: Path, extra: str = "") -> Path:
    """A copy of a unit whose programs exist on this machine (verify checks ExecStart paths)."""
    text = unit.read_text(encoding="utf-8") + extra
    text = text.replace("/usr/local/bin/safekeep-node", "/bin/true").replace("/usr/local/sbin/safekeep-prepare", "/bin/true")
    copy = directory / unit.name
    copy.write_text(text, encoding="utf-8")
    return copy


def check_units(root: Path, findings: Findings) -> None:
    if (root / UNIT).read_bytes() != (root / MODULE_UNIT).read_bytes():
        findings.add(UNIT, f"differs from {MODULE_UNIT}: keep one unit (copy the module's file over it)")
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        findings.add("systemd-analyze", "not installed (scripts/check-terraform.sh installs it)")
        return
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        copies = [runnable_copy(root / path, directory) for path in [MODULE_UNIT, *OTHER_UNITS]]
        drop_in = "\n" + "\n".join(
            line for line in (root / AWS_DROP_IN).read_text(encoding="utf-8").splitlines() if not line.startswith("#")
        )
        combined_dir = directory / "with-drop-in"
        combined_dir.mkdir()
        combined = runnable_copy(root / MODULE_UNIT, combined_dir, drop_in)
        for batch in ([*copies], [combined]):
            result = subprocess.run(
                [analyze, "verify", "--man=no", *map(str, batch)],
                capture_output=True,
                text=True,
                check=False,
            )
            report = (result.stdout + result.stderr).strip().replace(scratch, "")
            if result.returncode != 0 or report:
                findings.add(MODULE_UNIT.parent, f"systemd-analyze verify: {report or result.returncode}")
        security = subprocess.run(
            [analyze, "security", "--offline=yes", "--no-pager", str(copies[0])],
            capture_output=True,
            text=True,
            check=False,
        )
        match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout + security.stderr)
        if not match:
            findings.add(MODULE_UNIT, f"systemd-analyze security gave no exposure level: {security.stderr.strip()}")
        elif float(match.group(1)) > MAX_UNIT_EXPOSURE:
            findings.add(MODULE_UNIT, f"exposure {match.group(1)} exceeds {MAX_UNIT_EXPOSURE}: keep the hardening options")
        else:
            print(f"systemd: node unit exposure {match.group(1)} (limit {MAX_UNIT_EXPOSURE})")


def check_script(root: Path, shellcheck: str, findings: Findings) -> None:
    result = subprocess.run(
        [shellcheck, "--shell=bash", "--severity=style", str(root / PREPARE_SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        findings.add(PREPARE_SCRIPT, "shellcheck:\n" + result.stdout.strip())


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    root, shellcheck = Path(sys.argv[1]), sys.argv[2]
    findings = Findings()
    check_units(root, findings)
    check_node_toml(root, findings)
    check_script(root, shellcheck, findings)
    for line in findings.lines:
        print(line)
    print(f"deploy files: units, node.toml keys and boot script checked, {len(findings.lines)} findings")
    return 1 if findings.lines else 0


if __name__ == "__main__":
    sys.exit(main())
