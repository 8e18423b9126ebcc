/**
 * Globals of the k6 (>= 1.0) runtime that @types/k6 does not declare: `console`, and the part of
 * the global Web Crypto object (`crypto`, k6's webcrypto module made global) these scripts use.
 * Kept to what k6 implements: ECDSA P-256 keys imported from JWK, SHA-256 signatures (raw r||s, as
 * Web Crypto and JWS both want them), random UUIDs.
 */
export {};

declare global {
  interface K6CryptoKey {
    readonly type: 'private' | 'public' | 'secret';
    readonly extractable: boolean;
    readonly usages: string[];
  }

  interface K6EcJwk {
    kty: string;
    crv: string;
    x: string;
    y: string;
    d?: string;
  }

  interface K6SubtleCrypto {
    importKey(format: 'jwk', keyData: K6EcJwk, algorithm: { name: 'ECDSA'; namedCurve: 'P-256' }, extractable: boolean, keyUsages: ('sign' | 'verify')[]): Promise<K6CryptoKey>;
    sign(algorithm: { name: 'ECDSA'; hash: 'SHA-256' | { name: 'SHA-256' } }, key: K6CryptoKey, data: ArrayBuffer | Uint8Array): Promise<ArrayBuffer>;
  }

  var crypto: {
    readonly subtle: K6SubtleCrypto;
    randomUUID(): string;
    getRandomValues<T extends Uint8Array | Uint16Array | Uint32Array>(array: T): T;
  };

  var console: {
    log(...args: unknown[]): void;
    warn(...args: unknown[]): void;
    error(...args: unknown[]): void;
  };
}
