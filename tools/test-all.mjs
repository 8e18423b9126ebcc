#!/usr/bin/env node
// `npm test`: the static checks (`npm run check`: type-check and lint, over the whole workspace) and
// the whole test suite (vitest, with coverage), side by side.
//
// The test files spend much of their time waiting (on a registry booting, a token expiring, a
// browser), so the cores are often idle while they run. The static checks take that idle time:
// they run at the lowest CPU priority (nice 19), so a test that wants a core gets it first and no
// test's timing changes. Their output is kept and printed after the tests, with their outcome; the
// run fails when either fails. Extra arguments go to vitest (`npm test -- apps/registry`).
import { spawn } from 'node:child_process';

const started = Date.now();
const seconds = (since) => Math.round((Date.now() - since) / 1000);

/** Runs `command`, resolving with its exit status (1 when it could not start or was killed). */
function run(command, args, options) {
  const child = spawn(command, args, options);
  const done = new Promise((resolve) => {
    child.on('error', (error) => resolve({ status: 1, error }));
    child.on('exit', (code, signal) => resolve({ status: code ?? 1, signal }));
  });
  return { child, done };
}

// The checks: `npm run check` (tools/check.mjs), one process that type-checks each file once and
// lints the workspace with the TypeScript programs the type-check built, so the typed rules build
// none of their own (110 s of CPU; `npm run lint` then `npm run typecheck` took 250). Nice 19 where
// `nice` exists; elsewhere normal priority.
const checkScript = 'npm run --silent check';
const checkOutput = [];
function startChecks(niced) {
  const [command, args] = niced ? ['nice', ['-n', '19', 'sh', '-c', checkScript]] : ['sh', ['-c', checkScript]];
  const checkRun = run(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  checkRun.child.stdout?.on('data', (chunk) => checkOutput.push(chunk));
  checkRun.child.stderr?.on('data', (chunk) => checkOutput.push(chunk));
  return checkRun;
}

const checksStarted = Date.now();
let checks = startChecks(true);
const checksDone = checks.done.then(async (outcome) => {
  if (outcome.error?.code === 'ENOENT') {
    checks = startChecks(false);
    return { ...(await checks.done), took: seconds(checksStarted) };
  }
  return { ...outcome, took: seconds(checksStarted) };
});

const tests = run('npx', ['vitest', 'run', '--coverage', ...process.argv.slice(2)], { stdio: 'inherit' });

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    checks.child.kill(signal);
    tests.child.kill(signal);
  });
}

const [testOutcome, checkOutcome] = await Promise.all([tests.done, checksDone]);
const checkText = Buffer.concat(checkOutput).toString('utf8');
process.stdout.write('\n');
if (checkOutcome.status === 0) {
  // check.mjs's line per config is enough ("type-check <config>: ok (N files) in N s").
  const configs = checkText.split('\n').filter((line) => /^type-check \S+: ok/.test(line)).length;
  console.log(`Lint and type-check: passed in ${checkOutcome.took} s (beside the tests, at low priority): ESLint over the workspace, ${configs} TypeScript configs`);
} else {
  console.log(`Lint and type-check: FAILED (status ${checkOutcome.status}) after ${checkOutcome.took} s. Their output:\n`);
  process.stdout.write(checkText);
  if (checkOutcome.error) console.log(`could not run the checks: ${checkOutcome.error.message}`);
}
console.log(`Tests: ${testOutcome.status === 0 ? 'passed' : `FAILED (status ${testOutcome.status})`}; npm test took ${seconds(started)} s in all`);
process.exit(testOutcome.status !== 0 ? testOutcome.status : checkOutcome.status);
