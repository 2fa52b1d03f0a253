/**
 * Runs one measurement against a fresh in-memory Azurite (so blobs of earlier variants never weigh on it) and
 * measures the CPU time Azurite spent meanwhile: its share of an upload's work happens in another process.
 */
import { startAzurite } from '../../dev/azurite.js';
import type { BlobLocation } from './blob-target.js';
import { childCpuSeconds } from './proc.js';

export async function withFreshAzurite<T>(measure: (blob: BlobLocation) => Promise<T>): Promise<{ value: T; azuriteCpuSeconds?: number }> {
  const azurite = await startAzurite();
  try {
    const container = await azurite.createContainer();
    const before = childCpuSeconds('azurite');
    const value = await measure({ endpoint: azurite.blobEndpoint, container: container.containerName });
    const after = childCpuSeconds('azurite');
    // Includes SAS issuance and the read-back: a few requests, negligible beside an upload's.
    return before !== undefined && after !== undefined ? { value, azuriteCpuSeconds: after - before } : { value };
  } finally {
    await azurite.stop();
  }
}
