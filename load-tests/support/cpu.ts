/**
 * CPU time spent by the processes of a benchmark, to tell where the two cores went: a process
 * group or the processes of one command (read from /proc, Linux only), Redis (`INFO cpu`) and
 * this process. Each reader answers seconds so far, or undefined where it cannot tell.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/**
 * User + system CPU seconds of each live process whose /proc/<pid>/stat (proc(5)) passes `take`,
 * given the command name (field 2) and the fields after it (field 3 onwards); by pid.
 */
function readProcesses(take: (command: string, fields: string[]) => boolean): Map<number, number> | undefined {
  const seconds = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue;
    }
    // The command name (field 2) may hold spaces: the fields after it start past its closing parenthesis.
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    if (!take(stat.slice(stat.indexOf('(') + 1, close), fields)) continue;
    seconds.set(Number(entry), cpuSecondsOf(fields));
  }
  return seconds;
}

/** User + system CPU seconds of every live process in process group `pgid` (fields 5, 14 and 15). */
export function groupCpuSeconds(pgid: number): number | undefined {
  const seconds = readProcesses((_command, fields) => Number(fields[2]) === pgid);
  return seconds === undefined ? undefined : [...seconds.values()].reduce((a, b) => a + b, 0);
}

/**
 * User + system CPU seconds of every live process named `command`, by pid (for PostgreSQL: the
 * postmaster, every backend and the background workers, whichever database they serve). Compare
 * two readings with {@link cpuSecondsBetween}.
 */
export function commandCpuSeconds(command: string): Map<number, number> | undefined {
  return readProcesses((name) => name === command);
}

/**
 * CPU seconds spent between two readings by pid: each process of the second reading, less what it
 * had at the first (a process started in between counts whole). A process that exited in between
 * takes its last seconds with it, so this can only undercount.
 */
export function cpuSecondsBetween(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, seconds] of after) total += seconds - (before.get(pid) ?? 0);
  return total;
}

/** Redis's own CPU seconds (main thread and children, user + system). */
export async function redisCpuSeconds(redis: Redis): Promise<number | undefined> {
  try {
    const info = await redis.info('cpu');
    const value = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
    const total = value('used_cpu_user') + value('used_cpu_sys');
    return Number.isFinite(total) ? total : undefined;
  } catch {
    return undefined;
  }
}

/** This process's CPU seconds. */
export function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** User + system CPU seconds (utime and stime, fields 14 and 15) from the fields after a stat's command name. */
function cpuSecondsOf(fields: string[]): number {
  return (Number(fields[11]) + Number(fields[12])) / clockTicks();
}

/** User + system CPU seconds of a /proc `stat` file (a process's or a thread's), or undefined once it is gone. */
function statCpuSeconds(path: string): number | undefined {
  try {
    const stat = readFileSync(path, 'latin1');
    return cpuSecondsOf(stat.slice(stat.lastIndexOf(')') + 2).split(' '));
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds of one process, or undefined once it is gone. */
export function processCpuSeconds(pid: number): number | undefined {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/**
 * User + system CPU seconds of a process's main thread (the one whose id is the process's: Node's
 * event loop) and of all its other threads together (V8's helpers: the garbage collector's parallel
 * and concurrent work, compilation; the libuv pool; a loader's worker); undefined once it is gone.
 */
export function threadCpuSeconds(pid: number): { main: number; others: number } | undefined {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  const split = { main: 0, others: 0 };
  for (const task of tasks) {
    // A thread that ended between the listing and the read is counted by neither.
    const seconds = statCpuSeconds(`/proc/${pid}/task/${task}/stat`) ?? 0;
    if (task === String(pid)) split.main += seconds;
    else split.others += seconds;
  }
  return split;
}

/**
 * The whole machine's busy and total CPU time so far, in clock ticks summed over every core (proc(5),
 * the `cpu` line of /proc/stat). `steal` (part of `busy`) is time the hypervisor gave this virtual
 * machine's CPUs to someone else: on a shared host it is the noise no process here caused.
 */
export function machineTicks(): { busy: number; steal: number; total: number } | undefined {
  try {
    return ticksOf(readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!.trim().split(/\s+/).slice(1));
  } catch {
    return undefined;
  }
}

/** Busy (steal included), stolen and total clock ticks from the numbers of a `cpu` line of /proc/stat. */
function ticksOf(fields: string[]): { busy: number; steal: number; total: number } {
  const [user, nice, system, idle, iowait, irq, softirq, steal] = fields.map(Number);
  const busy = user! + nice! + system! + irq! + softirq! + steal!;
  return { busy, steal: steal!, total: busy + idle! + iowait! };
}

/**
 * Each CPU's stolen and total clock ticks so far (the `cpu<N>` lines of /proc/stat, proc(5)), by
 * CPU number; undefined off Linux.
 */
export function stealTicksByCpu(): { steal: number; total: number }[] | undefined {
  try {
    const cpus: { steal: number; total: number }[] = [];
    for (const line of readFileSync('/proc/stat', 'latin1').split('\n')) {
      const match = /^cpu(\d+)\s+(.*)$/.exec(line);
      if (match === null) continue;
      const { steal, total } = ticksOf(match[2]!.trim().split(/\s+/));
      cpus[Number(match[1])] = { steal, total };
    }
    return cpus.length > 0 ? cpus : undefined;
  } catch {
    return undefined;
  }
}
