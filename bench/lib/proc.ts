/**
 * CPU time and memory of other processes, read from /proc (Linux): the Azurite a benchmark started, whose work is
 * part of every upload but happens in another process; a runner process and what it spawns; a database server.
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

interface ProcStat {
  ppid: number;
  /** utime, stime, cutime, cstime in clock ticks: the process's own CPU and that of its waited-for children. */
  ticks: number;
}

function procStat(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]) };
  } catch {
    return undefined; // ended while we looked
  }
}

/**
 * CPU seconds used so far by `pid` and everything it started: its own, its children's that ended (the kernel
 * adds them to the parent that waits for them) and those still running, recursively. Read it before and after.
 */
export function processTreeCpuSeconds(pid: number): number {
  const parents = new Map<number, number[]>();
  for (const name of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    const stat = procStat(Number(name));
    if (stat) parents.set(stat.ppid, [...(parents.get(stat.ppid) ?? []), Number(name)]);
  }
  let ticks = 0;
  const visit = (current: number) => {
    ticks += procStat(current)?.ticks ?? 0;
    for (const child of parents.get(current) ?? []) visit(child);
  };
  visit(pid);
  return ticks / clockTicks();
}

/** CPU seconds of this process's children that ended and were waited for (cutime + cstime of /proc/self/stat). */
export function endedChildrenCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / clockTicks();
}

/** Peak resident set size of a running process (VmHWM), in MiB. */
export function peakRssMiB(pid: number): number | undefined {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}
