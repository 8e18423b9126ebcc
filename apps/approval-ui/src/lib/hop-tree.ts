import type { Hop } from '@writ/contracts';

/** One hop of a transaction with the hops it delegated to. */
export interface HopNode {
  hop: Hop;
  children: HopNode[];
  /** Its `parent_jti` names a hop that is not in the list (or is part of a loop). */
  orphan: boolean;
}

/**
 * The tree of a transaction's hops, from the flat list the registry sends: each hop under the
 * hop its `parent_jti` names, roots (`parent_jti` null) first. Siblings keep the order of the
 * list. A hop whose parent is missing from the list is shown as a root marked `orphan`, and so
 * is a hop caught in a loop of parents, so a damaged list still shows every hop exactly once.
 * A repeated `jti` keeps its first hop.
 *
 * @example
 * ```ts
 * buildHopTree([root, child]); // [{ hop: root, orphan: false, children: [{ hop: child, orphan: false, children: [] }] }]
 * ```
 */
export function buildHopTree(hops: readonly Hop[]): HopNode[] {
  const nodes = new Map<string, HopNode>();
  for (const hop of hops) {
    if (!nodes.has(hop.jti)) nodes.set(hop.jti, { hop, children: [], orphan: false });
  }
  const parentOf = (node: HopNode): HopNode | undefined =>
    node.hop.parent_jti === null ? undefined : nodes.get(node.hop.parent_jti);

  const roots: HopNode[] = [];
  for (const node of nodes.values()) {
    const parent = parentOf(node);
    if (node.hop.parent_jti === null) {
      roots.push(node);
    } else if (parent === undefined || parent === node) {
      node.orphan = true;
      roots.push(node);
    } else {
      parent.children.push(node);
    }
  }

  const reached = new Set<HopNode>();
  const reach = (from: HopNode): void => {
    const stack = [from];
    for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
      if (reached.has(node)) continue;
      reached.add(node);
      stack.push(...node.children);
    }
  };
  roots.forEach(reach);
  // What no root reaches hangs in a loop of parents: cut each loop at its first hop in the list.
  for (const node of nodes.values()) {
    if (reached.has(node)) continue;
    const parent = parentOf(node);
    if (parent !== undefined) parent.children = parent.children.filter((child) => child !== node);
    node.orphan = true;
    roots.push(node);
    reach(node);
  }
  return roots;
}
