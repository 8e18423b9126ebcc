'use client';

import Link from 'next/link';
import { useSearchParams } from 'next/navigation';
import { Suspense, useCallback } from 'react';
import { LoadState } from '../../components/messages';
import { useApi } from '../../components/session';
import { useLoad } from '../../components/use-load';
import { formatDateTime } from '../../lib/format';
import type { TransactionSummary } from '@writ/contracts';

function count(value: number | unknown[]): number {
  return Array.isArray(value) ? value.length : value;
}

function TransactionList() {
  const grantId = useSearchParams().get('grant_id');
  const api = useApi();
  const load = useCallback(
    (signal: AbortSignal) =>
      api.get<{ transactions: TransactionSummary[] }>(
        grantId === null ? '/me/transactions' : `/me/transactions?grant_id=${encodeURIComponent(grantId)}`,
        signal,
      ),
    [api, grantId],
  );
  const { state } = useLoad(load);
  const transactions = state.status === 'ready' ? state.data.transactions : [];

  return (
    <>
      {grantId !== null ? (
        <p>
          Of grant <span className="mono">{grantId}</span>. <Link href="/transactions">Show every transaction</Link>
        </p>
      ) : null}
      <LoadState loading={state.status === 'loading'} error={state.status === 'error' ? state.message : undefined} />
      {state.status === 'ready' && transactions.length === 0 ? <p>No transaction yet.</p> : null}
      {transactions.length > 0 ? (
        <ul className="list">
          {transactions.map((transaction) => (
            <li key={transaction.txn} className="card">
              <h2 className="mono">
                <Link href={`/transactions/${encodeURIComponent(transaction.txn)}`}>{transaction.txn}</Link>
              </h2>
              <dl className="facts">
                <dt>Started</dt>
                <dd>{formatDateTime(transaction.started_at)}</dd>
                <dt>Grant</dt>
                <dd className="mono">{transaction.grant_id ?? 'unknown'}</dd>
                <dt>Hops</dt>
                <dd>{count(transaction.hops)}</dd>
                <dt>Decisions</dt>
                <dd>{count(transaction.decisions)}</dd>
              </dl>
            </li>
          ))}
        </ul>
      ) : null}
    </>
  );
}

/** Transactions (chains of tokens an agent started under a grant), newest first. */
export default function TransactionsPage() {
  return (
    <>
      <title>Transactions · Writ</title>
      <h1>Transactions</h1>
      <p className="muted">
        A transaction starts when an agent gets a token under one of your grants; each agent it passes work to adds a
        hop.
      </p>
      <Suspense fallback={<LoadState loading />}>
        <TransactionList />
      </Suspense>
    </>
  );
}
