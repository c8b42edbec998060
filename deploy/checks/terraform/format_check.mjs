// Checks that Terraform files are formatted the way `terraform fmt` formats
// them, with HashiCorp's own formatter (hclwrite.Format, compiled to
// WebAssembly and published as @cdktf/hcl-tools). Prints a unified diff for
// each file that differs and exits 1; with --write, rewrites them instead.
//
// Usage: node format_check.mjs HCL_TOOLS_NODE_MODULES [--write] FILE...

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [modulesDir, ...rest] = process.argv.slice(2);
const write = rest.includes("--write");
const files = rest.filter((arg) => arg !== "--write");
if (!modulesDir || files.length === 0) {
  console.error("usage: node format_check.mjs HCL_TOOLS_NODE_MODULES [--write] FILE...");
  process.exit(2);
}

const require = createRequire(join(modulesDir, "noop.js"));
const { format } = require("@cdktf/hcl-tools");

const scratch = mkdtempSync(join(tmpdir(), "hcl-format-"));
let unformatted = 0;
try {
  for (const file of files) {
    const original = readFileSync(file, "utf8");
    const formatted = await format(original);
    if (formatted === original) {
      continue;
    }
    unformatted += 1;
    if (write) {
      writeFileSync(file, formatted);
      console.log(`formatted ${file}`);
      continue;
    }
    const expected = join(scratch, "formatted.tf");
    writeFileSync(expected, formatted);
    try {
      execFileSync("diff", ["-u", "--label", `${file} (as written)`, "--label", `${file} (formatted)`, file, expected], {
        encoding: "utf8",
      });
    } catch (error) {
      process.stdout.write(error.stdout ?? "");
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

console.log(`terraform fmt: ${files.length} files checked, ${unformatted} ${write ? "rewritten" : "not formatted"}`);
process.exit(unformatted > 0 && !write ? 1 : 0);
