/**
 * CPU pinning for the verify benchmark (Linux, `taskset` from util-linux): the server measured
 * (the floor or the verifier, with every thread and child it starts) runs on CPU 0, and the
 * registry, which appends the verifier's decisions to the audit chain in bursts, on the other
 * CPUs. Both servers are measured the same way. What it takes out is the scheduler handing the
 * measured server's core to a registry burst, which a deployment, with the registry on machines of
 * its own, does not see. The load generator is not pinned (kept off CPU 0, it would share one core
 * with those bursts and send late); Redis and PostgreSQL are not touched: they are the machine's
 * services, not the benchmark's.
 */
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

export interface Pinning {
  /** The CPU list of the server measured (`0`). */
  server: string;
  /** The CPU list of the registry (`1` on two cores, `1-7` on eight). */
  registry: string;
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
  const pinning = { server: '0', registry: cpus === 2 ? '1' : `1-${cpus - 1}` };
  return { pinning, why: `the server measured on CPU ${pinning.server}, the registry on CPU ${pinning.registry}, this generator anywhere (BENCH_PIN=0: no pinning)` };
}

/** The command line that starts `command` on the server's CPU (unchanged without pinning). */
export function onServerCpu(pinning: Pinning | undefined, command: string, args: string[]): { command: string; args: string[] } {
  return pinning === undefined ? { command, args } : { command: 'taskset', args: ['--cpu-list', pinning.server, command, ...args] };
}

/** The command line that starts `command` on the registry's CPUs (unchanged without pinning). */
export function onRegistryCpus(pinning: Pinning | undefined, command: string, args: string[]): { command: string; args: string[] } {
  return pinning === undefined ? { command, args } : { command: 'taskset', args: ['--cpu-list', pinning.registry, command, ...args] };
}
