import type { Delegation, GrantStatus, HumanStepUp, StepUpStatus } from '@writ/contracts';

/*
 * Plain words for what libs/core does not describe: durations, dates, delegation, statuses.
 * Capabilities and envelopes are described by `describeCapabilities` and `describeEnvelope`.
 */

const UNITS: readonly [seconds: number, one: string, many: string][] = [
  [86_400, 'day', 'days'],
  [3600, 'hour', 'hours'],
  [60, 'minute', 'minutes'],
  [1, 'second', 'seconds'],
];

/**
 * A duration in words, largest units first, at most two of them: "2 hours", "1 day and 6 hours",
 * "90 seconds" stays "1 minute and 30 seconds".
 *
 * @example
 * ```ts
 * formatDuration(5400); // '1 hour and 30 minutes'
 * ```
 */
export function formatDuration(totalSeconds: number): string {
  if (!Number.isFinite(totalSeconds) || totalSeconds <= 0) return '0 seconds';
  let rest = Math.round(totalSeconds);
  const parts: string[] = [];
  for (const [size, one, many] of UNITS) {
    const amount = Math.floor(rest / size);
    if (amount === 0) continue;
    rest -= amount * size;
    parts.push(`${amount} ${amount === 1 ? one : many}`);
  }
  const shown = parts.slice(0, 2);
  return shown.length === 2 ? `${shown[0]} and ${shown[1]}` : (shown[0] ?? '0 seconds');
}

const dateTime = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short' });

/** A date and time in the reader's time zone, or "never" for null. */
export function formatDateTime(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return 'never';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateTime.format(date);
}

/** How far from `nowMs` an instant is, in words: "in 4 minutes", "2 hours ago". */
export function formatRelative(iso: string | null | undefined, nowMs: number): string {
  if (iso === null || iso === undefined) return 'never';
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;
  const seconds = Math.round((at - nowMs) / 1000);
  if (Math.abs(seconds) < 60) return seconds >= 0 ? 'in less than a minute' : 'less than a minute ago';
  const words = formatDuration(Math.abs(seconds)).split(' and ')[0] ?? '';
  return seconds >= 0 ? `in ${words}` : `${words} ago`;
}

/** Whether the agent may pass the access on, in words. */
export function describeDelegation(delegation: Delegation | null | undefined): string {
  const depth = delegation?.max_depth ?? 0;
  if (depth <= 0) return 'It may not pass this access on to other agents.';
  if (depth === 1) return 'It may pass this access on to one more agent, with no more than it has itself; that agent may not pass it on again.';
  return `It may pass this access on through a chain of up to ${depth} more agents, each with no more than the one before.`;
}

/** The service's name, or its URI when it has none (or a blank one). */
export function serviceLabel(service: { id: string; uri: string; name: string | null }): string {
  return service.name !== null && service.name !== undefined && service.name.trim() !== '' ? service.name : service.uri;
}

const STATUS_WORDS: Readonly<Record<GrantStatus, string>> = {
  pending: 'Waiting for your decision',
  approved: 'Approved',
  denied: 'Denied',
  revoked: 'Revoked',
  expired: 'Expired',
};

/** A grant's status in words. */
export function describeStatus(status: GrantStatus): string {
  return STATUS_WORDS[status] ?? status;
}

/** A short summary of many lines: the first `max`, then "and N more". */
export function summarise(lines: readonly string[], max = 2): string {
  if (lines.length <= max) return lines.join('; ');
  const more = lines.length - max;
  return `${lines.slice(0, max).join('; ')}; and ${more} more`;
}

/** The JSON of an approval document, indented for reading; the text itself when it is not JSON. */
export function prettyDocument(document: unknown): string {
  if (typeof document === 'string') {
    try {
      return JSON.stringify(JSON.parse(document), null, 2);
    } catch {
      return document;
    }
  }
  return JSON.stringify(document, null, 2);
}

/** A dynamic route segment as text: decoded once when it still holds percent-escapes. */
export function routeParam(value: string | string[] | undefined): string {
  const text = Array.isArray(value) ? value.join('/') : (value ?? '');
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

const amountFormat = new Intl.NumberFormat('en-GB', { maximumFractionDigits: 3 });

/**
 * An amount of money with its currency code, as stated (up to the thousandths the verifier
 * counts): "150 EUR", "1,250.5 USD".
 *
 * @example
 * ```ts
 * formatAmount(150, 'EUR'); // '150 EUR'
 * ```
 */
export function formatAmount(amount: number, currency: string): string {
  return `${amountFormat.format(amount)} ${currency}`;
}

/** Where a payment goes, in words: the service, and the address (and resource) the request is for. */
export function describePayee(stepUp: Pick<HumanStepUp, 'service' | 'url' | 'resource'>): string {
  const where = stepUp.resource === null ? stepUp.url : `${stepUp.url}, resource ${stepUp.resource}`;
  return `${serviceLabel(stepUp.service)}, at ${where}`;
}

/** The request a step-up holds, in one sentence: who does what, where, for how much. */
export function describePaymentRequest(stepUp: HumanStepUp): string {
  const resource = stepUp.resource === null ? '' : ` on resource ${stepUp.resource}`;
  return (
    `${stepUp.agent.name} wants to “${stepUp.action}”${resource} at ${serviceLabel(stepUp.service)}, ` +
    `paying ${formatAmount(stepUp.amount, stepUp.currency)}, with the request ${stepUp.method} ${stepUp.url}, ` +
    `in transaction ${stepUp.txn}.`
  );
}

const STEP_UP_STATUS_WORDS: Readonly<Record<StepUpStatus, string>> = {
  pending: 'Waiting for your decision',
  approved: 'Payment approved',
  denied: 'Payment denied',
  expired: 'Expired: nobody decided in time',
};

/** A step-up's status in words. */
export function describeStepUpStatus(status: StepUpStatus): string {
  return STEP_UP_STATUS_WORDS[status] ?? status;
}
