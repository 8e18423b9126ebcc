export * from './node-crypto.js';
