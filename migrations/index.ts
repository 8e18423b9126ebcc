import { AuditChain1764000000000 } from './1764000000000-audit-chain.js';

/** Every migration, oldest first: the only way the schema changes (never edit a landed one). */
export const migrations = [AuditChain1764000000000];
