import { z } from 'zod';

/**
 * Which characters a text may hold.
 * - `identifier`: well-formed UTF-16 (no lone surrogate), no C0 control (U+0000 to U+001F) and no
 *   DEL (U+007F). Every free-text and identifier field Writ accepts: what PostgreSQL `jsonb`/`text`
 *   and RFC 8785 canonical JSON can both carry, and what a log line cannot be split by.
 * - `human`: also no C1 control (U+0080 to U+009F) and no format character (Unicode category Cf:
 *   bidirectional overrides and isolates, zero-width space, soft hyphen, BOM...; ZWNJ and ZWJ stay,
 *   as scripts and emoji need them), for text shown to a person, where such characters can make
 *   one string look like another.
 * - `agent`: what an agent writes for a person to read (its `client_name`, a grant's `purpose`):
 *   `human`, and no format character at all (ZWNJ and ZWJ included), no other default-ignorable
 *   (invisible) character such as U+3164 or a variation selector, no line or paragraph separator,
 *   no whitespace at either end and never two whitespace characters in a row (ADR 0019: an agent
 *   must not be able to make its text look like other text, or push the screen's labels away).
 *
 * @example
 * ```ts
 * const mode: TextMode = 'agent';
 * ```
 */
export type TextMode = 'identifier' | 'human' | 'agent';

/**
 * Stable codes of {@link textProblem}, for callers that switch on them.
 *
 * @example
 * ```ts
 * textProblem('a\u202eb', 'agent')?.code === 'format_character'; // true
 * ```
 */
export type TextProblemCode = 'lone_surrogate' | 'control_character' | 'format_character' | 'invisible_character' | 'whitespace';

/**
 * Why a text may not be accepted: a stable code and a sentence to put after the field's name.
 *
 * @example
 * ```ts
 * const problem: TextProblem = { code: 'whitespace', message: 'starts or ends with whitespace (U+0020)' };
 * ```
 */
export interface TextProblem {
  code: TextProblemCode;
  /** One short sentence, without the field's name: `contains a control character (U+0000)`. */
  message: string;
}

// One regular expression per mode, tested once per string: most texts are short ASCII.
// `u` flag: a well-formed surrogate pair is one code point and never matches the lone-surrogate class.
const LONE_SURROGATE = /\p{Surrogate}/u;
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
// eslint-disable-next-line no-control-regex -- likewise, C0, DEL and C1
const HUMAN_CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// ZWNJ and ZWJ (U+200C, U+200D) are format characters that Persian, Indic scripts and emoji
// sequences need: they stay allowed; bidi controls, zero-width spaces, soft hyphens and BOM do not.
const FORMAT = /(?![\u200c\u200d])\p{Cf}/u;
// Agent text: every format character, ZWNJ and ZWJ too (an agent name needs neither, and between
// Latin letters they make two names that look the same).
const AGENT_FORMAT = /\p{Cf}/u;
// Unicode's default-ignorable code points that are not Cf: Hangul fillers (U+115F, U+3164...),
// variation selectors, Mongolian free variation selectors. They render as nothing, or as a blank.
const INVISIBLE = /\p{Default_Ignorable_Code_Point}/u;
// `\s` is every Unicode White_Space character (Zs, including NBSP and U+3000, and U+2028/U+2029).
const SEPARATOR = /[\u2028\u2029]/;
const EDGE_SPACE = /^\s|\s$/u;
const SPACE_RUN = /\s{2}/u;

function codePoints(text: string): string {
  return [...text].map((c) => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`).join(' ');
}

function codePoint(text: string, pattern: RegExp): string {
  return codePoints(pattern.exec(text)![0]);
}

function agentProblem(text: string): TextProblem | undefined {
  if (AGENT_FORMAT.test(text)) return { code: 'format_character', message: `contains a format character (${codePoint(text, AGENT_FORMAT)})` };
  if (INVISIBLE.test(text)) return { code: 'invisible_character', message: `contains an invisible character (${codePoint(text, INVISIBLE)})` };
  if (SEPARATOR.test(text)) return { code: 'whitespace', message: `contains a line or paragraph separator (${codePoint(text, SEPARATOR)})` };
  if (EDGE_SPACE.test(text)) return { code: 'whitespace', message: `starts or ends with whitespace (${codePoint(text, EDGE_SPACE)})` };
  if (SPACE_RUN.test(text)) return { code: 'whitespace', message: `contains consecutive whitespace (${codePoint(text, SPACE_RUN)})` };
  return undefined;
}

/**
 * The first reason `text` may not be accepted in `mode`, or undefined when it may.
 *
 * @example
 * ```ts
 * textProblem('Hotel Adlon'); // undefined
 * textProblem('pay\u0000ee'); // { code: 'control_character', message: 'contains a control character (U+0000)' }
 * textProblem('\ud800'); // { code: 'lone_surrogate', message: 'is not well-formed UTF-16 (lone surrogate)' }
 * textProblem('a\u202eb', 'human'); // { code: 'format_character', message: 'contains a format character (U+202E)' }
 * textProblem('Budget\u00a0\u00a0assistant', 'agent'); // { code: 'whitespace', message: 'contains consecutive whitespace (U+00A0 U+00A0)' }
 * ```
 */
export function textProblem(text: string, mode: TextMode = 'identifier'): TextProblem | undefined {
  if (LONE_SURROGATE.test(text)) return { code: 'lone_surrogate', message: 'is not well-formed UTF-16 (lone surrogate)' };
  const control = mode === 'identifier' ? CONTROL : HUMAN_CONTROL;
  if (control.test(text)) return { code: 'control_character', message: `contains a control character (${codePoint(text, control)})` };
  if (mode === 'agent') return agentProblem(text);
  if (mode === 'human' && FORMAT.test(text)) return { code: 'format_character', message: `contains a format character (${codePoint(text, FORMAT)})` };
  return undefined;
}

/**
 * Whether `text` may be accepted in `mode` (see {@link textProblem}).
 *
 * @example
 * ```ts
 * isAcceptableText('Budget assistant', 'agent'); // true
 * isAcceptableText('Budget\u200bassistant', 'agent'); // false
 * ```
 */
export function isAcceptableText(text: string, mode: TextMode = 'identifier'): boolean {
  return textProblem(text, mode) === undefined;
}

function refined<T extends z.ZodString>(schema: T, mode: TextMode): T {
  return schema.superRefine((value, ctx) => {
    const problem = textProblem(value, mode);
    if (problem) ctx.addIssue({ code: 'custom', message: problem.message, params: { text: problem.code } });
  });
}

/**
 * A zod string that refuses lone surrogates, C0 controls and DEL ({@link TextMode} `identifier`),
 * with the issue message of {@link textProblem}. Further string checks chain before it:
 * `identifierText(z.string().min(1).max(128))`.
 *
 * @example
 * ```ts
 * const Body = z.object({ action: identifierText(z.string().min(1)) });
 * Body.safeParse({ action: 'pay\u0000' }).error?.issues[0]?.message; // 'contains a control character (U+0000)'
 * ```
 */
export function identifierText<T extends z.ZodString>(schema: T = z.string() as T): T {
  return refined(schema, 'identifier');
}

/**
 * A zod string for text shown to people: {@link identifierText}, and no C1 control or Unicode
 * format character either ({@link TextMode} `human`).
 *
 * @example
 * ```ts
 * humanText(z.string().max(200)).safeParse('Alice\u202e').error?.issues[0]?.message; // 'contains a format character (U+202E)'
 * ```
 */
export function humanText<T extends z.ZodString>(schema: T = z.string() as T): T {
  return refined(schema, 'human');
}

/**
 * A zod string for what an agent writes for a person to read ({@link TextMode} `agent`): no
 * control, format or invisible character, no line separator, no whitespace at either end and no
 * two whitespace characters in a row. Refused, never trimmed or collapsed: the agent learns what
 * it sent, and what the person reads is exactly what was stored and signed.
 *
 * @example
 * ```ts
 * agentText(z.string().max(200)).safeParse('Budget \u202eassistant').error?.issues[0]?.message; // 'contains a format character (U+202E)'
 * agentText(z.string().max(200)).safeParse(' Budget assistant').error?.issues[0]?.message; // 'starts or ends with whitespace (U+0020)'
 * ```
 */
export function agentText<T extends z.ZodString>(schema: T = z.string() as T): T {
  return refined(schema, 'agent');
}
