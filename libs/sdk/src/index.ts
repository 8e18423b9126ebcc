export * from './node-crypto.js';
export * from './service-provider.js';
export * from './agent/index.js';
