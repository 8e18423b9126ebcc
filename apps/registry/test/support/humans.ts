import { randomBytes } from 'node:crypto';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { RegistryConfig } from '../../src/config/config.js';
import { Database } from '../../src/infra/database.service.js';
import type { GrantEntity } from '../../src/modules/grants/grant.entity.js';
import type { GrantNarrowing } from '../../src/modules/grants/grants.service.js';
import { ApprovalsService } from '../../src/modules/humans/approvals.service.js';
import { HumanEntity } from '../../src/modules/humans/human.entities.js';
import { HumansService } from '../../src/modules/humans/humans.service.js';
import { secretHash } from '../../src/modules/humans/webauthn.js';
import { CONFIG } from '../../src/tokens.js';
import { SoftPasskey } from './soft-passkey.js';

const passkeys = new WeakMap<NestFastifyApplication, Map<string, SoftPasskey>>();

/**
 * The human `humanId` with a software passkey, registered through the real add-passkey ceremony.
 * The human row is created with the given id when missing, so tests can keep readable owners
 * ('alice'); real sign-ups get `usr_...` ids.
 */
export async function humanWithPasskey(app: NestFastifyApplication, humanId: string): Promise<SoftPasskey> {
  let byApp = passkeys.get(app);
  if (!byApp) passkeys.set(app, (byApp = new Map<string, SoftPasskey>()));
  const known = byApp.get(humanId);
  if (known) return known;
  const repo = app.get(Database).dataSource.getRepository(HumanEntity);
  if (!(await repo.existsBy({ id: humanId }))) {
    await repo.insert({ id: humanId, name: humanId, webauthn_user_id: randomBytes(32).toString('base64url'), created_at: new Date(), passkey_notice_at: new Date() });
  }
  const config = app.get<RegistryConfig>(CONFIG);
  const passkey = new SoftPasskey(config.uiOrigins[0]!, config.rp.id);
  const humans = app.get(HumansService);
  // The person's first passkey, through the second step of the real add-passkey ceremony. Its
  // first step needs a confirmation from a passkey they already have (ADR 0018), which this
  // person has not: the ceremony is stored here as that step would store it, for a test session.
  const session = `test-session-${randomBytes(8).toString('hex')}`;
  const challenge = randomBytes(32).toString('base64url');
  const human = await repo.findOneByOrFail({ id: humanId });
  const ceremony = await humans.saveCeremony('add_passkey', challenge, { humanId, data: { session: secretHash(session), confirmed_with: 'test-support' } });
  const options = { challenge, rp: { id: config.rp.id, name: config.rp.name }, user: { id: human.webauthn_user_id, name: human.name, displayName: human.name }, pubKeyCredParams: [] };
  await humans.finishAddPasskey(humanId, session, { ceremony, response: passkey.register(options) });
  byApp.set(humanId, passkey);
  return passkey;
}

/** `humanId` decides on a grant with their passkey, through both steps of the approval ceremony. */
export async function decide(
  app: NestFastifyApplication,
  grantId: string,
  humanId: string,
  decision: 'approve' | 'deny',
  narrowing?: GrantNarrowing,
): Promise<{ grant: GrantEntity; receiptHash: string }> {
  const passkey = await humanWithPasskey(app, humanId);
  const approvals = app.get(ApprovalsService);
  const { ceremony, document, options } = await approvals.beginDecision(humanId, grantId, { decision, ...(narrowing ? { narrowing } : {}) });
  return approvals.finishDecision(humanId, grantId, { ceremony, document, response: passkey.assert(options) });
}

/** The owner approves the grant (possibly narrowed) with their passkey. */
export async function approveGrant(app: NestFastifyApplication, grantId: string, owner: string, narrowing?: GrantNarrowing): Promise<GrantEntity> {
  return (await decide(app, grantId, owner, 'approve', narrowing)).grant;
}

/** The owner denies the grant with their passkey. */
export async function denyGrant(app: NestFastifyApplication, grantId: string, owner: string): Promise<GrantEntity> {
  return (await decide(app, grantId, owner, 'deny')).grant;
}
