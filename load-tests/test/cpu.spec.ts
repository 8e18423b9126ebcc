import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { commandCpuSeconds, cpuSecondsBetween, groupCpuSeconds, processCpuSeconds, threadCpuSeconds } from '../support/cpu.js';

describe('cpuSecondsBetween', () => {
  it('adds each process of the second reading less what it had at the first, whole when it is new', () => {
    const before = new Map([
      [10, 1.5],
      [11, 0.25],
    ]);
    const after = new Map([
      [10, 2],
      [12, 0.125],
    ]);
    // 11 exited in between: its time is gone, never subtracted from the others.
    expect(cpuSecondsBetween(before, after)).toBe(0.5 + 0.125);
  });

  it('is zero between two equal readings', () => {
    const reading = new Map([[7, 3]]);
    expect(cpuSecondsBetween(reading, new Map(reading))).toBe(0);
  });
});

describe.runIf(process.platform === 'linux')('/proc readings', () => {
  it('finds this process by its command name, with the time it has spent', () => {
    const command = readFileSync('/proc/self/comm', 'latin1').trim();
    const before = commandCpuSeconds(command)!;
    expect(before.has(process.pid)).toBe(true);
    // Spin until this process has spent 30 ms of CPU (several clock ticks, whatever the host steals).
    const start = process.cpuUsage();
    while (process.cpuUsage(start).user + process.cpuUsage(start).system < 30_000);
    const after = commandCpuSeconds(command)!;
    expect(after.get(process.pid)!).toBeGreaterThan(before.get(process.pid)!);
    expect(cpuSecondsBetween(before, after)).toBeGreaterThan(0);
  });

  it("splits a process's time between its main thread, which this spin charges, and its other threads", () => {
    const before = threadCpuSeconds(process.pid)!;
    const start = process.cpuUsage();
    while (process.cpuUsage(start).user + process.cpuUsage(start).system < 30_000);
    const after = threadCpuSeconds(process.pid)!;
    expect(after.main).toBeGreaterThan(before.main);
    expect(after.others).toBeGreaterThanOrEqual(before.others);
    // Threads that ended took their time with them: the split adds up to at most the process's.
    expect(after.main + after.others).toBeLessThanOrEqual(processCpuSeconds(process.pid)! + 0.01);
    expect(threadCpuSeconds(2 ** 22 + 1)).toBeUndefined();
  });

  it('finds no process under a command name nothing has', () => {
    expect(commandCpuSeconds('no-such-command-writ')?.size).toBe(0);
  });

  it('adds up the process group this process leads or belongs to', () => {
    const stat = readFileSync('/proc/self/stat', 'latin1');
    const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    expect(groupCpuSeconds(pgid)!).toBeGreaterThanOrEqual(commandCpuSeconds(readFileSync('/proc/self/comm', 'latin1').trim())!.get(process.pid)!);
  });
});
