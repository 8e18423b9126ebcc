import { DatabaseError } from 'pg';
import { QueryFailedError } from 'typeorm';
import { describe, expect, it } from 'vitest';
import { isDatabaseUnreachable } from '../src/infra/database.js';

/** A PostgreSQL error as node-postgres reports it, with its SQLSTATE. */
function pgError(code: string, message: string): DatabaseError {
  const error = new DatabaseError(message, message.length, 'error');
  error.code = code;
  return error;
}

function refused(): Error {
  return Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
}

/**
 * Which errors mean "the database cannot be reached now" (answered 503 temporarily_unavailable,
 * issue 19) rather than a statement that failed (500 server_error, or the caller's own mapping).
 */
describe('isDatabaseUnreachable', () => {
  it.each([
    ['a refused connection', refused()],
    ['a refused connection under another error', new Error('cannot open', { cause: refused() })],
    ['PostgreSQL shutting down (57P01)', pgError('57P01', 'terminating connection due to administrator command')],
    ['PostgreSQL starting up (57P03)', pgError('57P03', 'the database system is starting up')],
    ['a connection exception (class 08)', pgError('08006', 'connection failure')],
    ['a connection that ended', new Error('Connection terminated unexpectedly')],
    ['a client that is not queryable', new Error('Client has encountered a connection error and is not queryable')],
    ['a connect timeout', new Error('timeout exceeded when trying to connect')],
    ['TypeORM wrapping a lost connection', new QueryFailedError('SELECT 1', [], pgError('57P01', 'terminating connection due to administrator command'))],
  ])('counts %s', (_, error) => {
    expect(isDatabaseUnreachable(error)).toBe(true);
  });

  it.each([
    ['a syntax error (42601)', pgError('42601', 'syntax error at or near "SELEC"')],
    ['a unique violation (23505)', pgError('23505', 'duplicate key value violates unique constraint')],
    ['a query canceled (57014)', pgError('57014', 'canceling statement due to statement timeout')],
    ['TypeORM wrapping a failed statement', new QueryFailedError('INSERT', [], pgError('23505', 'duplicate key'))],
    ['a plain error', new Error('something else')],
    ['a string', 'ECONNREFUSED'],
    ['nothing', undefined],
  ])('does not count %s', (_, error) => {
    expect(isDatabaseUnreachable(error)).toBe(false);
  });
});
