/**
 * The upload target a benchmark child writes to: a real write-only user-delegation SAS from the production blob
 * gateway on Azurite (issued before any clock starts), and the stored size read back afterwards through the
 * OAuth client (the write SAS cannot read).
 */
import { randomBytes } from 'node:crypto';
import { get } from 'node:https';
import { BlobServiceClient } from '@azure/storage-blob';
import type { UploadTarget } from '../../shared/contracts/runner.js';
import { createBlobGateway } from '../../shared/storage/blob-gateway.js';
import { TestTokenCredential } from '../../dev/azurite.js';

/** Azurite's endpoint and a container that exists there; or the null target (bench/lib/fresh-null-target.ts). */
export interface BlobLocation {
  endpoint: string;
  container: string;
  kind?: 'azurite' | 'null';
}

export interface BenchTarget extends UploadTarget {
  /** Size of the committed blob, read back after the upload. */
  storedBytes(): Promise<number | undefined>;
}

export async function benchTarget(blob: BlobLocation, name: string): Promise<BenchTarget> {
  if (blob.kind === 'null') return nullTarget(blob, name);
  const credential = new TestTokenCredential();
  const gateway = createBlobGateway({ blobEndpoint: blob.endpoint, container: blob.container, credential });
  const blobPath = `bench/${name}/${randomBytes(8).toString('hex')}.bin`;
  const sas = await gateway.issueWriteSas(blobPath, { expiresAt: new Date(Date.now() + 60 * 60_000) });
  return {
    blobPath,
    url: sas.url,
    expiresAt: sas.expiresAt.toISOString(),
    async storedBytes() {
      const blobClient = new BlobServiceClient(blob.endpoint, credential).getContainerClient(blob.container).getBlobClient(blobPath);
      return (await blobClient.getProperties()).contentLength;
    },
  };
}

/** The null target checks no SAS: any query string will do. It reports the committed size itself. */
function nullTarget(blob: BlobLocation, name: string): BenchTarget {
  const blobPath = `bench/${name}/${randomBytes(8).toString('hex')}.bin`;
  const path = `${new URL(blob.endpoint).pathname}/${blob.container}/${blobPath}`;
  return {
    blobPath,
    url: `${blob.endpoint}/${blob.container}/${blobPath}?sv=2025-01-05&sig=null`,
    expiresAt: new Date(Date.now() + 60 * 60_000).toISOString(),
    storedBytes: () =>
      new Promise((resolve, reject) => {
        get(`${new URL(blob.endpoint).origin}/__stored?path=${encodeURIComponent(path)}`, (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (piece: string) => (text += piece));
          response.on('end', () => resolve(response.statusCode === 200 ? (JSON.parse(text) as { size: number }).size : undefined));
        }).on('error', reject);
      }),
  };
}

/** Metadata every benchmark upload carries (the pipeline requires it). */
export const benchMetadata = { engine: 'bench', jobid: 'bench', server: 'bench', database: 'bench' };

/** CPU seconds (user + system) this process used since `start`. */
export function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}
