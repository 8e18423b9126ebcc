import type { HumanGrant } from '@writ/contracts';

/**
 * Which passkey signed a grant's decision, by the name the person gave it and its credential id
 * (the receipt's `credential_id`), so a decision signed by a passkey they do not know stands out
 * (ADR 0018).
 */
export function SignedWith({ grant }: { grant: HumanGrant }) {
  const signer = grant.signed_with;
  if (!signer) return null;
  return (
    <p>
      Signed with your passkey “{signer.label}”
      {signer.removed ? ' (since removed)' : ''}
      <span className="muted"> — credential {signer.credential_id.slice(0, 16)}…</span>
    </p>
  );
}
