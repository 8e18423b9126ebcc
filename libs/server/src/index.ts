// Server-only Node code shared by the registry and the verifier. The SDK and the approval UI never
// import it (libs/sdk/test/boundary.spec.ts).
export * from './node-crypto.js';
export * from './dpop-nonces.js';
export * from './witness-client.js';
