export * from './errors.js';
export * from './encoding.js';
export * from './clock.js';
export * from './capabilities.js';
export * from './envelope.js';
export * from './audit.js';
export * from './dpop.js';
export * from './txn-token.js';
