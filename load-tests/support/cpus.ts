/**
 * CPU pinning for the verify benchmark (Linux, `taskset` from util-linux): the server measured
 * (the floor or the verifier, with every thread and child it starts) gets CPU 0 to itself, and
 * everything this benchmark starts besides (this load generator, the registry appending the
 * verifier's decisions) runs on the other CPUs. Both servers are measured the same way; what it
 * takes out is the scheduler handing the measured server's core to a registry burst, which a
 * deployment, with the registry on machines of its own, does not see. Redis and PostgreSQL are not
 * touched: they are the machine's services, not the benchmark's.
 */
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

export interface Pinning {
  /** The CPU list of the server measured (`0`). */
  server: string;
  /** The CPU list of everything else this benchmark starts (`1` on two cores, `1-7` on eight). */
  rest: string;
}

/** Whether `taskset` runs here. */
function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * The pinning to use: none when `setting` is `0`, off Linux, on one CPU, or without `taskset`;
 * otherwise CPU 0 for the server and the rest for everything else. `why` says which.
 */
export function choosePinning(setting: string | undefined): { pinning: Pinning | undefined; why: string } {
  if (setting === '0') return { pinning: undefined, why: 'off (BENCH_PIN=0)' };
  const cpus = availableParallelism();
  if (process.platform !== 'linux') return { pinning: undefined, why: `off (${process.platform}: Linux only)` };
  if (cpus < 2) return { pinning: undefined, why: 'off (one CPU)' };
  if (!hasTaskset()) return { pinning: undefined, why: 'off (no taskset)' };
  const pinning = { server: '0', rest: cpus === 2 ? '1' : `1-${cpus - 1}` };
  return { pinning, why: `the server measured on CPU ${pinning.server}; this generator and the registry on CPU ${pinning.rest} (BENCH_PIN=0: no pinning)` };
}

/** The command line that starts `command` on the server's CPU (unchanged without pinning). */
export function onServerCpu(pinning: Pinning | undefined, command: string, args: string[]): { command: string; args: string[] } {
  return pinning === undefined ? { command, args } : { command: 'taskset', args: ['--cpu-list', pinning.server, command, ...args] };
}

/** Moves this process (every thread) to the other CPUs; the children it starts afterwards inherit them. */
export function pinSelf(pinning: Pinning | undefined): void {
  if (pinning === undefined) return;
  execFileSync('taskset', ['--all-tasks', '--cpu-list', '--pid', pinning.rest, String(process.pid)], { stdio: 'ignore' });
}
