/**
 * Runs async critical sections one at a time, in arrival order, within this process.
 *
 * Embedded PGlite has a single session: two TypeORM transactions started concurrently would
 * interleave their statements in one transaction. Every write transaction therefore goes through
 * this lock in embedded mode; on PostgreSQL it keeps audit appends from queueing pool connections
 * on the advisory lock.
 */
export class SerialLock {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(section: () => Promise<T>): Promise<T> {
    const result = this.tail.then(section);
    // The next section waits for this one whatever its outcome.
    this.tail = result.catch(() => undefined);
    return result;
  }
}
