'use client';

import { useCallback, useEffect, useRef, useState } from 'react';
import { ConfirmAction } from '../../components/confirm-action';
import { ErrorText, LoadState, StatusText } from '../../components/messages';
import { confirmWithPasskey } from '../../components/passkey-confirmation';
import { useApi } from '../../components/session';
import { useLoad } from '../../components/use-load';
import { describeError } from '../../lib/errors';
import { formatDateTime } from '../../lib/format';
import type { Agent, DisabledAgentAnswer, EnrollmentToken } from '@writ/contracts';

/** The person's agents: disable one, or let a new one enrol with a one-time token. */
export default function AgentsPage() {
  const api = useApi();
  const load = useCallback((signal: AbortSignal) => api.get<{ agents: Agent[] }>('/me/agents', signal), [api]);
  const { state } = useLoad(load);

  return (
    <>
      <title>Your agents · Writ</title>
      <h1>Your agents</h1>
      <EnrollmentTokenSection />
      <h2>Enrolled agents</h2>
      <LoadState loading={state.status === 'loading'} error={state.status === 'error' ? state.message : undefined} />
      {state.status === 'ready' && state.data.agents.length === 0 ? (
        <p>No agent has enrolled yet. Create an enrollment token and give it to your agent.</p>
      ) : null}
      {state.status === 'ready'
        ? state.data.agents.map((agent) => <AgentCard key={agent.client_id} agent={agent} />)
        : null}
    </>
  );
}

function AgentCard({ agent: initial }: { agent: Agent }) {
  const api = useApi();
  const [agent, setAgent] = useState(initial);
  const [error, setError] = useState<string>();
  const [outcome, setOutcome] = useState('');
  const heading = useRef<HTMLHeadingElement>(null);

  // Once disabled, its buttons are gone: the focus goes to its heading rather than to the top of the page.
  useEffect(() => {
    if (outcome !== '') heading.current?.focus();
  }, [outcome]);

  async function disable(): Promise<boolean> {
    setError(undefined);
    try {
      const answer = await api.post<DisabledAgentAnswer>(
        `/me/agents/${encodeURIComponent(agent.client_id)}/disable`,
        {},
      );
      setAgent((current) => ({ ...current, status: answer.status, disabled_at: new Date().toISOString() }));
      setOutcome('Disabled');
      return true;
    } catch (caught) {
      setError(describeError(caught));
      return false;
    }
  }

  return (
    <article className="card" aria-label={`Agent ${agent.name}`}>
      <h3 ref={heading} tabIndex={-1}>
        {agent.name}
      </h3>
      {agent.name_shared ? (
        <p>
          <span className="badge deny" role="note">
            Another of your agents has this name: check the client id
          </span>
        </p>
      ) : null}
      <dl className="facts">
        <dt>Client id</dt>
        <dd className="mono">{agent.client_id}</dd>
        <dt>Status</dt>
        <dd>{agent.status === 'disabled' ? 'Disabled: its calls are refused' : agent.status === 'active' ? 'Active' : agent.status}</dd>
        <dt>Enrolled</dt>
        <dd>{formatDateTime(agent.created_at)}</dd>
        {agent.disabled_at ? (
          <>
            <dt>Disabled</dt>
            <dd>{formatDateTime(agent.disabled_at)}</dd>
          </>
        ) : null}
      </dl>
      {agent.status !== 'disabled' ? (
        <ConfirmAction
          label="Disable"
          confirmLabel="Disable now"
          question="Disable this agent? Every call it makes is refused from now on, with every token it holds."
          onConfirm={disable}
        />
      ) : null}
      <ErrorText>{error}</ErrorText>
      <StatusText>{outcome}</StatusText>
    </article>
  );
}

function EnrollmentTokenSection() {
  const api = useApi();
  const [token, setToken] = useState<EnrollmentToken>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [status, setStatus] = useState('');
  const field = useRef<HTMLInputElement>(null);

  async function create(): Promise<void> {
    setBusy(true);
    setError(undefined);
    setStatus('');
    try {
      // A fresh passkey confirmation first: a stolen session cookie alone must not enrol an agent (ADR 0018).
      const confirmation = await confirmWithPasskey(api, 'enrollment_token');
      const created = await api.post<EnrollmentToken>('/me/agents/enrollment-tokens', { confirmation });
      setToken(created);
      setStatus('Enrollment token created.');
    } catch (caught) {
      setError(describeError(caught));
    } finally {
      setBusy(false);
    }
  }

  async function copy(): Promise<void> {
    if (token === undefined) return;
    try {
      await navigator.clipboard.writeText(token.token);
      setStatus('Copied to the clipboard.');
    } catch {
      // No clipboard access (an http origin that is not localhost, or a refusal): select the text instead.
      field.current?.select();
      setStatus('Could not copy: the token is selected, copy it with your keyboard.');
    }
  }

  return (
    <section aria-labelledby="enrol-heading" className="card">
      <h2 id="enrol-heading">Enrol a new agent</h2>
      <p>
        An agent registers itself with a one-time enrollment token. Create one, give it to the agent (for example in
        its configuration), and it appears below once it has registered.
      </p>
      <div className="actions">
        <button type="button" onClick={() => void create()} disabled={busy} aria-busy={busy}>
          Create an enrollment token
        </button>
      </div>
      <ErrorText>{error}</ErrorText>
      {token !== undefined ? (
        <>
          <label htmlFor="enrollment-token">Enrollment token</label>
          <div className="token-field">
            <input
              ref={field}
              id="enrollment-token"
              type="text"
              readOnly
              value={token.token}
              aria-describedby="enrollment-token-note"
              onFocus={(event) => event.target.select()}
            />
            <button type="button" className="secondary" onClick={() => void copy()}>
              Copy
            </button>
          </div>
          <p id="enrollment-token-note" className="hint">
            It works once, until {formatDateTime(token.expires_at)}, and is shown only now: it will not be shown again.
          </p>
        </>
      ) : null}
      <StatusText>{status}</StatusText>
    </section>
  );
}
