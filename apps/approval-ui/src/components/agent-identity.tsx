import { formatDateTime } from '../lib/format';
import type { HumanGrantAgent } from '@writ/contracts';

/**
 * Which agent asks, so that two agents of one name can be told apart (issue 17): its name, its
 * client id, when it was enrolled, and a warning when another of the person's agents shares the
 * name (compared after NFKC and lower-casing, by the registry).
 */
export function AgentIdentity({ agent }: { agent: HumanGrantAgent }) {
  return (
    <>
      {agent.name} <span className="muted mono">({agent.client_id})</span>
      {agent.enrolled_at ? <span className="muted">, enrolled {formatDateTime(agent.enrolled_at)}</span> : null}
      {agent.name_shared ? (
        <>
          {' '}
          <span className="badge deny" role="note">
            Another of your agents has this name: check the client id
          </span>
        </>
      ) : null}
    </>
  );
}

/**
 * The purpose as what it is: the agent's own words, not Writ's. Quoted, so that nothing the agent
 * wrote reads as a label of the page.
 */
export function AgentWords({ purpose, empty }: { purpose: string | null; empty: string }) {
  if (!purpose?.trim()) return <span className="muted">{empty}</span>;
  return (
    <>
      <span className="muted">The agent says: </span>
      <q className="agent-words">{purpose}</q>
    </>
  );
}
