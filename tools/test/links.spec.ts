import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support.js';

/**
 * Every link of the README, the docs and the other READMEs must lead somewhere: a relative link
 * to a file or folder that exists, an anchor to a heading that the target has. External http(s)
 * links are not fetched (nothing here touches the network); they must only be well-formed URLs.
 */

const SKIPPED_FOLDERS = new Set(['node_modules', '.git', '.next', '.nx', '.data', 'coverage', 'dist']);

/** README.md files anywhere in the workspace, and every Markdown file under docs/. */
function documents(): string[] {
  const found: string[] = [];
  const walk = (folder: string, underDocs: boolean) => {
    for (const entry of readdirSync(resolve(ROOT, folder), { withFileTypes: true })) {
      if (SKIPPED_FOLDERS.has(entry.name)) continue;
      const path = folder === '' ? entry.name : `${folder}/${entry.name}`;
      if (entry.isDirectory()) walk(path, underDocs || path === 'docs');
      else if (entry.name === 'README.md' || (underDocs && entry.name.endsWith('.md'))) found.push(path);
    }
  };
  walk('', false);
  return found.sort();
}

/** The Markdown outside fenced code blocks and inline code spans, line numbers kept. */
function proseLines(markdown: string): string[] {
  let fence: string | undefined;
  return markdown.split('\n').map((line) => {
    const marker = /^\s{0,3}(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence !== undefined) {
      if (marker !== undefined && marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
      return '';
    }
    if (marker !== undefined) {
      fence = marker;
      return '';
    }
    return line.replace(/(`+)[\s\S]*?\1/g, '');
  });
}

/** A link of a document: where it points and on which line. */
interface Link {
  line: number;
  target: string;
}

/** Inline links and images, reference definitions, autolinks and HTML `href`/`src` attributes. */
function linksOf(markdown: string): Link[] {
  const links: Link[] = [];
  proseLines(markdown).forEach((text, index) => {
    const line = index + 1;
    for (const m of text.matchAll(/\]\(\s*(<[^>]*>|[^\s)]+(?:\([^\s)]*\)[^\s)]*)*)(?:\s+"[^"]*")?\s*\)/g)) links.push({ line, target: m[1]!.replace(/^<|>$/g, '') });
    for (const m of text.matchAll(/^\s{0,3}\[[^\]]+\]:\s*(\S+)/g)) links.push({ line, target: m[1]!.replace(/^<|>$/g, '') });
    for (const m of text.matchAll(/<(https?:\/\/[^>\s]+)>/g)) links.push({ line, target: m[1]! });
    for (const m of text.matchAll(/\b(?:href|src)="([^"]+)"/g)) links.push({ line, target: m[1]! });
  });
  return links;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces made hyphens. */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/`/g, '');
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors a Markdown document offers: its headings' slugs (repeats numbered as GitHub does) and HTML ids. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fence: string | undefined;
  for (const line of markdown.split('\n')) {
    const marker = /^\s{0,3}(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence !== undefined) {
      if (marker !== undefined && marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
      continue;
    }
    if (marker !== undefined) {
      fence = marker;
      continue;
    }
    const heading = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading !== undefined) {
      const base = slug(heading);
      const count = seen.get(base) ?? 0;
      seen.set(base, count + 1);
      anchors.add(count === 0 ? base : `${base}-${count}`);
    }
    for (const m of line.matchAll(/<a\s[^>]*(?:name|id)="([^"]+)"/g)) anchors.add(m[1]!);
  }
  return anchors;
}

/** What is wrong with `target`, linked from the document at `from` (relative to the workspace), if anything. */
function problemWith(target: string, from: string, read: (path: string) => string | undefined): string | undefined {
  if (/^https?:/i.test(target)) {
    try {
      const url = new URL(target);
      return url.hostname === '' || /\s/.test(target) ? 'not a well-formed URL' : undefined;
    } catch {
      return 'not a well-formed URL';
    }
  }
  if (/^mailto:[^@\s]+@[^@\s]+$/.test(target)) return undefined;
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return 'a link scheme other than http(s) or mailto';
  const [pathPart = '', anchor] = target.split('#', 2);
  const path = pathPart === '' ? from : join(dirname(from), decodeURI(pathPart)).replace(/\/$/, '');
  if (path.startsWith('..')) return 'outside the workspace';
  const content = read(path);
  if (content === undefined) return `${path} does not exist`;
  if (anchor === undefined || anchor === '') return undefined;
  if (/^L\d+(-L\d+)?$/.test(anchor)) {
    const lines = content.split('\n').length;
    return anchor.split('-').every((l) => Number(l.slice(1)) <= lines) ? undefined : `${path} has fewer lines than ${anchor}`;
  }
  if (!path.endsWith('.md')) return `an anchor into ${path}, which is not Markdown`;
  return anchorsOf(content).has(decodeURIComponent(anchor)) ? undefined : `${path} has no heading #${anchor}`;
}

/** A file's text, `''` for a folder, `undefined` when nothing is there. */
function readFromWorkspace(path: string): string | undefined {
  const absolute = resolve(ROOT, path);
  if (!existsSync(absolute)) return undefined;
  return statSync(absolute).isDirectory() ? '' : readFileSync(absolute, 'utf8');
}

describe('links in the README, the docs and the other READMEs', () => {
  const files = documents();

  it('are looked for in the README, every doc and every other README', () => {
    expect(files).toContain('README.md');
    expect(files).toContain('docs/README.md');
    expect(files).toContain('docs/configuration.md');
    expect(files.filter((file) => file.startsWith('docs/adr/')).length).toBeGreaterThan(0);
    expect(files).toContain('load-tests/README.md');
  });

  it('include, in docs/README.md, every document under docs/', () => {
    const listed = new Set(linksOf(readFileSync(resolve(ROOT, 'docs/README.md'), 'utf8')).map(({ target }) => join('docs', target.split('#')[0]!)));
    const unlisted = files.filter((file) => file.startsWith('docs/') && file !== 'docs/README.md' && !listed.has(file));
    expect(unlisted, 'add a line for each to docs/README.md').toEqual([]);
  });

  it.each(files)('in %s all resolve', (file) => {
    const broken = linksOf(readFileSync(resolve(ROOT, file), 'utf8'))
      .map(({ line, target }) => ({ line, target, problem: problemWith(target, relative(ROOT, resolve(ROOT, file)), readFromWorkspace) }))
      .filter(({ problem }) => problem !== undefined)
      .map(({ line, target, problem }) => `${file}:${line}: ${target}: ${problem}`);
    expect(broken).toEqual([]);
  });
});

describe('the link check', () => {
  const workspace: Record<string, string> = {
    'README.md': '# Writ\n\n## The `npm start` command\n\n## What is durable, where?\n\n## Repeated\n\n## Repeated\n\n<a id="custom"></a>\n',
    'docs/guide.md': '# Guide\n\n```md\n# Not a heading\n```\n',
    'docs/adr': '',
    'tools/start.ts': 'one\ntwo\nthree\n',
  };
  const read = (path: string) => workspace[path];

  it('accepts files, folders, headings (repeats numbered), HTML ids, line anchors and well-formed external URLs', () => {
    for (const target of ['docs/guide.md', 'docs/adr/', '#the-npm-start-command', '#what-is-durable-where', '#repeated-1', '#custom', 'tools/start.ts#L2-L3', 'https://www.rfc-editor.org/rfc/rfc9449#section-4.3', 'mailto:security@writ.example']) {
      expect(problemWith(target, 'README.md', read), target).toBeUndefined();
    }
    expect(problemWith('../README.md#writ', 'docs/guide.md', read)).toBeUndefined();
  });

  it('names a missing file, a missing heading, a heading inside a code block, a line past the end and a malformed URL', () => {
    expect(problemWith('docs/gone.md', 'README.md', read)).toBe('docs/gone.md does not exist');
    expect(problemWith('docs/guide.md#setup', 'README.md', read)).toBe('docs/guide.md has no heading #setup');
    expect(problemWith('guide.md#not-a-heading', 'docs/guide.md', read)).toBe('docs/guide.md has no heading #not-a-heading');
    expect(problemWith('tools/start.ts#L9', 'README.md', read)).toBe('tools/start.ts has fewer lines than L9');
    expect(problemWith('https://exa mple.com', 'README.md', read)).toBe('not a well-formed URL');
    expect(problemWith('../../outside.md', 'docs/guide.md', read)).toBe('outside the workspace');
    expect(problemWith('ftp://example.com/file', 'README.md', read)).toBe('a link scheme other than http(s) or mailto');
  });

  it('finds inline links, images, reference definitions, autolinks and HTML links, and none inside code', () => {
    const markdown = [
      'See [the guide](docs/guide.md "Guide") and ![shot](docs/shot.png).',
      '[ref]: docs/ref.md',
      '<https://example.com/a> and <a href="docs/html.md">html</a>',
      'Not `[code](docs/code.md)`.',
      '```',
      '[fenced](docs/fenced.md)',
      '```',
    ].join('\n');
    expect(linksOf(markdown).map((link) => link.target)).toEqual(['docs/guide.md', 'docs/shot.png', 'docs/ref.md', 'https://example.com/a', 'docs/html.md']);
  });

  it('makes anchors as GitHub does', () => {
    expect(slug('The `npm start` command')).toBe('the-npm-start-command');
    expect(slug('What is durable, where?')).toBe('what-is-durable-where');
    expect(slug('[ADR 0011](adr/0011.md): verifier_state & more')).toBe('adr-0011-verifier_state--more');
    expect(slug('Verification › Steady rate')).toBe('verification--steady-rate');
  });
});
