import { expect } from 'vitest';
import type { Database } from '../../../registry/src/infra/database.service.js';

/**
 * After an outage: calls until an answer allows (failing after `timeoutMs`), and answers how many
 * answers before it were denials, so a test can count them among the chain's 503s.
 */
export async function deniedUntilAllowed(call: () => Promise<{ body: { allow: boolean } }>, timeoutMs: number): Promise<number> {
  let denied = 0;
  await expect
    .poll(
      async () => {
        const res = await call();
        if (!res.body.allow) denied += 1;
        return res.body.allow;
      },
      { timeout: timeoutMs, interval: 50 },
    )
    .toBe(true);
  return denied;
}

/** The grant's verification events in the audit chain, counted by outcome (one row per event). */
export function outcomeCounts(db: Database, grantId: string): Promise<{ outcome: string; n: number }[]> {
  return db.query<{ outcome: string; n: number }[]>(
    `SELECT data->>'outcome' AS outcome, count(*)::int AS n FROM audit_events WHERE grant_id = $1 AND type LIKE 'verification.%' GROUP BY 1 ORDER BY 1`,
    [grantId],
  );
}
