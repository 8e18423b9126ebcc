import { describe, expect, it } from 'vitest';
import { StealSampler, tailAgainstSteal, type StealWindow } from '../support/steal.js';

describe('tailAgainstSteal', () => {
  // 0–200 ms quiet, 200–400 ms half of a CPU stolen, 400–600 ms quiet.
  const windows: StealWindow[] = [
    { from: 0, to: 200, share: 0 },
    { from: 200, to: 400, share: 0.5 },
    { from: 400, to: 600, share: 0.1 },
  ];

  it('counts slow and fast requests, and those of each that overlapped a stolen window', () => {
    const answers: [number, number][] = [
      [10, 12], // fast, quiet
      [150, 190], // slow, ends before the stolen window
      [190, 210], // slow, runs into it
      [250, 251], // fast, inside it
      [399, 450], // slow, starts in it
      [450, 500], // slow, after it (10 % is below the threshold)
    ];
    expect(tailAgainstSteal(answers, windows, 5, 0.2)).toEqual({ slow: 4, slowInStolen: 2, fast: 2, fastInStolen: 1, stolenTime: 1 / 3 });
  });

  it('counts a window as stolen from the threshold up', () => {
    expect(tailAgainstSteal([[450, 500]], windows, 5, 0.1)).toMatchObject({ slow: 1, slowInStolen: 1, stolenTime: 2 / 3 });
  });

  it('says nothing is stolen without windows', () => {
    expect(tailAgainstSteal([[0, 100]], [], 5, 0.2)).toEqual({ slow: 1, slowInStolen: 0, fast: 0, fastInStolen: 0, stolenTime: 0 });
  });
});

describe.runIf(process.platform === 'linux')('StealSampler', () => {
  it('answers consecutive windows over the sampled time, each with a share between 0 and 1', async () => {
    const sampler = new StealSampler(20);
    const start = performance.now();
    sampler.start();
    await new Promise((resolve) => setTimeout(resolve, 120));
    const windows = sampler.stop();
    expect(windows.length).toBeGreaterThanOrEqual(3);
    expect(windows[0]!.from).toBeGreaterThanOrEqual(start);
    for (const [i, w] of windows.entries()) {
      expect(w.to).toBeGreaterThan(w.from);
      if (i > 0) expect(w.from).toBe(windows[i - 1]!.to);
      expect(w.share).toBeGreaterThanOrEqual(0);
      expect(w.share).toBeLessThanOrEqual(1);
    }
  });
});
