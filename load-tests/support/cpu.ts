/**
 * CPU time spent by the processes of a benchmark, to tell where the two cores went: a process
 * group (read from /proc, Linux only), Redis (`INFO cpu`) and this process. Each reader answers
 * seconds so far, or undefined where it cannot tell.
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

/** User + system CPU seconds of every live process in process group `pgid` (proc(5): fields 5, 14 and 15 of /proc/<pid>/stat). */
export function groupCpuSeconds(pgid: number): number | undefined {
  let ticks = 0;
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
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) !== pgid) continue;
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / clockTicks();
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

/** User + system CPU seconds of one process, or undefined once it is gone. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks();
  } catch {
    return undefined;
  }
}

/**
 * The whole machine's busy and total CPU time so far, in clock ticks summed over every core (proc(5),
 * the `cpu` line of /proc/stat). `steal` (part of `busy`) is time the hypervisor gave this virtual
 * machine's CPUs to someone else: on a shared host it is the noise no process here caused.
 */
export function machineTicks(): { busy: number; steal: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    const busy = user! + nice! + system! + irq! + softirq! + steal!;
    return { busy, steal: steal!, total: busy + idle! + iowait! };
  } catch {
    return undefined;
  }
}
