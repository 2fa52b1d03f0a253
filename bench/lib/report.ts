/**
 * Printing for the benchmarks: aligned plain-text tables (pasted as-is into bench/RESULTS.md), number
 * formatting, and the machine description every result needs next to it.
 */
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';

export const MiB = 1024 * 1024;

/** A table as aligned text: the first column left-aligned, the others right-aligned. */
export function formatTable(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((row) => row.map(String))];
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  const line = (row: string[]) =>
    row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function printTable(title: string, headers: string[], rows: Array<Array<string | number>>): void {
  console.log(`\n${title}\n\n${formatTable(headers, rows)}\n`);
}

export function fixed(value: number | undefined, digits = 1): string {
  return value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits);
}

/** A ratio printed as `0.93x`; `-` when either side is missing. */
export function ratio(numerator: number | undefined, denominator: number | undefined): string {
  if (numerator === undefined || denominator === undefined || denominator === 0) return '-';
  return `${(numerator / denominator).toFixed(2)}x`;
}

export function metOrNot(met: boolean | undefined): string {
  return met === undefined ? 'not measured' : met ? 'MET' : 'NOT MET';
}

/** What a reader needs to weigh the numbers: cores, memory, Node, CPU model. */
export function machineDescription(): string {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? model;
  } catch {
    // not Linux: os.cpus() has it
  }
  return [
    `nproc ${cpus().length}`,
    `memory ${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    `node ${process.version}`,
    `CPU ${model}`,
    `${process.platform}/${process.arch}`,
  ].join(', ');
}

export function section(title: string): void {
  console.log(`\n${'='.repeat(title.length + 8)}\n=== ${title} ===\n${'='.repeat(title.length + 8)}`);
}
