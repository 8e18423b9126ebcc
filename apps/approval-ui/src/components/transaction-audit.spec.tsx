import type { TransactionAudit } from '@writ/contracts';
import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { AuditVerdictLine, TransactionAuditSection, verdictText } from './transaction-audit';

const ROOT = 'IJkPxQrh5SJ04hX0okK/RiZ+5twRFLCuwKaUGmdKivA=';
const LEAF = 'hqG8UYUIcVxvtJh1MR6JYQ+T+IMohGOkelIe6y20RR8=';
const verified = { status: 'verified', size: 18, root: ROOT, at: '2026-12-07T13:58:00.000Z' } as const;

describe('the audit verdict on a transaction page', () => {
  it('says how far the log was verified, as a status', () => {
    expect(verdictText(verified)).toMatch(/^Audit log verified up to event 18 at .*2026/);
    expect(renderToStaticMarkup(<AuditVerdictLine verdict={verified} />)).toMatch(/^<p role="status" class="status">Audit log verified up to event 18 at /);
  });

  it('says not verified yet, neither good nor bad', () => {
    expect(renderToStaticMarkup(<AuditVerdictLine verdict={{ status: 'unverified' }} />)).toBe('<p role="status" class="status pending">Audit log not verified yet</p>');
  });

  it('puts BROKEN in an alert, with the seq, the reason, when, and how far the log was last intact', () => {
    const html = renderToStaticMarkup(
      <AuditVerdictLine verdict={{ status: 'broken', seq: 7, reason: 'hash does not match the event content', at: '2026-12-07T14:00:00.000Z', verified: { size: 6, at: '2026-12-07T13:00:00.000Z' } }} />,
    );
    expect(html).toContain('<div class="status broken" role="alert"><p>Audit log BROKEN at event 7: hash does not match the event content</p>');
    expect(html).toContain('It was last found intact up to event 6 at ');
    expect(renderToStaticMarkup(<AuditVerdictLine verdict={{ status: 'broken', seq: 1, reason: 'x', at: '2026-12-07T14:00:00.000Z', verified: null }} />)).toContain('It was never found intact before.');
  });
});

describe('the audit region of a transaction page', () => {
  const audit: TransactionAudit = {
    verdict: verified,
    checkpoint: { size: 18, root: ROOT, note: 'writ.test/audit\n18\nIJkP…\n\n— writ.test/audit abc=\n' },
    events: [
      { seq: 15, type: 'token.issued', leaf_hash: LEAF, proof: [ROOT, LEAF] },
      { seq: 19, type: 'token.delegated', leaf_hash: LEAF, proof: null },
    ],
    omitted: 0,
  };

  it('says per event whether it is in the checkpoint, with its proof in a details element, and says the browser checks nothing', () => {
    const html = renderToStaticMarkup(<TransactionAuditSection audit={audit} />);
    expect(html).toContain('Event 15 <span class="muted mono">(token.issued)</span>: included in checkpoint of size 18');
    expect(html).toContain('Event 19 <span class="muted mono">(token.delegated)</span>: not yet in a checkpoint');
    expect(html).toContain(`<summary>Inclusion proof</summary>`);
    expect(html).toContain(`<pre class="mono">${ROOT}\n${LEAF}</pre>`);
    expect(html).toContain('this page does not check the log itself');
    expect(html).toContain('1 of these events came after that verification and are not covered by it yet.');
    expect(html).toContain('Latest checkpoint (size 18), as the registry signed it');
  });

  it('claims no inclusion without a checkpoint', () => {
    const html = renderToStaticMarkup(<TransactionAuditSection audit={{ ...audit, checkpoint: null }} />);
    expect(html).not.toContain('included in checkpoint');
    expect(html).toContain('The registry has not signed a checkpoint yet.');
  });
});
