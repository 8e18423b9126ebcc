import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { writVerifier } from '@writ/sdk';

/** The capability types the travel platform's four providers offer, and their actions. */
export const CATALOGUE = [
  { type: 'flight', actions: ['search', 'book'] },
  { type: 'hotel', actions: ['search', 'book'] },
  { type: 'payment', actions: ['transact'] },
  { type: 'notification', actions: ['write'] },
];

/** The four example providers, running. */
export interface Providers {
  /** The registered service's URI; each provider lives under its own path. */
  base: string;
  flights: string;
  hotels: string;
  payments: string;
  notifications: string;
  /** What the providers did, for the trace: only allowed requests reach a handler. */
  log: { provider: string; what: string }[];
  close(): Promise<void>;
}

interface Operator {
  registryUrl: string;
  token: string;
}

/** Registers the travel platform with the registry through the operator API; answers its id and verifier credential. */
async function registerService(operator: Operator, uri: string): Promise<{ serviceId: string; credential: string }> {
  const res = await fetch(`${operator.registryUrl}/operator/services`, {
    method: 'POST',
    headers: { authorization: `Bearer ${operator.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ uri, display_name: 'Travel demo (flights, hotels, payments, notifications)', catalogue: CATALOGUE }),
  });
  const body = (await res.json()) as { service_id?: string; credential?: string; error_description?: string };
  if (res.status !== 201 || !body.service_id || !body.credential) throw new Error(`could not register the demo service: ${res.status} ${body.error_description ?? ''}`);
  return { serviceId: body.service_id, credential: body.credential };
}

/**
 * Four small service providers (flights, hotels, payments, notifications) on one loopback
 * port, each under its own path, every route protected by the SDK's `writVerifier` middleware:
 * a request reaches its handler only if the verifier allowed it.
 *
 * They share one registration because a grant names one service (the registry's rule); the
 * capability locations keep them apart: a token for `/flights` does nothing at `/payments`.
 */
export async function startProviders(options: { operator: Operator; verifierUrl: string }): Promise<Providers> {
  const app: FastifyInstance = Fastify({ logger: false });
  // Listen first, on a free port, so the registered URI is the real one.
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  const base = `http://127.0.0.1:${port}`;
  await app.close();

  const { serviceId, credential } = await registerService(options.operator, base);
  const server = Fastify({ logger: false });
  const log: Providers['log'] = [];
  await server.register(writVerifier, { verifierUrl: options.verifierUrl, serviceId, credential, publicUrl: base, logger: { warn: () => undefined } });

  // A grant with money limits makes every request state what it moves (the verifier fails closed
  // when a request does not): routes that move no money say so.
  const free = () => ({ amount: 0, currency: 'EUR' });

  server.get('/flights/search', { preHandler: server.writ.require({ action: 'search', amount: free }) }, (request) => {
    const to = (request.query as { to?: string }).to ?? 'LIS';
    log.push({ provider: 'flights', what: `search to ${to}` });
    return { flights: [{ id: 'TP1234', to, price: 420, currency: 'EUR' }] };
  });
  server.post(
    '/flights/bookings',
    { preHandler: server.writ.require({ action: 'book', amount: free, resource: (r) => `flight:${(r.body as { flight?: string }).flight ?? ''}` }) },
    (request) => {
      log.push({ provider: 'flights', what: `booked ${(request.body as { flight: string }).flight}` });
      return { booking: `FB-${randomUUID().slice(0, 8)}` };
    },
  );
  server.get('/hotels/search', { preHandler: server.writ.require({ action: 'search', amount: free }) }, () => {
    log.push({ provider: 'hotels', what: 'search in Lisbon' });
    return { hotels: [{ id: 'alfama-inn', price: 380, currency: 'EUR' }] };
  });
  server.post(
    '/hotels/reservations',
    { preHandler: server.writ.require({ action: 'book', amount: free, resource: (r) => `hotel:${(r.body as { hotel?: string }).hotel ?? ''}` }) },
    (request) => {
      log.push({ provider: 'hotels', what: `reserved ${(request.body as { hotel: string }).hotel}` });
      return { reservation: `HR-${randomUUID().slice(0, 8)}` };
    },
  );
  server.post(
    '/payments/charges',
    {
      preHandler: server.writ.require({
        action: 'transact',
        resource: (r) => `payee:${(r.body as { payee?: string }).payee ?? ''}`,
        amount: (r) => {
          const body = r.body as { amount?: number; currency?: string };
          return typeof body.amount === 'number' && typeof body.currency === 'string' ? { amount: body.amount, currency: body.currency } : undefined;
        },
      }),
    },
    (request) => {
      const body = request.body as { amount: number; currency: string; payee: string };
      log.push({ provider: 'payments', what: `charged ${body.amount} ${body.currency} to ${body.payee}` });
      return { charge: `CH-${randomUUID().slice(0, 8)}`, remaining: request.writ?.remaining ?? null };
    },
  );
  server.post('/notifications/messages', { preHandler: server.writ.require({ action: 'write', amount: free }) }, (request) => {
    log.push({ provider: 'notifications', what: `sent "${(request.body as { text: string }).text}"` });
    return { sent: true };
  });

  await server.listen({ host: '127.0.0.1', port });
  return {
    base,
    flights: `${base}/flights`,
    hotels: `${base}/hotels`,
    payments: `${base}/payments`,
    notifications: `${base}/notifications`,
    log,
    close: () => server.close(),
  };
}
