import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServiceBusClient } from '@azure/service-bus';
import { describe, expect, it } from 'vitest';
import { afterAll, beforeAll } from 'vitest';
import { startAzurite, type Azurite } from '../../dev/azurite.js';
import { probeBlobPath } from '../../shared/storage/paths.js';
import { AppError } from '../../shared/errors.js';
import { gatewayWithContainer } from './blob-target.js';
import { formatResults, runChecks } from '../../runner-agent/check.js';
import { parseRunnerConfig } from '../../runner-agent/config.js';

const dir = mkdtempSync(join(tmpdir(), 'dbdist-check-'));
writeFileSync(join(dir, 'short.key'), Buffer.alloc(16));

const config = parseRunnerConfig({
  runnerId: 'r1',
  serviceBus: { fullyQualifiedNamespace: 'sb.servicebus.windows.net', subscription: 'r1' },
  api: { baseUrl: 'https://api.example', scope: 'api://dbdist/.default' },
  entra: { tenantId: 't', clientId: 'c', certificatePath: '/c.pem' },
  postgres: { host: 'pg', user: 'u' },
  workDir: join(dir, 'work'),
  encryptionKeyFile: join(dir, 'short.key'),
});

/** A Service Bus client whose receiver peeks nothing (or fails). */
function serviceBus(fail?: Error): ServiceBusClient {
  return {
    createReceiver: () => ({
      peekMessages: async () => {
        if (fail) throw fail;
        return [];
      },
      close: async () => undefined,
    }),
  } as unknown as ServiceBusClient;
}

describe('check', () => {
  it('prints one PASS/FAIL/SKIP line per connection', async () => {
    const results = await runChecks(config, {
      tokens: { getToken: async () => 'token' },
      api: {
        probe: async () => { throw new AppError('forbidden', 'POST ... was refused (HTTP 403: no Runner role)'); },
        probeTarget: async () => { throw new AppError('forbidden', 'POST ... was refused (HTTP 403: no Runner role)'); },
      },
      serviceBus: serviceBus(),
      engines: { postgres: { name: 'postgres', backup: async () => { throw new Error('unused'); }, check: async () => 'PostgreSQL 15.4 at pg:5432 as u' } },
    });
    const byName = Object.fromEntries(results.map((r) => [r.name, r.status]));
    expect(byName).toEqual({
      'work-dir': 'PASS',
      'encryption-key': 'FAIL', // 16 bytes, not 32
      zstd: 'PASS',
      'api-token': 'PASS',
      'api-call': 'FAIL',
      'service-bus': 'PASS',
      sqlserver: 'SKIP',
      postgres: 'PASS',
      'blob-write': 'FAIL',
    });
    const text = formatResults(results);
    expect(text.split('\n')).toHaveLength(results.length);
    expect(text).toMatch(/^FAIL  api-call +.*no Runner role/m);
  });

  it('fails the Service Bus line when the receiver cannot open', async () => {
    const results = await runChecks(config, {
      tokens: { getToken: async () => 'token' },
      api: { probe: async () => ({ status: 404 }), probeTarget: async () => { throw new Error('unused'); } },
      serviceBus: serviceBus(new Error('Unauthorized access. Listen claim(s) are required')),
      engines: {},
    });
    expect(results.find((r) => r.name === 'service-bus')).toMatchObject({ status: 'FAIL', detail: expect.stringContaining('Listen') });
    expect(results.find((r) => r.name === 'api-call')?.status).toBe('PASS');
  });
});

describe('check: blob-write with a real probe SAS (Azurite)', () => {
  let azurite: Azurite;
  beforeAll(async () => {
    azurite = await startAzurite();
  });
  afterAll(() => azurite?.stop());

  it('writes the probe blob through the job-less SAS and deletes it again; a job write SAS cannot delete', async () => {
    const { gateway, container } = await gatewayWithContainer(azurite);
    const blobPath = probeBlobPath('7e57a000-0000-4000-8000-00000000a001', 'p1');
    let written: string | undefined;
    const results = await runChecks(config, {
      tokens: { getToken: async () => 'token' },
      api: {
        probe: async () => ({ status: 404 }),
        probeTarget: async () => {
          const link = await gateway.issueWriteSas(blobPath, { expiresAt: new Date(Date.now() + 5 * 60_000), allowDelete: true });
          written = blobPath;
          return { blobPath, url: link.url, expiresAt: link.expiresAt.toISOString() };
        },
      },
      serviceBus: serviceBus(),
      engines: {},
    });
    expect(results.find((r) => r.name === 'blob-write')).toMatchObject({ status: 'PASS', detail: expect.stringContaining(blobPath) });
    expect(written).toBe(blobPath);
    expect(await gateway.getBlobFacts(blobPath)).toBeUndefined();
    const names: string[] = [];
    for await (const blob of azurite.serviceClient.getContainerClient(container).listBlobsFlat()) names.push(blob.name);
    expect(names).toEqual([]);

    // The job upload SAS stays create+write only.
    const { BlockBlobClient } = await import('@azure/storage-blob');
    const jobLink = await gateway.issueWriteSas('backups/s/d/j.dump', { expiresAt: new Date(Date.now() + 5 * 60_000) });
    await new BlockBlobClient(jobLink.url).upload('x', 1);
    await expect(new BlockBlobClient(jobLink.url).delete()).rejects.toMatchObject({ statusCode: 403 });
  });
});
