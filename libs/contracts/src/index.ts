// Writ's wire contracts: each schema is the one definition both ends of a wire import.
export * from './human-api.js';
export * from './human-errors.js';
export * from './registry-api.js';
export * from './redis.js';
export * from './verify.js';
