"""Offline checks of the deploy/terraform module that need no terraform binary.

- every .tf file under the module (examples included) parses as HCL2
  (python-hcl2) and opens with a comment saying what it is for;
- every variable has a type and a description, every output a description;
- every Terraform configuration (the module and each example) pins
  required_version and each required provider with a source and a version
  constraint that has both a lower and an upper bound, and declares every
  provider its resources and data sources use;
- each templatefile() call passes exactly the variables its template uses
  (Terraform fails at plan time on a missing one);
- the module README's input and output tables and its complete example match
  the code (`--write-readme` regenerates them), and every resource its
  Security promises table names exists.

Usage: check_module.py MODULE_DIR [--write-readme]
Exit status 1 on any finding, each printed as `path: message`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import hcl2

# Providers built into Terraform itself, needing no required_providers entry.
BUILTIN_PROVIDERS = {"terraform"}
# README markers around generated sections.
MARKERS = {
    "inputs": ("<!-- inputs:start -->", "<!-- inputs:end -->"),
    "outputs": ("<!-- outputs:start -->", "<!-- outputs:end -->"),
    "example": ("<!-- example:start -->", "<!-- example:end -->"),
    "requirements": ("<!-- requirements:start -->", "<!-- requirements:end -->"),
}
# The README section mapping each promise to the resources that keep it.
PROMISES_HEADING = "## Security promises"
RESOURCE_ADDRESS = re.compile(r"`((?:data\.)?[a-z0-9]+_[a-z0-9_]+\.[a-z0-9_]+)`")
# The example the README shows in full.
COMPLETE_EXAMPLE = Path("examples/complete/main.tf")
# A version constraint bounded from below and from above.
LOWER_BOUND = re.compile(r"(>=|~>|>)\s*\d")
UPPER_BOUND = re.compile(r"(<=|<|~>)\s*\d")


class Findings:
    """Collects problems as `path: message` lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: Path | str, message: str) -> None:
        self.lines.append(f"{path}: {message}")


def unquote(value: object) -> object:
    """python-hcl2 keeps string literals quoted; strip one pair of quotes."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def block_items(document: dict, kind: str) -> list[tuple[str, dict]]:
    """Labelled blocks of one kind (variable, output, ...) as (label, body)."""
    items = []
    for entry in document.get(kind, []):
        for label, body in entry.items():
            if label.startswith("__"):
                continue
            items.append((str(unquote(label)), body))
    return items


def typed_blocks(document: dict, kind: str) -> list[str]:
    """Types of resource or data blocks (aws_s3_bucket, ...)."""
    types = []
    for entry in document.get(kind, []):
        types.extend(str(unquote(label)) for label in entry if not label.startswith("__"))
    return types


def parse_all(module_dir: Path, findings: Findings) -> dict[Path, dict]:
    """Parses every .tf file; returns parsed documents by path."""
    documents = {}
    for path in sorted(module_dir.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        if not text.lstrip().startswith("#"):
            findings.add(path, "does not open with a comment saying what the file is for")
        try:
            documents[path] = hcl2.loads(text)
        except Exception as error:  # python-hcl2 raises lark errors of several types
            findings.add(path, f"does not parse as HCL2: {str(error).splitlines()[0]}")
    return documents


def check_variables_and_outputs(documents: dict[Path, dict], findings: Findings) -> None:
    for path, document in documents.items():
        for name, body in block_items(document, "variable"):
            if "type" not in body:
                findings.add(path, f"variable {name} has no type")
            if not str(unquote(body.get("description", ""))).strip():
                findings.add(path, f"variable {name} has no description")
        for name, body in block_items(document, "output"):
            if not str(unquote(body.get("description", ""))).strip():
                findings.add(path, f"output {name} has no description")


def check_versions(documents: dict[Path, dict], findings: Findings) -> None:
    """Each directory with .tf files is one configuration; check its terraform block."""
    by_dir: dict[Path, list[tuple[Path, dict]]] = {}
    for path, document in documents.items():
        by_dir.setdefault(path.parent, []).append((path, document))
    for directory, files in sorted(by_dir.items()):
        terraform_blocks = [block for _, document in files for block in document.get("terraform", [])]
        if not terraform_blocks:
            findings.add(directory, "no terraform block (required_version, required_providers)")
            continue
        required_version = next((unquote(b["required_version"]) for b in terraform_blocks if "required_version" in b), None)
        if not required_version:
            findings.add(directory, "terraform.required_version is not set")
        elif not (LOWER_BOUND.search(required_version) and UPPER_BOUND.search(required_version)):
            findings.add(directory, f"required_version {required_version!r} needs a lower and an upper bound")
        declared: dict[str, dict] = {}
        for block in terraform_blocks:
            for providers in block.get("required_providers", []):
                for name, spec in providers.items():
                    if not name.startswith("__"):
                        declared[name] = spec
        for name, spec in sorted(declared.items()):
            source = unquote(spec.get("source", "")) if isinstance(spec, dict) else ""
            version = unquote(spec.get("version", "")) if isinstance(spec, dict) else ""
            if not source:
                findings.add(directory, f"provider {name} has no source")
            if not version:
                findings.add(directory, f"provider {name} is not pinned (no version)")
            elif not (LOWER_BOUND.search(version) and UPPER_BOUND.search(version)):
                findings.add(directory, f"provider {name} version {version!r} needs a lower and an upper bound")
        used = set()
        for _, document in files:
            for kind in ("resource", "data"):
                used.update(block_type.split("_", 1)[0] for block_type in typed_blocks(document, kind))
        for provider in sorted(used - set(declared) - BUILTIN_PROVIDERS):
            findings.add(directory, f"provider {provider} is used but not in required_providers")


TEMPLATEFILE_CALL = re.compile(r'templatefile\("\$\{path\.module\}/([^"]+)",\s*\{(.*?)\n\s*\}\)', re.S)
TEMPLATE_INTERPOLATION = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*)")
TEMPLATE_DIRECTIVE = re.compile(r"%\{\s*(?:if|for)\s+(.*?)~?\s*\}")
TEMPLATE_LOOP = re.compile(r"(?:[A-Za-z_]\w*\s*,\s*)?([A-Za-z_]\w*)\s+in\s+")
TEMPLATE_KEYWORDS = {"if", "for", "in", "else", "endif", "endfor", "true", "false", "null"}


def template_variables(text: str) -> set[str]:
    """Root identifiers a Terraform template reads, less its own loop variables."""
    used = set(TEMPLATE_INTERPOLATION.findall(text))
    loop_vars = set()
    for directive in TEMPLATE_DIRECTIVE.findall(text):
        loop = TEMPLATE_LOOP.match(directive)
        if loop:
            loop_vars.add(loop.group(1))
            directive = directive[loop.end():]
        used.update(re.findall(r"(?<![.\w])([A-Za-z_]\w*)", directive))
    return used - loop_vars - TEMPLATE_KEYWORDS


def check_templates(module_dir: Path, findings: Findings) -> None:
    for path in sorted(module_dir.glob("*.tf")):
        for template, arguments in TEMPLATEFILE_CALL.findall(path.read_text(encoding="utf-8")):
            passed = set(re.findall(r"^\s*(\w+)\s*=", arguments, re.M))
            template_path = module_dir / template
            if not template_path.is_file():
                findings.add(path, f"templatefile names {template}, which does not exist")
                continue
            used = template_variables(template_path.read_text(encoding="utf-8"))
            for name in sorted(used - passed):
                findings.add(path, f"templatefile({template}) does not pass {name}, which the template uses")
            for name in sorted(passed - used):
                findings.add(path, f"templatefile({template}) passes {name}, which the template never uses")


def render_value(value: object) -> str:
    """A default value as a README cell."""
    value = unquote(value)
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}"):
            return f"`{value[2:-1]}`"
        return f'`"{value}"`'
    return f"`{json.dumps(value)}`".replace("|", "\\|")


def render_type(value: object) -> str:
    value = str(unquote(value))
    if value.startswith("${") and value.endswith("}"):
        value = value[2:-1]
    return f"`{value}`"


def cell(text: str) -> str:
    """Text as one Markdown table cell: one line, pipes escaped, <placeholders> shown outside code spans."""
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    for index in range(0, len(parts), 2):
        parts[index] = parts[index].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def module_blocks(module_dir: Path, documents: dict[Path, dict], kind: str) -> list[tuple[str, dict]]:
    items = []
    for path, document in documents.items():
        if path.parent == module_dir:
            items.extend(block_items(document, kind))
    return items


def inputs_table(module_dir: Path, documents: dict[Path, dict]) -> str:
    rows = ["| Name | Description | Type | Default | Required |", "|------|-------------|------|---------|:--------:|"]
    for name, body in sorted(module_blocks(module_dir, documents, "variable")):
        has_default = "default" in body
        default = render_value(body["default"]) if has_default else "n/a"
        rows.append(
            f"| `{name}` | {cell(str(unquote(body.get('description', ''))))} | {render_type(body.get('type', ''))} "
            f"| {default} | {'no' if has_default else 'yes'} |"
        )
    return "\n".join(rows)


def outputs_table(module_dir: Path, documents: dict[Path, dict]) -> str:
    rows = ["| Name | Description |", "|------|-------------|"]
    for name, body in sorted(module_blocks(module_dir, documents, "output")):
        rows.append(f"| `{name}` | {cell(str(unquote(body.get('description', ''))))} |")
    return "\n".join(rows)


def requirements_table(module_dir: Path, documents: dict[Path, dict]) -> str:
    rows = ["| Name | Version |", "|------|---------|"]
    for path, document in documents.items():
        if path.parent != module_dir:
            continue
        for block in document.get("terraform", []):
            if "required_version" in block:
                rows.append(f"| terraform | {unquote(block['required_version'])} |")
            for providers in block.get("required_providers", []):
                for name, spec in sorted(providers.items()):
                    if not name.startswith("__"):
                        rows.append(f"| {unquote(spec.get('source', name))} | {unquote(spec.get('version', ''))} |")
    return "\n".join(rows)


def generated_sections(module_dir: Path, documents: dict[Path, dict]) -> dict[str, str]:
    example = (module_dir / COMPLETE_EXAMPLE).read_text(encoding="utf-8")
    return {
        "inputs": inputs_table(module_dir, documents),
        "outputs": outputs_table(module_dir, documents),
        "example": f"```hcl\n{example}```",
        "requirements": requirements_table(module_dir, documents),
    }


def module_addresses(module_dir: Path, documents: dict[Path, dict]) -> set[str]:
    """Addresses (aws_x.name, data.aws_x.name) of the module's own resources and data sources."""
    addresses = set()
    for path, document in documents.items():
        if path.parent != module_dir:
            continue
        for kind, prefix in (("resource", ""), ("data", "data.")):
            for entry in document.get(kind, []):
                for block_type, blocks in entry.items():
                    if block_type.startswith("__"):
                        continue
                    for name in blocks:
                        if not name.startswith("__"):
                            addresses.add(f"{prefix}{unquote(block_type)}.{unquote(name)}")
    return addresses


def check_promises(module_dir: Path, documents: dict[Path, dict], text: str, readme: Path, findings: Findings) -> None:
    """Every resource the Security promises table names must exist in the module."""
    if PROMISES_HEADING not in text:
        findings.add(readme, f"has no '{PROMISES_HEADING}' section")
        return
    section = text.split(PROMISES_HEADING, 1)[1].split("\n## ", 1)[0]
    named = set(RESOURCE_ADDRESS.findall(section))
    if not named:
        findings.add(readme, "the Security promises table names no resources")
    for address in sorted(named - module_addresses(module_dir, documents)):
        findings.add(readme, f"Security promises names {address}, which the module does not define")


def replace_section(text: str, key: str, content: str) -> str | None:
    start, end = MARKERS[key]
    pattern = re.compile(re.escape(start) + r"\n.*?\n?" + re.escape(end), re.S)
    if not pattern.search(text):
        return None
    return pattern.sub(lambda _: f"{start}\n{content}\n{end}", text, count=1)


def check_readme(module_dir: Path, documents: dict[Path, dict], findings: Findings, write: bool) -> None:
    readme = module_dir / "README.md"
    if not readme.is_file():
        findings.add(readme, "missing")
        return
    text = readme.read_text(encoding="utf-8")
    check_promises(module_dir, documents, text, readme, findings)
    updated = text
    for key, content in generated_sections(module_dir, documents).items():
        replaced = replace_section(updated, key, content)
        if replaced is None:
            findings.add(readme, f"has no {MARKERS[key][0]} ... {MARKERS[key][1]} section")
            continue
        updated = replaced
    if updated != text:
        if write:
            readme.write_text(updated, encoding="utf-8")
            print(f"{readme}: regenerated inputs, outputs and example")
        else:
            findings.add(readme, "inputs/outputs tables or the complete example are out of date (run with --write-readme)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module_dir", type=Path)
    parser.add_argument("--write-readme", action="store_true", help="regenerate the README's generated sections")
    args = parser.parse_args()
    module_dir = args.module_dir

    findings = Findings()
    documents = parse_all(module_dir, findings)
    check_variables_and_outputs(documents, findings)
    check_versions(documents, findings)
    check_templates(module_dir, findings)
    if (module_dir / COMPLETE_EXAMPLE).is_file():
        check_readme(module_dir, documents, findings, args.write_readme)
    else:
        findings.add(module_dir / COMPLETE_EXAMPLE, "missing")

    variables = len(module_blocks(module_dir, documents, "variable"))
    outputs = len(module_blocks(module_dir, documents, "output"))
    for line in findings.lines:
        print(line)
    print(f"terraform lint: {len(documents)} files parsed, {variables} variables, {outputs} outputs, {len(findings.lines)} findings")
    return 1 if findings.lines else 0


if __name__ == "__main__":
    sys.exit(main())
