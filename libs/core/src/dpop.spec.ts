import { describeDpopProofs } from '../test/dpop-cases.js';

// The cases are in test/dpop-cases.ts: dpop-native.spec.ts runs them again with a native verifier.
describeDpopProofs();
