/**
 * The load generator of the verify benchmarks: a closed loop (N keep-alive connections, each sending
 * its next request as soon as the previous answer is in, for D seconds) and an open loop (requests
 * scheduled by the clock at a fixed rate whether or not earlier ones were answered).
 *
 * Lean on purpose: it shares two cores with the servers it measures. Every request is a complete
 * HTTP/1.1 message built before the measured window ({@link buildRequest}, its DPoP proof already
 * signed); a connection is a bare socket that writes it and reads one answer (status line,
 * `content-length` or chunked body), without node:http's per-request objects. One request at a time
 * per connection, no pipelining.
 *
 * Open-loop latency is measured from the time a request was scheduled to be sent, not from when it
 * was sent: a server that stalls makes every request scheduled during the stall late, and that wait
 * is counted (no coordinated omission). How late the generator itself sent (timer granularity, a
 * busy event loop, no free connection) is reported apart as `sendLagMs`.
 */
import { connect, type Socket } from 'node:net';

export interface Endpoint {
  /** Always 127.0.0.1. */
  port: number;
  path: string;
  /** Sent with every request (for example `authorization`). */
  headers: Record<string, string>;
}

/**
 * One HTTP/1.1 POST of a JSON body, ready to be written to a socket. Allocated once at its exact
 * size outside Node's buffer pool: a pool of them holds no 8 KiB slabs kept alive by one slice.
 */
export function buildRequest(endpoint: Endpoint, body: string): Buffer {
  const length = Buffer.byteLength(body);
  let head = `POST ${endpoint.path} HTTP/1.1\r\nhost: 127.0.0.1:${endpoint.port}\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n`;
  for (const [name, value] of Object.entries(endpoint.headers)) head += `${name}: ${value}\r\n`;
  head += '\r\n';
  const message = Buffer.allocUnsafeSlow(head.length + length);
  message.write(head, 0, 'latin1');
  message.write(body, head.length, 'utf8');
  return message;
}

export interface Answer {
  status: number;
  body: string;
}

/** What a verify answer says: allowed, denied (with its `error`), or not a decision at all. */
export type Verdict = { kind: 'allowed' } | { kind: 'denied'; error: string } | { kind: 'error'; error: string };

/** Reads a `POST /v1/verify` answer (docs/verifier.md): 200 with `allow` true or false, anything else an error. */
export function verdictOf(answer: Answer): Verdict {
  let json: { allow?: unknown; error?: unknown } | undefined;
  try {
    json = JSON.parse(answer.body) as { allow?: unknown; error?: unknown };
  } catch {
    json = undefined;
  }
  if (answer.status === 200 && json?.allow === true) return { kind: 'allowed' };
  if (answer.status === 200 && json?.allow === false) return { kind: 'denied', error: String(json.error) };
  return { kind: 'error', error: `HTTP ${answer.status} ${typeof json?.error === 'string' ? json.error : answer.body.slice(0, 80)}` };
}

const HEADER_END = Buffer.from('\r\n\r\n');

/** A keep-alive connection to 127.0.0.1 carrying one request at a time; reconnects after a close or an error. */
export class Connection {
  private socket: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private buffer: Buffer = Buffer.alloc(0);
  private waiting: { done: (answer: Answer) => void; fail: (error: Error) => void } | undefined;

  constructor(private readonly port: number) {}

  /** Opens the socket now, so that the first measured request does not pay for the handshake. */
  async open(): Promise<void> {
    await this.connected();
  }

  async request(message: Buffer): Promise<Answer> {
    const socket = await this.connected();
    return new Promise<Answer>((done, fail) => {
      this.waiting = { done, fail };
      socket.write(message);
    });
  }

  /** Closes the socket; a request in flight fails. */
  destroy(): void {
    this.socket?.destroy();
    this.drop(new Error('connection destroyed'));
  }

  private connected(): Promise<Socket> {
    if (this.socket) return Promise.resolve(this.socket);
    this.connecting ??= new Promise<Socket>((done, fail) => {
      const socket = connect({ host: '127.0.0.1', port: this.port, noDelay: true });
      socket.once('connect', () => {
        this.connecting = undefined;
        this.socket = socket;
        done(socket);
      });
      socket.on('data', (chunk: Buffer) => this.received(chunk));
      socket.on('error', (error) => {
        this.connecting = undefined;
        fail(error);
        this.drop(error);
      });
      socket.on('close', () => {
        if (this.socket === socket) this.drop(new Error('connection closed by the server'));
      });
    });
    return this.connecting;
  }

  private drop(error: Error): void {
    this.socket = undefined;
    this.buffer = Buffer.alloc(0);
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.fail(error);
  }

  private received(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const headerEnd = this.buffer.indexOf(HEADER_END);
    if (headerEnd < 0) return;
    const head = this.buffer.toString('latin1', 0, headerEnd);
    const status = Number(head.slice(9, 12));
    const start = headerEnd + 4;
    let body: string;
    let end: number;
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (length) {
      end = start + Number(length[1]);
      if (this.buffer.length < end) return;
      body = this.buffer.toString('utf8', start, end);
    } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      let decoded: { body: string; end: number } | undefined;
      try {
        decoded = dechunk(this.buffer, start);
      } catch (error) {
        this.socket?.destroy();
        this.drop(error as Error);
        return;
      }
      if (!decoded) return;
      ({ body, end } = decoded);
    } else if (status === 204 || status === 304) {
      body = '';
      end = start;
    } else {
      this.socket?.destroy();
      this.drop(new Error('answer without content-length or chunked body'));
      return;
    }
    this.buffer = this.buffer.length > end ? this.buffer.subarray(end) : Buffer.alloc(0);
    const waiting = this.waiting;
    this.waiting = undefined;
    if (/\r\nconnection: *close/i.test(head)) {
      const socket = this.socket;
      this.socket = undefined;
      socket?.destroy();
    }
    waiting?.done({ status, body });
  }
}

/** A complete chunked body starting at `start`, or undefined while bytes are missing. */
function dechunk(buffer: Buffer, start: number): { body: string; end: number } | undefined {
  const parts: Buffer[] = [];
  let at = start;
  for (;;) {
    const lineEnd = buffer.indexOf('\r\n', at);
    if (lineEnd < 0) return undefined;
    const size = parseInt(buffer.toString('latin1', at, lineEnd), 16);
    if (Number.isNaN(size)) throw new Error('malformed chunk size');
    if (size === 0) {
      // No trailers from the servers measured here: the last chunk is followed by one CRLF.
      if (buffer.length < lineEnd + 4) return undefined;
      return { body: Buffer.concat(parts).toString('utf8'), end: lineEnd + 4 };
    }
    if (buffer.length < lineEnd + 2 + size + 2) return undefined;
    parts.push(buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

/** The counts and latencies of one run. */
export interface RunResult {
  /** Answered (allowed or denied) and failed requests. */
  answered: number;
  allowed: number;
  /** Denials by `error`. */
  denied: Map<string, number>;
  /** Requests without a decision (HTTP status other than 200, socket errors), by kind. */
  errors: Map<string, number>;
  /** Latency of every answered request, ms (open loop: from its scheduled send time). */
  latencyMs: number[];
  /** From the first send to the last answer. */
  elapsedS: number;
  /** The pool of prepared requests ran out before the end. */
  exhausted: boolean;
}

export interface OpenLoopResult extends RunResult {
  /** Requests the schedule called for, and those actually sent. */
  scheduled: number;
  sent: number;
  /** The schedule's length. */
  windowS: number;
  /** How long after its scheduled time each request was written, ms. */
  sendLagMs: number[];
  /** From the actual send to the answer, ms: what a generator blind to coordinated omission would report. */
  serviceMs: number[];
  /**
   * Every answered request as [scheduled send time, answer time] (`performance.now()`, ms), in
   * order of answer: to line the slow ones up with what the machine was doing then.
   */
  answers: [number, number][];
  /** When the measured window began (`performance.now()`, ms), after the lead-in. */
  measuredFrom: number;
}

function emptyResult(): RunResult {
  return { answered: 0, allowed: 0, denied: new Map(), errors: new Map(), latencyMs: [], elapsedS: 0, exhausted: false };
}

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** Counts an answer by its verdict, and keeps its latency unless it is `undefined` (a lead-in request). */
function record(result: RunResult, answer: Answer, latencyMs: number | undefined): void {
  const verdict = verdictOf(answer);
  if (verdict.kind === 'error') {
    count(result.errors, verdict.error);
    return;
  }
  result.answered += 1;
  if (latencyMs !== undefined) result.latencyMs.push(latencyMs);
  if (verdict.kind === 'allowed') result.allowed += 1;
  else count(result.denied, verdict.error);
}

function failed(result: RunResult, error: unknown): void {
  count(result.errors, `socket: ${error instanceof Error ? error.message : String(error)}`);
}

/** How long after the end of a run the generator waits for answers still in flight before it gives up on them. */
const GRACE_MS = 10_000;

export interface ClosedLoopOptions {
  port: number;
  connections: number;
  durationS: number;
  /** The next prepared request (see {@link buildRequest}), or undefined when the pool is empty. */
  next: () => Buffer | undefined;
}

/** `connections` clients, each sending its next request as soon as its previous one is answered, for `durationS`. */
export async function closedLoop(options: ClosedLoopOptions): Promise<RunResult> {
  const result = emptyResult();
  const connections = Array.from({ length: options.connections }, () => new Connection(options.port));
  await Promise.all(connections.map((c) => c.open()));
  const started = performance.now();
  const deadline = started + options.durationS * 1000;
  const watchdog = setTimeout(() => connections.forEach((c) => c.destroy()), options.durationS * 1000 + GRACE_MS);
  await Promise.all(
    connections.map(async (connection) => {
      while (performance.now() < deadline) {
        const message = options.next();
        if (!message) {
          result.exhausted = true;
          return;
        }
        const sentAt = performance.now();
        try {
          const answer = await connection.request(message);
          record(result, answer, performance.now() - sentAt);
        } catch (error) {
          failed(result, error);
          // A server that refuses connections would otherwise make this loop spin.
          if (performance.now() - sentAt < 1) await new Promise((done) => setTimeout(done, 1));
        }
      }
    }),
  );
  result.elapsedS = (performance.now() - started) / 1000;
  clearTimeout(watchdog);
  connections.forEach((c) => c.destroy());
  return result;
}

export interface OpenLoopOptions {
  port: number;
  /** Requests per second. */
  rate: number;
  /** The measured window. */
  durationS: number;
  /**
   * A lead-in before the measured window, at the same rate, whose requests are sent, answered and
   * counted (allowed, denied, errors) but not timed: the first tens of milliseconds of a run carry
   * its start (fresh connections, the generator's collection of the pool it just signed, what the
   * previous run left), not the steady state. Default 0.
   */
  leadS?: number;
  /** Most connections in use at once; a request scheduled while all are busy waits for one (and that wait counts). */
  connections: number;
  next: () => Buffer | undefined;
}

/**
 * Sends `rate` requests per second for `leadS` + `durationS`, on the clock, then waits for the
 * answers; the timings (latency, lag, service time, answers) are those of the measured window.
 */
export async function openLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const leadS = options.leadS ?? 0;
  const result: OpenLoopResult = { ...emptyResult(), scheduled: Math.round(options.rate * (leadS + options.durationS)), sent: 0, windowS: options.durationS, sendLagMs: [], serviceMs: [], answers: [], measuredFrom: 0 };
  const connections = Array.from({ length: options.connections }, () => new Connection(options.port));
  await Promise.all(connections.map((c) => c.open()));
  const idle = [...connections];
  const queue: { message: Buffer; at: number }[] = [];
  const interval = 1000 / options.rate;
  const start = performance.now() + 1;
  const measuredFrom = start + leadS * 1000;
  result.measuredFrom = measuredFrom;
  let index = 0;
  let inFlight = 0;
  let timer: NodeJS.Timeout | undefined;
  let lastAnswer = start;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((done) => (finish = done));

  const fire = (connection: Connection, message: Buffer, at: number): void => {
    const sentAt = performance.now();
    const measured = at >= measuredFrom;
    result.sent += 1;
    if (measured) result.sendLagMs.push(sentAt - at);
    connection.request(message).then(
      (answer) => {
        const now = performance.now();
        lastAnswer = now;
        record(result, answer, measured ? now - at : undefined);
        if (measured) {
          result.serviceMs.push(now - sentAt);
          result.answers.push([at, now]);
        }
        release(connection);
      },
      (error: unknown) => {
        failed(result, error);
        release(connection);
      },
    );
  };
  const release = (connection: Connection): void => {
    inFlight -= 1;
    // A queued request was counted in flight when it was scheduled.
    const waiting = queue.shift();
    if (waiting) fire(connection, waiting.message, waiting.at);
    else idle.push(connection);
    pump();
  };
  const pump = (): void => {
    const now = performance.now();
    while (index < result.scheduled && start + index * interval <= now) {
      const message = options.next();
      if (!message) {
        result.exhausted = true;
        result.scheduled = index;
        break;
      }
      const at = start + index * interval;
      index += 1;
      inFlight += 1;
      const connection = idle.pop();
      if (connection) fire(connection, message, at);
      else queue.push({ message, at });
    }
    if (index < result.scheduled) {
      if (!timer) {
        timer = setTimeout(
          () => {
            timer = undefined;
            pump();
          },
          Math.max(0, start + index * interval - performance.now()),
        );
      }
    } else if (inFlight === 0) finish();
  };

  const watchdog = setTimeout(() => connections.forEach((c) => c.destroy()), (leadS + options.durationS) * 1000 + GRACE_MS);
  pump();
  await finished;
  clearTimeout(watchdog);
  clearTimeout(timer);
  result.elapsedS = (lastAnswer - start) / 1000;
  connections.forEach((c) => c.destroy());
  return result;
}

/** `<n> x <kind>; ...`, or `none`. */
export function describeCounts(map: Map<string, number>): string {
  return map.size === 0 ? 'none' : [...map].map(([kind, n]) => `${n} x ${kind}`).join('; ');
}
