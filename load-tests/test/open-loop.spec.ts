import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRequest, openLoop } from '../support/load.js';

describe('openLoop', () => {
  let server: Server;
  let port: number;
  let received = 0;

  beforeAll(async () => {
    // Allows every request, as the verifier's and the floor's allow answers begin.
    server = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        received += 1;
        response.writeHead(200, { 'content-type': 'application/json' }).end('{"allow":true}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('sends the lead-in and the measured window on the clock, counts every answer and times only the measured ones', async () => {
    const message = buildRequest({ port, path: '/v1/verify', headers: {} }, '{}');
    const before = received;
    const result = await openLoop({ port, rate: 200, durationS: 0.25, leadS: 0.1, connections: 8, next: () => message });
    // 200/s over 0.35 s: 70 requests, 20 of them in the lead-in.
    expect(result.scheduled).toBe(70);
    expect(received - before).toBe(70);
    expect(result.answered).toBe(70);
    expect(result.allowed).toBe(70);
    expect(result.latencyMs).toHaveLength(50);
    expect(result.sendLagMs).toHaveLength(50);
    expect(result.serviceMs).toHaveLength(50);
    expect(result.answers).toHaveLength(50);
    for (const [at, answered] of result.answers) {
      expect(at).toBeGreaterThanOrEqual(result.measuredFrom);
      expect(answered).toBeGreaterThanOrEqual(at);
    }
    expect(result.errors.size).toBe(0);
  });

  it('times every request without a lead-in', async () => {
    const message = buildRequest({ port, path: '/v1/verify', headers: {} }, '{}');
    const result = await openLoop({ port, rate: 100, durationS: 0.2, connections: 4, next: () => message });
    expect(result.scheduled).toBe(20);
    expect(result.latencyMs).toHaveLength(20);
    expect(result.answers).toHaveLength(20);
  });
});
