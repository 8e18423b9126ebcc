export * from './base64.js';
export * from './merkle.js';
export * from './note.js';
