import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { agentText, humanText, identifierText, isAcceptableText, textProblem } from './text.js';

describe('textProblem', () => {
  it('accepts plain text, any script and well-formed surrogate pairs', () => {
    for (const text of ['', 'Hotel Adlon', 'Zürich – 東京', 'pay 💶 now', 'tab-free/path?q=1', 'می\u200cخواهم', '👩\u200d💻']) {
      expect(textProblem(text)).toBeUndefined();
      expect(textProblem(text, 'human')).toBeUndefined();
    }
  });

  it('refuses a lone high or low surrogate, wherever it is', () => {
    for (const text of ['\ud800', 'a\ud800b', 'a\udc00', '\udc00\ud800', '💶'.slice(0, 1)]) {
      expect(textProblem(text)).toEqual({ code: 'lone_surrogate', message: 'is not well-formed UTF-16 (lone surrogate)' });
    }
  });

  it('refuses NUL, every other C0 control and DEL, naming the first', () => {
    expect(textProblem('pay\u0000ee')).toEqual({ code: 'control_character', message: 'contains a control character (U+0000)' });
    expect(textProblem('a\nb')).toEqual({ code: 'control_character', message: 'contains a control character (U+000A)' });
    expect(textProblem('a\u007f')).toEqual({ code: 'control_character', message: 'contains a control character (U+007F)' });
    for (let c = 0; c < 0x20; c++) expect(isAcceptableText(`x${String.fromCharCode(c)}`)).toBe(false);
  });

  it('lets C1 controls and format characters through identifiers, not through text shown to people', () => {
    for (const [text, code, point] of [['a\u0085', 'control_character', 'U+0085'], ['a\u202eb', 'format_character', 'U+202E'], ['\u200b', 'format_character', 'U+200B'], ['\ufeffx', 'format_character', 'U+FEFF']] as const) {
      expect(textProblem(text)).toBeUndefined();
      expect(textProblem(text, 'human')).toEqual({ code, message: `contains a ${code === 'format_character' ? 'format' : 'control'} character (${point})` });
    }
  });
});

describe('textProblem for agent text', () => {
  it('accepts names and purposes in any script, with single spaces between words', () => {
    for (const text of ['Budget assistant', 'Zürich – 東京 trip', 'pay 💶 now', 'Réserver\u00a0mon voyage', 'x']) {
      expect(textProblem(text, 'agent')).toBeUndefined();
    }
  });

  it('refuses every bidi control and isolate, naming it', () => {
    for (const c of ['\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069', '\u200e', '\u200f', '\u061c']) {
      const point = `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
      expect(textProblem(`up to ${c}0005`, 'agent')).toEqual({ code: 'format_character', message: `contains a format character (${point})` });
    }
  });

  it('refuses zero-width characters, ZWNJ and ZWJ included, and the BOM', () => {
    for (const [text, point] of [['Budget\u200bassistant', 'U+200B'], ['Budget\u200cassistant', 'U+200C'], ['Budget\u200dassistant', 'U+200D'], ['\ufeffBudget', 'U+FEFF'], ['Bud\u00adget', 'U+00AD'], ['Bud\u2060get', 'U+2060']] as const) {
      expect(textProblem(text, 'agent')).toEqual({ code: 'format_character', message: `contains a format character (${point})` });
    }
  });

  it('refuses invisible characters that are not format characters (Hangul fillers, variation selectors)', () => {
    expect(textProblem('Budget\u3164assistant', 'agent')).toEqual({ code: 'invisible_character', message: 'contains an invisible character (U+3164)' });
    expect(textProblem('Budget assistant\ufe0f', 'agent')).toEqual({ code: 'invisible_character', message: 'contains an invisible character (U+FE0F)' });
  });

  it('refuses C1 controls, line and paragraph separators', () => {
    expect(textProblem('a\u0085b', 'agent')).toEqual({ code: 'control_character', message: 'contains a control character (U+0085)' });
    expect(textProblem('a\u2028b', 'agent')).toEqual({ code: 'whitespace', message: 'contains a line or paragraph separator (U+2028)' });
    expect(textProblem('a\u2029b', 'agent')).toEqual({ code: 'whitespace', message: 'contains a line or paragraph separator (U+2029)' });
  });

  it('refuses whitespace at either end and runs of whitespace, no-break spaces included', () => {
    expect(textProblem(' Budget assistant', 'agent')).toEqual({ code: 'whitespace', message: 'starts or ends with whitespace (U+0020)' });
    expect(textProblem('Budget assistant\u00a0', 'agent')).toEqual({ code: 'whitespace', message: 'starts or ends with whitespace (U+00A0)' });
    expect(textProblem('\u3000Budget', 'agent')).toEqual({ code: 'whitespace', message: 'starts or ends with whitespace (U+3000)' });
    expect(textProblem('Budget\u00a0\u00a0\u00a0assistant', 'agent')).toEqual({ code: 'whitespace', message: 'contains consecutive whitespace (U+00A0 U+00A0)' });
    expect(textProblem('Budget  assistant', 'agent')).toEqual({ code: 'whitespace', message: 'contains consecutive whitespace (U+0020 U+0020)' });
    expect(textProblem('Budget \u2003assistant', 'agent')).toEqual({ code: 'whitespace', message: 'contains consecutive whitespace (U+0020 U+2003)' });
  });

  it('still refuses what identifiers refuse', () => {
    expect(textProblem('my\u0000agent', 'agent')).toEqual({ code: 'control_character', message: 'contains a control character (U+0000)' });
    expect(textProblem('my agent \ud800', 'agent')).toEqual({ code: 'lone_surrogate', message: 'is not well-formed UTF-16 (lone surrogate)' });
  });
});

describe('identifierText, humanText and agentText', () => {
  it('agentText refuses with the problem as a zod issue, never trimming', () => {
    const schema = z.object({ purpose: agentText(z.string().min(1).max(500)) });
    expect(schema.parse({ purpose: 'Book my trip' })).toEqual({ purpose: 'Book my trip' });
    expect(schema.safeParse({ purpose: 'Book my trip ' }).error?.issues.map((i) => [i.path, i.message])).toEqual([[['purpose'], 'starts or ends with whitespace (U+0020)']]);
  });

  it('add the problem as a zod issue after the other checks', () => {
    const schema = z.object({ action: identifierText(z.string().min(1).max(8)), name: humanText() });
    expect(schema.safeParse({ action: 'pay', name: 'Alice' }).success).toBe(true);
    const nul = schema.safeParse({ action: 'pay\u0000', name: 'Alice' });
    expect(nul.error?.issues.map((i) => [i.path, i.message])).toEqual([[['action'], 'contains a control character (U+0000)']]);
    const bidi = schema.safeParse({ action: 'pay', name: 'Ali\u202ece' });
    expect(bidi.error?.issues.map((i) => [i.path, i.message])).toEqual([[['name'], 'contains a format character (U+202E)']]);
    expect(schema.safeParse({ action: '', name: 'A' }).error?.issues[0]?.code).toBe('too_small');
  });
});
