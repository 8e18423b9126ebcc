import type { FastifyReply } from 'fastify';

/**
 * The answer to an agent's `?wait=N` read: `read()` at once when N is 0, else `wait(ms, signal)`,
 * whose signal aborts when the client goes away; then nobody is listening, so it answers null
 * quietly rather than logging a server error.
 */
export function longPoll<T>(
  reply: FastifyReply,
  seconds: number,
  read: () => Promise<T | null>,
  wait: (timeoutMs: number, signal: AbortSignal) => Promise<T | null>,
): Promise<T | null> {
  if (seconds === 0) return read();
  const gone = new AbortController();
  reply.raw.once('close', () => gone.abort(new Error('client closed the connection')));
  return wait(seconds * 1000, gone.signal).catch((error: unknown) => {
    if (gone.signal.aborted) return null;
    throw error;
  });
}
