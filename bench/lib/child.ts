/**
 * Runs one benchmark variant in a child process of its own, so that its peak RSS (reported by the child just
 * before it exits) is the variant's alone and not the parent's or an earlier variant's. The peak is the address
 * space's high-water mark (`VmHWM` in /proc/self/status), not `process.resourceUsage().maxRSS`: Linux carries
 * maxRSS across fork and exec, so a child of a 365 MiB parent reports at least 365 MiB whatever it used.
 *
 * Parent:  const outcome = await runInChild<Result>(new URL('./variant.ts', import.meta.url), input);
 * Child:   serveChild(async (input) => ({ ...measurements }));
 *
 * The child runs as plain JavaScript, bundled from the TypeScript entry with esbuild (packages stay external and
 * load from node_modules): the tsx loader would add ~60 MiB of its own to every peak RSS, and the runner
 * agent runs as compiled JavaScript in production. It inherits the parent's environment (so it trusts the
 * loopback certificate too). Input and result travel over the IPC channel.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export type ChildOutcome<T> =
  | { ok: true; result: T; peakRssMiB: number }
  | { ok: false; error: string; peakRssMiB?: number };

interface ChildMessage {
  result?: unknown;
  error?: string;
  maxRssKiB: number;
}

const stderrTailChars = 2000;
const bundleDir = fileURLToPath(new URL('../../.tmp/bench/', import.meta.url));
const bundles = new Map<string, Promise<string>>();
/** Worker-thread scripts that bundled code starts from a file beside it (`new URL('./x.mjs', import.meta.url)`). */
const workerScripts = [new URL('../../shared/integrity/sha256-worker.mjs', import.meta.url)];

/**
 * Bundles `entry` once per run; returns the path of the JavaScript file (`<name>.mjs`, or `outName` under
 * .tmp/bench/: the runner CLI must keep its `cli.js` name, which is how it knows it was run rather than imported).
 */
export function bundled(entry: URL, outName?: string): Promise<string> {
  const source = fileURLToPath(entry);
  let bundle = bundles.get(source);
  if (!bundle) {
    const outfile = join(bundleDir, outName ?? basename(source).replace(/\.ts$/, '.mjs'));
    bundle = build({ entryPoints: [source], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'warning' }).then(
      () => {
        mkdirSync(bundleDir, { recursive: true });
        for (const script of workerScripts) copyFileSync(script, join(bundleDir, basename(fileURLToPath(script))));
        return outfile;
      },
    );
    bundles.set(source, bundle);
  }
  return bundle;
}

/** Starts `entry`, bundled, as a child with an IPC channel (stdout inherited, stderr piped). */
export async function spawnBundled(entry: URL, options: { env?: NodeJS.ProcessEnv } = {}): Promise<ChildProcess> {
  const script = await bundled(entry);
  return spawn(process.execPath, [script], {
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    env: { ...process.env, ...options.env },
  });
}

export async function runInChild<T>(entry: URL, input: unknown, options: { env?: NodeJS.ProcessEnv } = {}): Promise<ChildOutcome<T>> {
  const child = await spawnBundled(entry, options);
  return new Promise((resolve) => {
    let message: ChildMessage | undefined;
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      stderr = (stderr + chunk.toString('utf8')).slice(-stderrTailChars);
    });
    child.on('message', (received: ChildMessage) => (message = received));
    child.on('error', (error) => resolve({ ok: false, error: `could not start the child: ${error.message}` }));
    child.on('exit', (code, signal) => {
      const peakRssMiB = message ? message.maxRssKiB / 1024 : undefined;
      if (message && message.error === undefined) {
        resolve({ ok: true, result: message.result as T, peakRssMiB: peakRssMiB! });
      } else {
        const why = message?.error ?? `exited with ${code ?? signal} before reporting: ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
        resolve({ ok: false, error: why, ...(peakRssMiB !== undefined ? { peakRssMiB } : {}) });
      }
    });
    child.send({ input });
  });
}

/** The child's side: waits for its input, runs `work`, reports the result (or the error) and its peak RSS. */
export function serveChild<I, R>(work: (input: I) => Promise<R>): void {
  process.once('message', (message: { input: I }) => {
    void (async () => {
      let reply: ChildMessage;
      try {
        const result = await work(message.input);
        reply = { result, maxRssKiB: ownPeakRssKiB() };
      } catch (error) {
        const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        reply = { error: text, maxRssKiB: ownPeakRssKiB() };
      }
      process.send!(reply, () => process.exit(0));
    })();
  });
}

/** This process's own peak RSS in KiB: VmHWM where /proc has it, else maxRSS (which may include the parent's). */
function ownPeakRssKiB(): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]);
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS;
}
