import { AuditChain1764000000000 } from './1764000000000-audit-chain.js';
import { Agents1764000001000 } from './1764000001000-agents.js';
import { ServicesGrants1764000002000 } from './1764000002000-services-grants.js';
import { DpopProofJtis1764000003000 } from './1764000003000-dpop-proof-jtis.js';
import { Revocations1764000004000 } from './1764000004000-revocations.js';
import { Humans1764000005000 } from './1764000005000-humans.js';
import { StepUps1764000006000 } from './1764000006000-step-ups.js';
import { VerifierEventJournal1764000010000 } from './1764000010000-verifier-event-journal.js';
import { PasskeyManagement1764000011000 } from './1764000011000-passkey-management.js';
import { StepUpBound1764000013000 } from './1764000013000-step-up-bound.js';
import { AuditMerkleTree1764000019000 } from './1764000019000-audit-merkle-tree.js';
import { AuditLeavesFromEvents1764000020000 } from './1764000020000-audit-leaves-from-events.js';
import { AuditLeanIndexes1764000021000 } from './1764000021000-audit-lean-indexes.js';
import { AuditTreeTiles1764000022000 } from './1764000022000-audit-tree-tiles.js';

/** Every migration, oldest first: the only way the schema changes (never edit a landed one). */
export const migrations = [AuditChain1764000000000, Agents1764000001000, ServicesGrants1764000002000, DpopProofJtis1764000003000, Revocations1764000004000, Humans1764000005000, StepUps1764000006000, VerifierEventJournal1764000010000, PasskeyManagement1764000011000, StepUpBound1764000013000, AuditMerkleTree1764000019000, AuditLeavesFromEvents1764000020000, AuditLeanIndexes1764000021000, AuditTreeTiles1764000022000];
