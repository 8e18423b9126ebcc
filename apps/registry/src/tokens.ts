/** Injection tokens for values that are not classes. */
export const CONFIG = Symbol('RegistryConfig');
export const CLOCK = Symbol('Clock');
/** The token endpoint's `DpopNonces`, or `null` when `WRIT_DPOP_NONCE` is off. */
export const DPOP_NONCES = Symbol('DpopNonces');
/** The `ChangeRelay` between registry processes on one PostgreSQL, or `null` on embedded storage. */
export const CHANGE_RELAY = Symbol('ChangeRelay');
