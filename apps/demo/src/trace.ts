/** One line of the demo's trace: which hop, which agent, what it tried, what Writ decided. */
export interface TraceLine {
  hop: string;
  agent: string;
  what: string;
  /** `allow`, an error code (`approval_required`, `revoked`, ...), or a registry outcome (`approved`). */
  decision: string;
  /** What the demo expects; a different decision fails the run. */
  expected: string;
}

const COLUMNS = { hop: 4, agent: 26, what: 58 };

function pad(text: string, width: number): string {
  return text.length >= width ? `${text.slice(0, width - 1)}…` : text.padEnd(width);
}

/**
 * The readable trace the demo prints, and its own check: every decision is compared with what
 * was expected, and the run fails (exit 1) if any differs.
 */
export class Trace {
  readonly lines: (TraceLine & { ok: boolean })[] = [];

  constructor(private readonly write: (line: string) => void) {}

  header(): void {
    this.write(`${pad('hop', COLUMNS.hop)} ${pad('agent', COLUMNS.agent)} ${pad('capability / request', COLUMNS.what)} decision`);
    this.write('-'.repeat(COLUMNS.hop + COLUMNS.agent + COLUMNS.what + 22));
  }

  section(title: string): void {
    this.write('');
    this.write(`== ${title}`);
  }

  note(text: string): void {
    this.write(`     ${text}`);
  }

  record(line: TraceLine): boolean {
    const ok = line.decision === line.expected;
    this.lines.push({ ...line, ok });
    const mark = ok ? '✓' : `✗ expected ${line.expected}`;
    this.write(`${pad(line.hop, COLUMNS.hop)} ${pad(line.agent, COLUMNS.agent)} ${pad(line.what, COLUMNS.what)} ${line.decision}  ${mark}`);
    return ok;
  }

  get failures(): (TraceLine & { ok: boolean })[] {
    return this.lines.filter((line) => !line.ok);
  }
}
