import type { ReactNode } from 'react';

/** An error next to the action that failed, announced as soon as it appears. */
export function ErrorText({ id, children }: { id?: string; children: ReactNode }) {
  if (children === null || children === undefined || children === '') return null;
  return (
    <p id={id} className="error" role="alert">
      {children}
    </p>
  );
}

/** The outcome of an action, announced politely; present (empty) before, so it is announced. */
export function StatusText({ children, className }: { children?: ReactNode; className?: string }) {
  return (
    <p role="status" aria-live="polite" className={className ?? 'status'}>
      {children}
    </p>
  );
}

/** What a page shows while its data loads, or when it could not load. */
export function LoadState({ loading, error }: { loading: boolean; error?: string | undefined }) {
  if (error !== undefined) return <ErrorText>{error}</ErrorText>;
  if (loading) return <p className="muted" aria-busy="true">Loading…</p>;
  return null;
}
