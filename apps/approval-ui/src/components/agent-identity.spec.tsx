import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { AgentIdentity, AgentWords } from './agent-identity';

const agent = { client_id: 'agt_1', name: 'Budget assistant', enrolled_at: '2026-11-20T09:00:00.000Z', name_shared: false };

describe('AgentIdentity', () => {
  it('shows the name with the client id and the enrollment date', () => {
    const html = renderToStaticMarkup(<AgentIdentity agent={agent} />);
    expect(html).toContain('Budget assistant <span class="muted mono">(agt_1)</span>');
    expect(html).toMatch(/, enrolled [^<]*2026/);
    expect(html).not.toContain('Another of your agents');
  });

  it('warns when another of the person’s agents has the same name', () => {
    const html = renderToStaticMarkup(<AgentIdentity agent={{ ...agent, name_shared: true }} />);
    expect(html).toContain('<span class="badge deny" role="note">Another of your agents has this name: check the client id</span>');
  });
});

describe('AgentWords', () => {
  it('labels the purpose as the agent’s own words, quoted', () => {
    expect(renderToStaticMarkup(<AgentWords purpose="Pay invoices" empty="none" />)).toBe(
      '<span class="muted">The agent says: </span><q class="agent-words">Pay invoices</q>',
    );
  });

  it('says so when there is none', () => {
    expect(renderToStaticMarkup(<AgentWords purpose={null} empty="The agent gave no reason." />)).toBe('<span class="muted">The agent gave no reason.</span>');
  });
});
