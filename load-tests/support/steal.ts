/**
 * Lines a run's slow requests up with the moments the hypervisor took the machine's CPUs away
 * (steal, /proc/stat), to tell a server's own tail from the host's. Linux only; elsewhere there are
 * no windows and nothing is said.
 */
import { stealTicksByCpu } from './cpu.js';

/** A stretch of time (`performance.now()`, ms) and the largest share of any one CPU stolen in it. */
export interface StealWindow {
  from: number;
  to: number;
  share: number;
}

/** Reads every CPU's steal every `everyMs` from `start()` until `stop()`, which answers the windows between readings. */
export class StealSampler {
  private readonly readings: { at: number; cpus: { steal: number; total: number }[] }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly everyMs = 200) {}

  start(): void {
    this.read();
    this.timer = setInterval(() => this.read(), this.everyMs);
  }

  stop(): StealWindow[] {
    clearInterval(this.timer);
    this.read();
    const windows: StealWindow[] = [];
    for (let i = 1; i < this.readings.length; i++) {
      const [a, b] = [this.readings[i - 1]!, this.readings[i]!];
      let share = 0;
      b.cpus.forEach((cpu, n) => {
        const before = a.cpus[n];
        if (before === undefined || cpu.total <= before.total) return;
        share = Math.max(share, (cpu.steal - before.steal) / (cpu.total - before.total));
      });
      windows.push({ from: a.at, to: b.at, share });
    }
    return windows;
  }

  private read(): void {
    const cpus = stealTicksByCpu();
    if (cpus !== undefined) this.readings.push({ at: performance.now(), cpus });
  }
}

export interface TailAgainstSteal {
  /** Answered requests slower than the threshold, and how many of them overlapped a stolen window. */
  slow: number;
  slowInStolen: number;
  /** The other answered requests, and how many of them overlapped a stolen window. */
  fast: number;
  fastInStolen: number;
  /** The share of the sampled time in stolen windows. */
  stolenTime: number;
}

/**
 * Counts the requests (each [scheduled send time, answer time]) slower than `slowMs` and the
 * others, and how many of each overlapped a window in which the hypervisor took at least
 * `stolenShare` of some CPU. When the slow ones overlap such windows far more often than the
 * others, the tail is the host's.
 */
export function tailAgainstSteal(answers: readonly (readonly [number, number])[], windows: readonly StealWindow[], slowMs: number, stolenShare: number): TailAgainstSteal {
  const stolen = windows.filter((w) => w.share >= stolenShare).sort((a, b) => a.from - b.from);
  const sampled = windows.reduce((sum, w) => sum + (w.to - w.from), 0);
  const out: TailAgainstSteal = { slow: 0, slowInStolen: 0, fast: 0, fastInStolen: 0, stolenTime: sampled === 0 ? 0 : stolen.reduce((sum, w) => sum + (w.to - w.from), 0) / sampled };
  for (const [at, answered] of answers) {
    // The first stolen window ending after the request was due; it overlaps if it starts before the answer.
    let low = 0;
    let high = stolen.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (stolen[mid]!.to <= at) low = mid + 1;
      else high = mid;
    }
    const touched = low < stolen.length && stolen[low]!.from < answered;
    if (answered - at > slowMs) {
      out.slow += 1;
      if (touched) out.slowInStolen += 1;
    } else {
      out.fast += 1;
      if (touched) out.fastInStolen += 1;
    }
  }
  return out;
}
