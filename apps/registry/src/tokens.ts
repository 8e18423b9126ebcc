/** Injection tokens for values that are not classes. */
export const CONFIG = Symbol('RegistryConfig');
export const CLOCK = Symbol('Clock');
