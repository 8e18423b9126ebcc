import type { FastifyReply } from 'fastify';

/**
 * The answer to an agent's `?wait=N` read: `read()` at once when N is 0, else `wait(ms, signal)`,
 * whose signal aborts when the client goes away; then nobody is listening, so it answers null
 * quietly rather than logging a server error. A wait first takes one of the agent's long-poll
 * slots from `hold` (which throws `429 rate_limited` when they are all taken, ADR 0020) and gives
 * it back when it answers or the client leaves.
 */
export async function longPoll<T>(
  reply: FastifyReply,
  seconds: number,
  read: () => Promise<T | null>,
  wait: (timeoutMs: number, signal: AbortSignal) => Promise<T | null>,
  hold: () => () => void,
): Promise<T | null> {
  if (seconds === 0) return read();
  const release = hold();
  const gone = new AbortController();
  reply.raw.once('close', () => {
    release();
    gone.abort(new Error('client closed the connection'));
  });
  try {
    return await wait(seconds * 1000, gone.signal);
  } catch (error) {
    if (gone.signal.aborted) return null;
    throw error;
  } finally {
    release();
  }
}
