import { describe, expect, it } from 'vitest';
import { buildHopTree, type HopNode } from './hop-tree';
import type { Hop } from '@writ/contracts';

function hop(jti: string, parent: string | null): Hop {
  return {
    jti,
    parent_jti: parent,
    agent: { client_id: `agt_${jti}`, name: jti },
    issued_at: '2026-11-25T10:00:00.000Z',
    expires_at: '2026-11-25T10:05:00.000Z',
    scope: 'flight_booking:read',
    token_hash_prefix: 'abcd',
    decisions: [],
  };
}

/** The tree as nested jti lists, `!` marking orphans, to compare shapes at a glance. */
function shape(nodes: readonly HopNode[]): unknown[] {
  return nodes.map((node) => {
    const name = `${node.orphan ? '!' : ''}${node.hop.jti}`;
    return node.children.length === 0 ? name : { [name]: shape(node.children) };
  });
}

describe('buildHopTree', () => {
  it('is empty for no hops', () => {
    expect(buildHopTree([])).toEqual([]);
  });

  it('puts every hop under the hop its parent_jti names, siblings in list order', () => {
    const hops = [hop('root', null), hop('b', 'root'), hop('a', 'root'), hop('b1', 'b'), hop('b2', 'b'), hop('b1x', 'b1')];
    expect(shape(buildHopTree(hops))).toEqual([{ root: [{ b: [{ b1: ['b1x'] }, 'b2'] }, 'a'] }]);
  });

  it('does not depend on parents coming before their children in the list', () => {
    const hops = [hop('leaf', 'mid'), hop('mid', 'root'), hop('root', null)];
    expect(shape(buildHopTree(hops))).toEqual([{ root: [{ mid: ['leaf'] }] }]);
  });

  it('keeps several roots', () => {
    expect(shape(buildHopTree([hop('r1', null), hop('r2', null), hop('c', 'r2')]))).toEqual(['r1', { r2: ['c'] }]);
  });

  it('shows a hop whose parent is missing as an orphan root, with its own children', () => {
    const hops = [hop('root', null), hop('lost', 'gone'), hop('child', 'lost')];
    expect(shape(buildHopTree(hops))).toEqual(['root', { '!lost': ['child'] }]);
  });

  it('shows a hop that names itself as parent once, as an orphan', () => {
    expect(shape(buildHopTree([hop('self', 'self')]))).toEqual(['!self']);
  });

  it('cuts a loop of parents at its first hop in the list, showing every hop once', () => {
    const hops = [hop('root', null), hop('x', 'y'), hop('y', 'z'), hop('z', 'x')];
    expect(shape(buildHopTree(hops))).toEqual(['root', { '!x': [{ z: ['y'] }] }]);
  });

  it('keeps the first hop of a repeated jti', () => {
    const first = hop('dup', null);
    const second = { ...hop('dup', null), scope: 'other' };
    const tree = buildHopTree([first, second]);
    expect(tree).toHaveLength(1);
    expect(tree[0]?.hop).toBe(first);
  });
});
