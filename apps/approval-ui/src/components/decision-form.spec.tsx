import { describeCapability } from '@writ/core';
import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it, vi } from 'vitest';
import type { HumanGrant } from '@writ/contracts';
import { DecisionForm } from './decision-form';
import { SessionProvider } from './session';

vi.mock('next/navigation', () => ({ useRouter: () => ({ replace: vi.fn(), push: vi.fn() }) }));

const flights = { type: 'flight_booking', locations: ['https://flights.example'], actions: ['read', 'write'] };
const payments = { type: 'payment', locations: ['https://pay.example'], actions: ['transact'] };

const grant: HumanGrant = {
  grant_id: 'grt_1',
  status: 'pending',
  version: 1,
  agent: { client_id: 'agt_1', name: 'trip planner', enrolled_at: '2026-11-20T09:00:00.000Z', name_shared: false },
  service: { id: 'svc_1', uri: 'https://flights.example', name: 'Flights' },
  authorization_details: [flights, payments],
  envelope: { rate: { limit: 60, window_s: 60 }, amount: { currency: 'EUR', total_max: 500 }, max_uses: 10 },
  purpose: 'book a trip',
  duration_s: 3600,
  delegation: { max_depth: 1 },
  requested_at: '2026-11-25T10:00:00.000Z',
  decided_at: null,
  expires_at: '2026-11-25T10:15:00.000Z',
  revoked_at: null,
  receipt_hash: null,
};

function render(): string {
  return renderToStaticMarkup(
    <SessionProvider>
      <DecisionForm grant={grant} onDecided={() => undefined} />
    </SessionProvider>,
  );
}

describe('DecisionForm', () => {
  it('labels one checked checkbox per capability with its plain words', () => {
    const html = render();
    expect(html).toContain('<h2 id="decision-heading">Narrow before approving</h2>');
    grant.authorization_details.forEach((capability, i) => {
      expect(html).toMatch(new RegExp(`<input id="capability-${i}" type="checkbox" checked=""`));
      expect(html).toContain(`<label for="capability-${i}">${describeCapability(capability)}</label>`);
    });
  });

  it('offers a labelled number field for each limit the request has, capped at the requested value', () => {
    const html = render();
    expect(html).toContain('<label for="rateLimit">Requests allowed per window</label>');
    expect(html).toContain('<label for="totalMax">Most in total</label>');
    expect(html).toContain('<label for="maxUses">Most uses</label>');
    expect(html).toContain('<label for="durationMinutes">Duration in minutes</label>');
    // The request sets no per-request maximum: nothing to lower.
    expect(html).not.toContain('Most per request');
    const maxUses = /<input id="maxUses"[^>]*>/.exec(html)?.[0] ?? '';
    for (const attribute of ['type="number"', 'min="1"', 'max="10"', 'step="1"', 'value="10"', 'aria-describedby="maxUses-hint"']) {
      expect(maxUses).toContain(attribute);
    }
  });

  it('has the two passkey buttons and a live status region', () => {
    const html = render();
    expect(html).toContain('>Approve with passkey</button>');
    expect(html).toContain('>Deny with passkey</button>');
    expect(html).toContain('role="status"');
  });
});
