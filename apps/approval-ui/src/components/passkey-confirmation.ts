import { startAuthentication, type PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/browser';
import type { Api } from './session';

/** What a fresh passkey confirmation is for (docs/approval.md, "Fresh passkey confirmation"). */
export type ConfirmationPurpose = 'add_passkey' | 'enrollment_token' | 'rename_passkey' | 'remove_passkey';

/** A signed confirmation challenge, sent as `confirmation` with the action it allows. */
export interface PasskeyConfirmation {
  ceremony: string;
  response: unknown;
}

/**
 * Asks the person to confirm with one of their passkeys (user verification required) before an
 * action that a stolen session cookie must not be able to do alone: the registry lists only their
 * current passkeys, and the signed challenge counts once, for `purpose`, for a few minutes (ADR 0018).
 */
export async function confirmWithPasskey(api: Api, purpose: ConfirmationPurpose): Promise<PasskeyConfirmation> {
  const { ceremony, options } = await api.post<{ ceremony: string; options: PublicKeyCredentialRequestOptionsJSON }>('/me/confirmation/options', { purpose });
  const response = await startAuthentication({ optionsJSON: options });
  return { ceremony, response };
}
