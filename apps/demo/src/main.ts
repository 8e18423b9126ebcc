/**
 * `npm run demo [-- --headless]`: the travel-booking pipeline against a running Writ (`npm start`).
 *
 * It talks to the registry, the verifier and the approval UI at their default addresses (or
 * WRIT_REGISTRY_URL, WRIT_VERIFIER_URL, WRIT_UI_URL), and to the registry's operator API with the
 * token `npm start` made in WRIT_DATA_DIR (or WRIT_OPERATOR_TOKEN), to register its example
 * service providers and to mint its agents' enrollment tokens. Exit 0 when every decision was
 * the expected one and the audit chain verifies.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { headlessHuman, type Human, personInTheBrowser } from './human.js';
import { runPipeline } from './pipeline.js';
import { startProviders } from './providers.js';
import { Trace } from './trace.js';

const USAGE = `Usage: npm run demo [-- --headless]

  --headless   play the person with headless Chromium and a virtual passkey (no browser needed)

Start Writ first with \`npm start\`, in another terminal.`;

function operatorToken(): string {
  if (process.env.WRIT_OPERATOR_TOKEN) return process.env.WRIT_OPERATOR_TOKEN;
  const file = join(resolve(process.env.WRIT_DATA_DIR || '.data'), 'keys', 'operator-token');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    throw new Error(`no operator token at ${file}: start Writ with \`npm start\` first (same WRIT_DATA_DIR), or set WRIT_OPERATOR_TOKEN`);
  }
}

async function reachable(url: string, what: string): Promise<void> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(3000) });
  } catch {
    throw new Error(`the ${what} does not answer at ${url}: start Writ with \`npm start\` first`);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { headless: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } } });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const registryUrl = (process.env.WRIT_REGISTRY_URL || `http://127.0.0.1:${process.env.REGISTRY_PORT || 4000}`).replace(/\/$/, '');
  const verifierUrl = (process.env.WRIT_VERIFIER_URL || `http://127.0.0.1:${process.env.VERIFIER_PORT || 4100}`).replace(/\/$/, '');
  const uiUrl = (process.env.WRIT_UI_URL || `http://localhost:${process.env.UI_PORT || 3000}`).replace(/\/$/, '');
  await reachable(`${registryUrl}/.well-known/oauth-authorization-server`, 'registry');
  await reachable(uiUrl, 'approval UI');
  const operator = { registryUrl, token: operatorToken() };
  const say = (line: string) => console.log(line);

  console.log(`Writ demo: a trip to Lisbon booked by five agents, ${values.headless ? 'with headless Chromium playing the person' : 'with you approving in the browser'}.\n`);
  const providers = await startProviders({ operator, verifierUrl });
  say(`example providers: ${providers.flights}, ${providers.hotels}, ${providers.payments}, ${providers.notifications}`);
  let human: Human | undefined;
  const trace = new Trace(say);
  try {
    human = values.headless ? await headlessHuman(uiUrl, 'Demo traveller') : await personInTheBrowser(uiUrl, operator, say);
    const result = await runPipeline({ registryUrl, uiUrl, operator, providers, human, trace });
    const failures = trace.failures;
    console.log('');
    if (failures.length === 0) {
      console.log(`Every decision was the expected one (${trace.lines.length} checks), and the audit chain of ${result.auditEvents} events verifies.`);
      return 0;
    }
    console.log(`${failures.length} decision(s) differ from what was expected:`);
    for (const line of failures) console.log(`  ${line.agent}: ${line.what}: got ${line.decision}, expected ${line.expected}`);
    return 1;
  } finally {
    await human?.close();
    await providers.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(2);
  },
);
