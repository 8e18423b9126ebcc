'use client';

import { useEffect, useRef, useState } from 'react';

/**
 * A button that asks once more, inline, before doing something that cannot be undone: "Revoke"
 * shows the question with "Revoke now" (focused) and "Cancel" (which puts the focus back).
 */
export function ConfirmAction({
  label,
  confirmLabel,
  question,
  onConfirm,
}: {
  label: string;
  confirmLabel: string;
  question: string;
  /** Resolves true when it was done (the buttons go away), false to offer it again. */
  onConfirm: () => Promise<boolean>;
}) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(false);
  const first = useRef<HTMLButtonElement>(null);
  const cancelled = useRef(false);

  useEffect(() => {
    if (!confirming && cancelled.current) {
      cancelled.current = false;
      first.current?.focus();
    }
  }, [confirming]);

  async function confirm(): Promise<void> {
    setBusy(true);
    const ok = await onConfirm();
    setBusy(false);
    if (ok) setDone(true);
  }

  if (done) return null;
  if (!confirming) {
    return (
      <div className="actions">
        <button ref={first} type="button" className="danger secondary" onClick={() => setConfirming(true)}>
          {label}
        </button>
      </div>
    );
  }
  return (
    <div className="actions">
      <span>{question}</span>
      <button type="button" className="danger" autoFocus onClick={() => void confirm()} disabled={busy} aria-busy={busy}>
        {confirmLabel}
      </button>
      <button
        type="button"
        className="secondary"
        disabled={busy}
        onClick={() => {
          cancelled.current = true;
          setConfirming(false);
        }}
      >
        Cancel
      </button>
    </div>
  );
}
