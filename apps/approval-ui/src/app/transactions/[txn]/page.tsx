'use client';

import Link from 'next/link';
import { useParams } from 'next/navigation';
import { useCallback, useRef, useState, type KeyboardEvent } from 'react';
import { ConfirmAction } from '../../../components/confirm-action';
import { ErrorText, LoadState, StatusText } from '../../../components/messages';
import { describeError } from '../../../lib/errors';
import { useApi } from '../../../components/session';
import { useLoad } from '../../../components/use-load';
import { formatDateTime, routeParam } from '../../../lib/format';
import { buildHopTree, type HopNode } from '../../../lib/hop-tree';
import type { HopDecision, Transaction } from '@writ/contracts';
import { AuditVerdictLine, TransactionAuditSection } from '../../../components/transaction-audit';

/** One transaction: the tree of its hops, what the verifier decided at each, and its place in the audit log. */
export default function TransactionPage() {
  const params = useParams<{ txn: string }>();
  const txn = routeParam(params.txn);
  const api = useApi();
  const load = useCallback(
    (signal: AbortSignal) => api.get<Transaction>(`/me/transactions/${encodeURIComponent(txn)}`, signal),
    [api, txn],
  );
  const { state } = useLoad(load);

  return (
    <>
      <title>{`Transaction ${txn} · Writ`}</title>
      <h1>Transaction {txn}</h1>
      <LoadState loading={state.status === 'loading'} error={state.status === 'error' ? state.message : undefined} />
      {state.status === 'ready' ? (
        <>
          <AuditVerdictLine verdict={state.data.audit.verdict} />
          {state.data.grant_id !== null ? (
            <p>
              Grant <Link href={`/grants/${encodeURIComponent(state.data.grant_id)}`}>{state.data.grant_id}</Link>
              {' · '}
              <Link href={`/transactions?grant_id=${encodeURIComponent(state.data.grant_id)}`}>
                Other transactions of this grant
              </Link>
            </p>
          ) : null}
          <RevokeTransaction txn={txn} />
          <h2 id="hops-heading">Hops</h2>
          <p className="hint">
            Each hop is a token; a hop under another was delegated by it, never with more. Use the arrow keys to move
            through the tree, and Enter to fold or unfold a hop.
          </p>
          {state.data.hops.length === 0 ? <p>No token was issued in this transaction.</p> : <HopTree transaction={state.data} />}
          <TransactionAuditSection audit={state.data.audit} />
        </>
      ) : null}
    </>
  );
}

/** Stops the whole transaction: every token of its tree, at every verifier, from now on. */
function RevokeTransaction({ txn }: { txn: string }) {
  const api = useApi();
  const [error, setError] = useState<string | undefined>();
  const [outcome, setOutcome] = useState<string | undefined>();
  const after = useRef<HTMLHeadingElement>(null);

  async function revoke(): Promise<boolean> {
    setError(undefined);
    try {
      await api.post(`/me/transactions/${encodeURIComponent(txn)}/revoke`, {});
      setOutcome('Transaction revoked');
      // The buttons go away: keep the keyboard focus on this section, not lost to the page.
      requestAnimationFrame(() => after.current?.focus());
      return true;
    } catch (caught) {
      setError(describeError(caught));
      return false;
    }
  }

  return (
    <section aria-labelledby="revoke-heading">
      <h2 id="revoke-heading" ref={after} tabIndex={-1}>
        Stop it
      </h2>
      <ConfirmAction
        label="Revoke this transaction"
        confirmLabel="Revoke now"
        question="Revoke this transaction? Every token in it stops working at once, at every hop."
        onConfirm={revoke}
      />
      <ErrorText>{error}</ErrorText>
      <StatusText>{outcome}</StatusText>
    </section>
  );
}

function HopTree({ transaction }: { transaction: Transaction }) {
  const roots = buildHopTree(transaction.hops);
  const [collapsed, setCollapsed] = useState<ReadonlySet<string>>(new Set());
  const [active, setActive] = useState<string | undefined>(roots[0]?.hop.jti);
  // The one item reachable with Tab: the active one while it is shown, else the first.
  const shown = new Set<string>();
  const walk = (nodes: readonly HopNode[]): void => {
    for (const node of nodes) {
      shown.add(node.hop.jti);
      if (!collapsed.has(node.hop.jti)) walk(node.children);
    }
  };
  walk(roots);
  const tabStop = active !== undefined && shown.has(active) ? active : roots[0]?.hop.jti;

  const toggle = (jti: string, expand?: boolean): void => {
    setCollapsed((current) => {
      const next = new Set(current);
      const expanded = !current.has(jti);
      if (expand ?? !expanded) next.delete(jti);
      else next.add(jti);
      return next;
    });
  };

  // WAI-ARIA tree keyboard pattern: the rendered treeitems are the visible ones, in order.
  function onKeyDown(event: KeyboardEvent<HTMLUListElement>): void {
    const item = (event.target as HTMLElement).closest<HTMLElement>('[role="treeitem"]');
    if (item === null || event.target !== item) return;
    const items = [...event.currentTarget.querySelectorAll<HTMLElement>('[role="treeitem"]')];
    const index = items.indexOf(item);
    const jti = item.dataset.jti ?? '';
    const hasChildren = item.getAttribute('aria-expanded') !== null;
    const expanded = item.getAttribute('aria-expanded') === 'true';
    const focus = (target: HTMLElement | null | undefined): void => {
      if (target) {
        setActive(target.dataset.jti);
        target.focus();
      }
    };
    switch (event.key) {
      case 'ArrowDown':
        focus(items[index + 1]);
        break;
      case 'ArrowUp':
        focus(items[index - 1]);
        break;
      case 'Home':
        focus(items[0]);
        break;
      case 'End':
        focus(items.at(-1));
        break;
      case 'ArrowRight':
        if (hasChildren && !expanded) toggle(jti, true);
        else if (expanded) focus(item.querySelector<HTMLElement>('[role="treeitem"]'));
        break;
      case 'ArrowLeft':
        if (expanded) toggle(jti, false);
        else focus(item.parentElement?.closest<HTMLElement>('[role="treeitem"]'));
        break;
      case 'Enter':
      case ' ':
        if (hasChildren) toggle(jti);
        break;
      default:
        return;
    }
    event.preventDefault();
  }

  return (
    <ul role="tree" aria-labelledby="hops-heading" onKeyDown={onKeyDown}>
      {roots.map((node, i) => (
        <HopItem
          key={node.hop.jti}
          node={node}
          level={1}
          position={i + 1}
          siblings={roots.length}
          collapsed={collapsed}
          active={tabStop}
          onToggle={(jti) => {
            setActive(jti);
            toggle(jti);
          }}
          onFocusItem={setActive}
        />
      ))}
    </ul>
  );
}

interface HopItemProps {
  node: HopNode;
  level: number;
  position: number;
  siblings: number;
  collapsed: ReadonlySet<string>;
  active: string | undefined;
  onToggle: (jti: string) => void;
  onFocusItem: (jti: string) => void;
}

function HopItem({ node, level, position, siblings, collapsed, active, onToggle, onFocusItem }: HopItemProps) {
  const { hop, children } = node;
  const hasChildren = children.length > 0;
  const expanded = hasChildren && !collapsed.has(hop.jti);
  // Named from its content, the hop's own text (browsers leave the nested group out): a shorter
  // aria-label would not contain what is shown, which speech input users say (WCAG 2.5.3).
  return (
    <li
      role="treeitem"
      data-jti={hop.jti}
      aria-level={level}
      aria-posinset={position}
      aria-setsize={siblings}
      aria-expanded={hasChildren ? expanded : undefined}
      tabIndex={active === hop.jti ? 0 : -1}
      onFocus={(event) => {
        if (event.target === event.currentTarget) onFocusItem(hop.jti);
      }}
    >
      <div className="hop">
        <div
          className="hop-title"
          onClick={(event) => {
            event.stopPropagation();
            if (hasChildren) onToggle(hop.jti);
          }}
        >
          <span className="toggle" aria-hidden="true">
            {hasChildren ? (expanded ? '▾' : '▸') : '•'}
          </span>
          <span>
            {hop.agent.name} <span className="muted mono">({hop.agent.client_id})</span>
          </span>
        </div>
        <div>
          {node.orphan ? <p className="field-error">Its parent token is missing from this transaction.</p> : null}
          <dl className="facts">
            <dt>Scope</dt>
            <dd className="mono">{hop.scope ?? 'not recorded'}</dd>
            <dt>Issued</dt>
            <dd>{formatDateTime(hop.issued_at)}</dd>
            <dt>Expires</dt>
            <dd>{hop.expires_at === null ? 'not recorded' : formatDateTime(hop.expires_at)}</dd>
            <dt>Token hash</dt>
            <dd className="mono">{hop.token_hash_prefix === null ? 'not recorded' : `${hop.token_hash_prefix}…`}</dd>
            <dt>Decisions</dt>
            <dd>
              {hop.decisions.length === 0 ? (
                'None: the token was not used at a service.'
              ) : (
                <ul>
                  {hop.decisions.map((decision, i) => (
                    <li key={i}>
                      <DecisionLine decision={decision} />
                    </li>
                  ))}
                </ul>
              )}
            </dd>
          </dl>
        </div>
      </div>
      {expanded ? (
        <ul role="group">
          {children.map((child, i) => (
            <HopItem
              key={child.hop.jti}
              node={child}
              level={level + 1}
              position={i + 1}
              siblings={children.length}
              collapsed={collapsed}
              active={active}
              onToggle={onToggle}
              onFocusItem={onFocusItem}
            />
          ))}
        </ul>
      ) : null}
    </li>
  );
}

function DecisionLine({ decision }: { decision: HopDecision }) {
  const what = [decision.action, decision.resource].filter((part) => part !== null && part !== '').join(' ');
  const amount = decision.amount === null ? '' : ` ${decision.amount}${decision.currency ? ` ${decision.currency}` : ''}`;
  return (
    <>
      <span className={decision.allow ? 'badge allow' : 'badge deny'}>{decision.allow ? 'Allowed' : 'Denied'}</span>{' '}
      {what || 'request'}
      {amount} — {decision.outcome} <span className="muted">({formatDateTime(decision.at)})</span>
    </>
  );
}
