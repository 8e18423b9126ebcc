// Server-only Node code shared by the registry and the verifier.
export {};
