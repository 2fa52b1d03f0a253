/**
 * `dbdist-runner check`: tries every connection the service needs and prints one PASS / FAIL / SKIP line each,
 * so an operator can tell what to fix before starting the service.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServiceBusClient } from '@azure/service-bus';
import { BlockBlobClient } from '@azure/storage-blob';
import { errorMessage } from '../shared/errors.js';
import type { RunnerApiClient, TokenProvider } from './api/client.js';
import { zstdSupport } from './pipeline/compression.js';
import type { RunnerConfig } from './config.js';
import { keyId, readKeyFile } from './pipeline/crypto.js';
import type { BackupEngineDriver } from './engines/types.js';

export type CheckStatus = 'PASS' | 'FAIL' | 'SKIP';
export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
}

export interface CheckDeps {
  tokens: TokenProvider;
  api: Pick<RunnerApiClient, 'probe' | 'probeTarget'>;
  serviceBus: ServiceBusClient;
  engines: Partial<Record<'sqlserver' | 'postgres', BackupEngineDriver>>;
  timeoutMs?: number;
}

class Skip extends Error {}

async function attempt(name: string, timeoutMs: number, probe: () => Promise<string> | string): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const detail = await Promise.race([
      Promise.resolve().then(probe),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs))),
    ]);
    return { name, status: 'PASS', detail };
  } catch (error) {
    return { name, status: error instanceof Skip ? 'SKIP' : 'FAIL', detail: errorMessage(error) };
  } finally {
    clearTimeout(timer);
  }
}

export async function runChecks(config: RunnerConfig, deps: CheckDeps): Promise<CheckResult[]> {
  const timeoutMs = deps.timeoutMs ?? 30_000;
  const results: CheckResult[] = [];
  const check = async (name: string, probe: () => Promise<string> | string) => {
    results.push(await attempt(name, timeoutMs, probe));
  };

  await check('work-dir', () => {
    mkdirSync(config.workDir, { recursive: true });
    const probeFile = join(config.workDir, `.dbdist-check-${randomBytes(4).toString('hex')}`);
    writeFileSync(probeFile, 'check');
    rmSync(probeFile);
    const fs = statfsSync(config.workDir);
    return `${config.workDir} is writable; ${((fs.bavail * fs.bsize) / 2 ** 30).toFixed(1)} GiB free`;
  });
  await check('encryption-key', () => {
    if (!config.encryptionKeyFile) throw new Skip('not needed: jobs are encrypted with age to the recipients they name');
    const id = keyId(readKeyFile(config.encryptionKeyFile));
    return `${config.encryptionKeyFile} holds a 32-byte key (key id ${id}); retired, used only to decrypt old .enc copies`;
  });
  await check('zstd', () => {
    const support = zstdSupport();
    if (!support.ok) {
      if (config.compressionDefault === 'zstd') throw new Error(support.reason);
      throw new Skip(`unavailable (${support.reason}); jobs asking for zstd will fail`);
    }
    return support.via === 'node' ? 'Node.js zlib zstd' : 'zstd command-line tool on PATH';
  });
  await check('api-token', async () => {
    const token = await deps.tokens.getToken();
    return `token acquired for ${config.api.scope} (${token.length} characters)`;
  });
  await check('api-call', async () => {
    const { status } = await deps.api.probe();
    return `${config.api.baseUrl} accepted the token (HTTP ${status} for a job that does not exist)`;
  });
  await check('service-bus', async () => {
    const receiver = deps.serviceBus.createReceiver(config.serviceBus.topic, config.serviceBus.subscription);
    try {
      // Peek opens the receive side without locking or consuming anything.
      const peeked = await receiver.peekMessages(1);
      return `receiver on ${config.serviceBus.topic}/${config.serviceBus.subscription} opened (${peeked.length ? 'messages waiting' : 'no messages waiting'})`;
    } finally {
      await receiver.close().catch(() => undefined);
    }
  });
  for (const engine of ['sqlserver', 'postgres'] as const) {
    await check(engine, async () => {
      const driver = deps.engines[engine];
      if (!driver) throw new Skip(`not configured`);
      return driver.check();
    });
  }
  await check('blob-write', async () => {
    // A job-less probe SAS: write a few bytes through it, as an upload would, then delete them again.
    const target = await deps.api.probeTarget();
    const blob = new BlockBlobClient(target.url);
    const body = `dbdist-runner check ${new Date().toISOString()}`;
    await blob.upload(body, Buffer.byteLength(body));
    await blob.delete();
    return `wrote and deleted ${target.blobPath} (${new URL(target.url).host})`;
  });
  return results;
}

export function formatResults(results: CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length));
  return results.map((r) => `${r.status}  ${r.name.padEnd(width)}  ${r.detail}`).join('\n');
}
