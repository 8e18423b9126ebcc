import { z } from 'zod';
import { GRANT_IDENTITY_FIELDS, GRANT_STATUSES, GRANT_TERMS_FIELDS, STEP_UP_STATUSES } from './human-api.js';

/*
 * The answers of the registry's other routes, for agents, service providers, the operator and
 * monitoring: the OpenAPI document's response schemas are generated from these, and
 * apps/registry/test/openapi.e2e.spec.ts checks real answers against them. Objects a standard
 * lets grow (RFC 8414 metadata, RFC 7662 introspection, JWKs) are open; Writ's own are strict.
 */

const Timestamp = z.string().describe('an ISO 8601 instant');
const Jwk = z.looseObject({ kty: z.string() }).describe('a JWK (RFC 7517)');

/** `POST /grants`, 201: the pending grant. */
export const RequestedGrantAnswerSchema = z.strictObject({ grant_id: z.string(), status: z.enum(GRANT_STATUSES), expires_at: Timestamp });

/** `GET /grants/:id`: a grant as its agent sees it. */
export const AgentGrantSchema = z.strictObject({ ...GRANT_IDENTITY_FIELDS, service_id: z.string(), ...GRANT_TERMS_FIELDS });

/** `GET /step-ups/:id`: a step-up as the agent that made the request sees it. */
export const AgentStepUpSchema = z.strictObject({
  step_up_id: z.string(),
  status: z.enum(STEP_UP_STATUSES),
  grant_id: z.string(),
  txn: z.string(),
  amount: z.number(),
  currency: z.string(),
});

/** `POST /oauth/register`, 201: the RFC 7591 §3.2.1 client information response. */
export const RegisteredClientSchema = z.strictObject({
  client_id: z.string(),
  client_id_issued_at: z.number().int(),
  client_name: z.string(),
  jwks: z.strictObject({ keys: z.array(Jwk) }),
  token_endpoint_auth_method: z.literal('private_key_jwt'),
  grant_types: z.array(z.string()),
});

/** `GET` and `POST /agents/me`: the calling agent. */
export const AgentSelfSchema = z.strictObject({ client_id: z.string(), owner: z.string(), jkt: z.string() });

/** `GET /services/me`: the calling service provider. */
export const ServiceSelfSchema = z.strictObject({ id: z.string(), uri: z.string(), display_name: z.string() });

/** `POST /oauth/revoke`: RFC 7009 §2.2, an empty object whether or not the token was valid. */
export const RevokedAnswerSchema = z.strictObject({});

/** `POST /oauth/introspect`: RFC 7662 §2.2, `{active: false}` or the active token's claims. */
export const IntrospectionSchema = z.union([
  z.strictObject({ active: z.literal(false) }),
  z.looseObject({
    active: z.literal(true),
    iss: z.string(),
    sub: z.string(),
    aud: z.union([z.string(), z.array(z.string())]),
    exp: z.number().int(),
    iat: z.number().int(),
    jti: z.string(),
    txn: z.string(),
    scope: z.string(),
    client_id: z.string(),
    cnf: z.looseObject({ jkt: z.string() }),
    act: z.looseObject({ sub: z.string() }),
    token_type: z.string(),
    grant_id: z.string(),
  }),
]);

/** `GET /.well-known/oauth-authorization-server`: RFC 8414 §2 metadata (members may be added). */
export const AuthorizationServerMetadataSchema = z.looseObject({
  issuer: z.string(),
  jwks_uri: z.string(),
  registration_endpoint: z.string(),
  token_endpoint: z.string(),
  revocation_endpoint: z.string(),
  introspection_endpoint: z.string(),
  grant_types_supported: z.array(z.string()),
  authorization_details_types_supported: z.array(z.string()),
  token_endpoint_auth_methods_supported: z.array(z.string()),
  dpop_signing_alg_values_supported: z.array(z.string()),
});

/** `GET /.well-known/jwks.json`: RFC 7517 §5, the registry's public signing keys. */
export const JwksSchema = z.strictObject({ keys: z.array(Jwk) });

/**
 * `GET /audit/verify` (operator only): the events re-hashed from the last verified head (`from`),
 * the checkpoints taken since, the Merkle tree at the head, and the anchors (checkpoints kept
 * outside, witnesses') the log must extend (docs/audit.md, "Operating the log").
 */
export const AuditVerificationSchema = z.strictObject({
  chain: z.union([
    z.strictObject({ ok: z.literal(true), count: z.number().int(), lastSeq: z.number().int(), lastHash: z.string() }),
    z.strictObject({ ok: z.literal(false), count: z.number().int(), brokenSeq: z.number().int(), reason: z.string() }),
  ]),
  checkpoints: z.strictObject({ verified: z.number().int(), failed: z.array(z.strictObject({ seq: z.number().int(), reason: z.string() })) }),
  from: z.number().int(),
  tree: z.strictObject({ size: z.number().int(), root: z.string() }).nullable(),
  anchors: z.array(
    z.strictObject({ source: z.string(), size: z.number().int(), ok: z.boolean(), reason: z.string().optional(), missingSeq: z.number().int().optional() }),
  ),
});

/** A SHA-256 Merkle tree hash (RFC 9162 §2.1), standard base64 of its 32 bytes. */
const MerkleHashBase64 = z.string().regex(/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/, '32 bytes in standard base64');

/** `GET /audit/proof/inclusion?seq=&size=`: RFC 9162 §2.1.3 audit path of leaf `seq - 1` in the tree of `size` leaves. */
export const AuditInclusionProofSchema = z.strictObject({
  seq: z.number().int().positive(),
  size: z.number().int().positive(),
  /** SHA-256(0x00 || the 32 bytes of event `seq`'s hash). */
  leaf_hash: MerkleHashBase64,
  proof: z.array(MerkleHashBase64),
});

/** `GET /audit/proof/consistency?from=&to=`: RFC 9162 §2.1.4 proof that the tree of `from` leaves is a prefix of the tree of `to`. */
export const AuditConsistencyProofSchema = z.strictObject({
  from: z.number().int().positive(),
  to: z.number().int().positive(),
  proof: z.array(MerkleHashBase64),
});

/** `GET /readyz` (200 when ready, 503 with the reasons when not). */
export const RegistryReadinessSchema = z.strictObject({
  ready: z.boolean(),
  reasons: z.array(z.string()).optional(),
  /** The ingestion of verifier decisions into the audit chain; null when this process runs none. */
  verifier_events: z
    .strictObject({
      ingested: z.number().int(),
      deadLettered: z.number().int(),
      failedRounds: z.number().int(),
      failingRounds: z.number().int(),
      lastError: z.string().nullable(),
      lastSuccessAt: Timestamp.nullable(),
      queueDepth: z.number().int().nullable(),
    })
    .nullable(),
});

/** `POST /operator/services`, 201: the credential is shown once. */
export const RegisteredServiceAnswerSchema = z.strictObject({ service_id: z.string(), uri: z.string(), credential: z.string() });

/** `GET /operator/humans`. */
export const OperatorHumanListSchema = z.strictObject({ humans: z.array(z.strictObject({ id: z.string(), name: z.string(), created_at: Timestamp })) });
