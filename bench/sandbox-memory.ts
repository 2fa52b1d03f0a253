/**
 * What a newcomer's first `npm run sandbox` needs in memory: the command is run as they run it (npm, tsx, the
 * sandbox's launcher and main process, Azurite, esbuild), and the whole process tree is sampled from /proc:
 * the peak of the tree's summed RSS and PSS (PSS shares pages between the processes that map them, so it is
 * what the machine needs), each process's own peak (VmHWM, exact), and the main process's memory at every line
 * the sandbox prints (`DBDIST_SANDBOX_MEMORY=1` makes it add V8 heap, external and ArrayBuffer figures).
 *
 *   npm run bench -- sandbox                       the walkthrough (`npm run sandbox`)
 *   npm run bench -- sandbox --sandbox-args "--encrypt --compression zstd"
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fixed, metOrNot, printTable } from './lib/report.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const sampleEveryMs = 100;
const newcomerBudgetMiB = 1536;

interface ProcessSample {
  pid: number;
  name: string;
  rssMiB: number;
  pssMiB: number;
  hwmMiB: number;
}

export async function runSandboxMemoryBench(options: { sandboxArgs: string[] }): Promise<void> {
  const command = ['npm', 'run', 'sandbox', ...(options.sandboxArgs.length ? ['--', ...options.sandboxArgs] : [])];
  console.log(`Running \`${command.join(' ')}\` and sampling its process tree every ${sampleEveryMs} ms …`);
  // The bench's own NODE_EXTRA_CA_CERTS is not passed on: a newcomer's shell has none either.
  const env: NodeJS.ProcessEnv = { ...process.env, DBDIST_SANDBOX_MEMORY: '1' };
  delete env.NODE_EXTRA_CA_CERTS;
  delete env.DBDIST_BENCH_TRUSTED;
  delete env.NODE_OPTIONS;
  const child = spawn(command[0]!, command.slice(1), { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const peaks = new Map<number, ProcessSample>();
  let peakTree = { rssMiB: 0, pssMiB: 0, atSeconds: 0 };
  const stages: Array<{ line: string; mainMiB: number; treePssMiB: number }> = [];
  let output = '';
  const started = Date.now();
  let latest: ProcessSample[] = [];

  const sample = () => {
    latest = processTree(child.pid!);
    const rss = latest.reduce((sum, p) => sum + p.rssMiB, 0);
    const pss = latest.reduce((sum, p) => sum + p.pssMiB, 0);
    if (pss > peakTree.pssMiB) peakTree = { rssMiB: rss, pssMiB: pss, atSeconds: (Date.now() - started) / 1000 };
    for (const p of latest) {
      const previous = peaks.get(p.pid);
      peaks.set(p.pid, { ...p, rssMiB: Math.max(p.rssMiB, previous?.rssMiB ?? 0), pssMiB: Math.max(p.pssMiB, previous?.pssMiB ?? 0), hwmMiB: Math.max(p.hwmMiB, previous?.hwmMiB ?? 0) });
    }
  };
  const timer = setInterval(sample, sampleEveryMs);
  let pending = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    output += text;
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      sample();
      const main = latest.filter((p) => p.name === 'sandbox main').reduce((sum, p) => sum + p.rssMiB, 0);
      stages.push({ line, mainMiB: main, treePssMiB: latest.reduce((sum, p) => sum + p.pssMiB, 0) });
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (output += text));
  const code = await new Promise<number | null>((resolve) => child.once('close', (exitCode) => resolve(exitCode)));
  clearInterval(timer);
  const passed = code === 0 && /PASS/.test(output);

  console.log('\nThe sandbox\'s lines, with the main process\'s RSS and the tree\'s PSS when each was printed:\n');
  for (const stage of stages) console.log(`  ${fixed(stage.mainMiB, 0).padStart(5)} MiB main  ${fixed(stage.treePssMiB, 0).padStart(5)} MiB tree  ${stage.line.slice(0, 150)}`);
  printTable(
    'Peak memory of each process of `npm run sandbox` (MiB)',
    ['process', 'pid', 'peak RSS (VmHWM)', 'peak PSS sampled'],
    [...peaks.values()].sort((a, b) => b.hwmMiB - a.hwmMiB).map((p) => [p.name, p.pid, fixed(p.hwmMiB), fixed(p.pssMiB)]),
  );
  console.log(`Whole tree at its peak (t=${fixed(peakTree.atSeconds)} s): PSS ${fixed(peakTree.pssMiB)} MiB, summed RSS ${fixed(peakTree.rssMiB)} MiB`);
  console.log(`Sandbox result: ${passed ? 'PASS' : `FAILED (exit ${code})\n${output.slice(-2000)}`}`);
  console.log(`Target: a first run needs less than ${newcomerBudgetMiB} MiB (tree PSS at its peak): ${metOrNot(passed ? peakTree.pssMiB < newcomerBudgetMiB : undefined)}`);
  if (!passed) throw new Error('the sandbox did not pass');
}

/** `pid` and its descendants, each with its memory now (processes that end meanwhile are skipped). */
function processTree(root: number): ProcessSample[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // ended
    }
  }
  const samples: ProcessSample[] = [];
  const visit = (pid: number) => {
    const measured = measure(pid);
    if (measured) samples.push(measured);
    for (const child of children.get(pid) ?? []) visit(child);
  };
  visit(root);
  return samples;
}

function measure(pid: number): ProcessSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string, text: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const environ = safeRead(`/proc/${pid}/environ`);
    return { pid, name: nameOf(cmdline, environ), rssMiB: kib('VmRSS', status) / 1024, pssMiB: kib('Pss', rollup) / 1024, hwmMiB: kib('VmHWM', status) / 1024 };
  } catch {
    return undefined;
  }
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function nameOf(cmdline: string[], environ: string): string {
  const text = cmdline.join(' ');
  const program = (cmdline[0] ?? '?').split('/').pop()!;
  if (/azurite/.test(text)) return 'azurite';
  if (/esbuild/.test(program)) return 'esbuild service';
  if (program === 'sh') return 'sh (npm script)';
  if (/tsx\/dist\/cli|\.bin\/tsx/.test(text)) return 'tsx cli';
  if (/dev\/sandbox\.ts/.test(text)) return environ.includes('DBDIST_SANDBOX_CHILD=1') ? 'sandbox main' : 'sandbox launcher';
  if (/npm/.test(text)) return 'npm';
  return program;
}
