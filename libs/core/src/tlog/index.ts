export * from './merkle.js';
export * from './note.js';
