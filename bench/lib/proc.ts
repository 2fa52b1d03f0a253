/**
 * CPU time of this process's own child processes, read from /proc (Linux): the benchmark uses it for the
 * Azurite it started, whose work is part of every upload but happens in another process.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ticksPerSecond;
}

/** A process's command name, parent and CPU seconds (user + system) so far; undefined when it is gone or unreadable. */
export function processCpu(pid: number): { command: string; parentPid: number; cpuSeconds: number } | undefined {
  try {
    // Fields after the parenthesised command name: state ppid … utime(14) stime(15), 1-based from pid.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const command = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    return { command, parentPid: Number(fields[1]), cpuSeconds: (Number(fields[11]) + Number(fields[12])) / clockTicks() };
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) used so far by the children of this process whose command line holds `marker`. */
export function childCpuSeconds(marker: string): number | undefined {
  let seconds = 0;
  let found = false;
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined; // no /proc: not Linux
  }
  for (const pid of entries) {
    const stat = processCpu(Number(pid));
    if (stat?.parentPid !== process.pid) continue;
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)) continue;
    } catch {
      continue; // the process ended while we looked
    }
    seconds += stat.cpuSeconds;
    found = true;
  }
  return found ? seconds : undefined;
}
