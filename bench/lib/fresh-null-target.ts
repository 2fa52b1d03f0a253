/**
 * Runs one measurement against a fresh null target (bench/lib/null-blob-server.mjs: accepts Put Block and Put
 * Block List over loopback HTTPS and discards the bytes) and measures the CPU time it spent meanwhile.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { ensureLoopbackCert } from '../../dev/tls.js';
import type { BlobLocation } from './blob-target.js';
import { childCpuSeconds } from './proc.js';

const serverScript = fileURLToPath(new URL('./null-blob-server.mjs', import.meta.url));

export async function withFreshNullTarget<T>(measure: (blob: BlobLocation) => Promise<T>): Promise<{ value: T; serverCpuSeconds?: number }> {
  const { certPath, keyPath } = ensureLoopbackCert();
  const child = spawn(process.execPath, [serverScript, certPath, keyPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  try {
    const port = await new Promise<string>((resolve, reject) => {
      let output = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
        const match = /listening on (\d+)/.exec(output);
        if (match) resolve(match[1]!);
      });
      child.once('exit', (code) => reject(new Error(`the null target exited with ${code}: ${output}`)));
    });
    const before = childCpuSeconds('null-blob-server');
    const value = await measure({ endpoint: `https://127.0.0.1:${port}/devstoreaccount1`, container: 'null', kind: 'null' });
    const after = childCpuSeconds('null-blob-server');
    return before !== undefined && after !== undefined ? { value, serverCpuSeconds: after - before } : { value };
  } finally {
    process.removeListener('exit', killOnExit);
    child.kill('SIGTERM');
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  }
}
