import type { z } from 'zod';

/** `authorization_details[0].actions`: the path of an issue as a reader would write it. */
function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '');
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/**
 * One short sentence for the first zod issue: `unknown field 'x'`, `purpose is required`, or
 * `path: message`. Management API bodies are strict (ARCHITECTURE.md, "Security defaults"), so
 * an unknown field is named rather than silently dropped.
 */
export function describeIssue(error: z.ZodError, input: unknown): { path: readonly PropertyKey[]; text: string } {
  const issue = error.issues[0]!;
  const where = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => `'${k}'`).join(', ');
    return { path: issue.path, text: `unknown field${issue.keys.length > 1 ? 's' : ''} ${keys}${where ? ` in ${where}` : ''}` };
  }
  if (issue.code === 'invalid_type' && where && valueAt(input, issue.path) === undefined) {
    return { path: issue.path, text: `${where} is required` };
  }
  return { path: issue.path, text: where ? `${where}: ${issue.message}` : issue.message };
}
