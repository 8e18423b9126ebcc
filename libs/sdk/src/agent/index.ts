export {
  type ActorTokenOptions,
  type AgentConnectionOptions,
  type AgentFetchOptions,
  type DelegateOptions,
  type EnrollOptions,
  type GrantRequest,
  type LoadOptions,
  type TokenOptions,
  type TokenSource,
  type WaitOptions,
  WritAgent,
  type WritAgentOptions,
} from './agent.js';
export { capability, CapabilityBuilder, type CapabilityInput, envelope, EnvelopeBuilder, type EnvelopeInput } from './builders.js';
export { GrantDenied, GrantExpired, GrantRevoked, StepUpDenied, StepUpExpired, WaitTimeout, writDenialOf, WritResponseError } from './errors.js';
export { AgentKey, AgentKeyFileError, type AgentKeyFileProblem, type AgentPublicJwk, type AgentRegistration, loadOrCreateAgentKey } from './key.js';
export type { Grant, GrantStatus, RegistryMetadata, RequestedGrant, StepUp, TransactionToken } from './types.js';
