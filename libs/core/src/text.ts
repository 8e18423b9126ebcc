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
 */
export type TextMode = 'identifier' | 'human';

/** Stable codes of {@link textProblem}, for callers that switch on them. */
export type TextProblemCode = 'lone_surrogate' | 'control_character' | 'format_character';

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

function codePoint(text: string, pattern: RegExp): string {
  const match = pattern.exec(text)!;
  return `U+${match[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
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
 * ```
 */
export function textProblem(text: string, mode: TextMode = 'identifier'): TextProblem | undefined {
  if (LONE_SURROGATE.test(text)) return { code: 'lone_surrogate', message: 'is not well-formed UTF-16 (lone surrogate)' };
  const control = mode === 'human' ? HUMAN_CONTROL : CONTROL;
  if (control.test(text)) return { code: 'control_character', message: `contains a control character (${codePoint(text, control)})` };
  if (mode === 'human' && FORMAT.test(text)) return { code: 'format_character', message: `contains a format character (${codePoint(text, FORMAT)})` };
  return undefined;
}

/** Whether `text` may be accepted in `mode` (see {@link textProblem}). */
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
