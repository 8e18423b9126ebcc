import { describe, expect, it } from 'vitest';
import { whileTheUiBuilds } from '../test-sequencer.js';

describe('the test sequencer', () => {
  const ui = (file: string) => file.startsWith('ui');

  it('runs the first files that need no UI build beside the first one that builds it', () => {
    const ordered = ['ui-approval', 'ui-accessibility', 'ui-demo', 'e2e-1', 'e2e-2', 'e2e-3', 'e2e-4', 'e2e-5', 'unit-1'];
    expect(whileTheUiBuilds(ordered, ui)).toEqual(['ui-approval', 'e2e-1', 'e2e-2', 'e2e-3', 'e2e-4', 'ui-accessibility', 'ui-demo', 'e2e-5', 'unit-1']);
  });

  it('keeps the order when no file needs the UI, or only files after it need none', () => {
    expect(whileTheUiBuilds(['a', 'b'], ui)).toEqual(['a', 'b']);
    expect(whileTheUiBuilds(['a', 'ui-1', 'b'], ui)).toEqual(['a', 'ui-1', 'b']);
    expect(whileTheUiBuilds(['ui-1', 'ui-2'], ui)).toEqual(['ui-1', 'ui-2']);
  });
});
