/**
 * Real write-only SAS targets from the blob gateway against Azurite, in the shape the runner's API client hands
 * to the upload pipeline. Counts how often (and why) a target was asked for.
 */
import { createBlobGateway } from '../../shared/storage/blob-gateway.js';
import type { BlobGateway } from '../../shared/storage/gateway.js';
import type { UploadTarget } from '../../shared/contracts/runner.js';
import type { UploadTargetProvider } from '../../runner-agent/pipeline/upload.js';
import { type Azurite, azuriteGatewayOptions } from '../../dev/azurite.js';

export async function gatewayWithContainer(azurite: Azurite): Promise<{ gateway: BlobGateway; container: string }> {
  const container = await azurite.createContainer();
  const gateway = createBlobGateway({
    blobEndpoint: azurite.blobEndpoint,
    container: container.containerName,
    credential: azurite.credential,
    retryOptions: { maxTries: 2, retryDelayInMs: 50 },
    ...azuriteGatewayOptions,
  });
  return { gateway, container: container.containerName };
}

export async function writeTarget(gateway: BlobGateway, blobPath: string, ttlMs = 30 * 60_000): Promise<UploadTarget> {
  const link = await gateway.issueWriteSas(blobPath, { expiresAt: new Date(Date.now() + ttlMs) });
  return { blobPath, url: link.url, expiresAt: link.expiresAt.toISOString() };
}

export function targetProvider(
  gateway: BlobGateway,
  blobPath: string,
  options: { ttlMs?: number } = {},
): UploadTargetProvider & { reasons: string[] } {
  const reasons: string[] = [];
  const provider = async (reason: 'initial' | 'expiring' | 'rejected') => {
    reasons.push(reason);
    return writeTarget(gateway, blobPath, options.ttlMs);
  };
  return Object.assign(provider, { reasons });
}
