import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { humanText, identifierText, isAcceptableText, textProblem } from './text.js';

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

describe('identifierText and humanText', () => {
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
