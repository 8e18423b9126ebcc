#!/usr/bin/env node
// `npm run typecheck`: every TypeScript file of the workspace type-checked once.
//
// Each Nx project's `typecheck` target checks that project with the files it imports, so run one
// after another they check the registry's sources four times (the registry, the tools, the demo
// and the approval UI's browser tests import it). Here the Node side (the registry, the verifier,
// the demo, the tools, the browser tests, the load tests, the migrations: one set of compiler
// options) is one program, tsconfig.node.json, and every other tsconfig (other options: the
// libraries' stricter import rules, the UI's JSX, k6) is checked on its own.
// tools/test/typecheck-plan.spec.ts fails when a project's typecheck target checks a file that no
// config here checks with the same options. Extra arguments go to every tsc.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** The configs, in the order they run (tools/typecheck-configs.json, which the plan's test reads too). */
const TYPECHECK_CONFIGS = JSON.parse(readFileSync(new URL('./typecheck-configs.json', import.meta.url), 'utf8'));

function tsc(config, extra) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [createRequire(import.meta.url).resolve('typescript/bin/tsc'), '-p', config, ...extra], { stdio: 'inherit' });
    child.on('error', () => resolve(1));
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

const failed = [];
for (const config of TYPECHECK_CONFIGS) {
  const started = Date.now();
  const status = await tsc(config, process.argv.slice(2));
  console.log(`tsc -p ${config}: ${status === 0 ? 'ok' : `FAILED (status ${status})`} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (status !== 0) failed.push(config);
}
if (failed.length > 0) {
  console.log(`type errors in ${failed.join(', ')}`);
  process.exit(1);
}
