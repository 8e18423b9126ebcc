import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The operator's bearer token for the operator API: `WRIT_OPERATOR_TOKEN` when set, otherwise 256
 * random bits made on first run in `<dataDir>/keys/operator-token` (mode 0600, git-ignored), so
 * whoever runs the registry on this machine (the demo, scripts) can read it and nobody else.
 */
export function operatorToken(dataDir: string, fromEnv: string | undefined): string {
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const dir = join(dataDir, 'keys');
  const file = join(dir, 'operator-token');
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  }
  chmodSync(file, 0o600);
  return readFileSync(file, 'utf8').trim();
}
