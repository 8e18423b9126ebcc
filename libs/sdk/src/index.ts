export * from './service-provider.js';
export * from './agent/index.js';
