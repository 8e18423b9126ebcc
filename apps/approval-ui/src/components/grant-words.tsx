import { describeCapabilities, describeEnvelope } from '@writ/core';
import { describeDelegation, formatDateTime, formatDuration, serviceLabel } from '../lib/format';
import { AgentIdentity, AgentWords } from './agent-identity';
import type { HumanGrant } from '@writ/contracts';

/** A list of plain-words lines, or a sentence when there is none. */
function Lines({ lines, empty }: { lines: readonly string[]; empty: string }) {
  if (lines.length === 0) return <>{empty}</>;
  return (
    <ul>
      {lines.map((line, i) => (
        <li key={i}>{line}</li>
      ))}
    </ul>
  );
}

/**
 * Everything a grant lets its agent do, in plain words: the capabilities and the envelope as
 * libs/core describes them, so the screen and the enforcement read the same data the same way.
 */
export function GrantFacts({ grant }: { grant: HumanGrant }) {
  return (
    <dl className="facts">
      <dt>Agent</dt>
      <dd>
        <AgentIdentity agent={grant.agent} />
      </dd>
      <dt>Service</dt>
      <dd>
        {serviceLabel(grant.service)}
        {grant.service.name ? <span className="muted"> ({grant.service.uri})</span> : null}
      </dd>
      <dt>What it may do</dt>
      <dd>
        <Lines lines={describeCapabilities(grant.authorization_details)} empty="Nothing." />
      </dd>
      <dt>Limits</dt>
      <dd>
        <Lines
          lines={describeEnvelope(grant.envelope)}
          empty="No limit on rate, time or number of uses, and no payments."
        />
      </dd>
      <dt>How long</dt>
      <dd>{formatDuration(grant.duration_s)} from approval</dd>
      <dt>Why</dt>
      <dd>
        <AgentWords purpose={grant.purpose} empty="The agent gave no reason." />
      </dd>
      <dt>Passing it on</dt>
      <dd>{describeDelegation(grant.delegation)}</dd>
      <dt>Asked</dt>
      <dd>{formatDateTime(grant.requested_at)}</dd>
    </dl>
  );
}
