import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobServiceClient } from '@azure/storage-blob';
import { startAzurite, type Azurite } from '../../dev/azurite.js';

describe('Azurite fixture', () => {
  let azurite: Azurite;

  beforeAll(async () => {
    azurite = await startAzurite();
  });

  afterAll(async () => {
    await azurite?.stop();
  });

  it('serves blobs over HTTPS to the test credential', async () => {
    expect(azurite.blobEndpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/devstoreaccount1$/);
    const container = await azurite.createContainer();
    const blob = container.getBlockBlobClient('hello.txt');
    await blob.upload('hello', 5);
    expect((await blob.downloadToBuffer()).toString()).toBe('hello');
    expect(azurite.credential.getTokenCalls).toBeGreaterThan(0);
  });

  it('issues user-delegation keys to OAuth callers only, as Azure does', async () => {
    const now = new Date();
    const key = await azurite.serviceClient.getUserDelegationKey(now, new Date(now.getTime() + 60 * 60_000));
    expect(key.value).toBeTruthy();
    const anonymous = new BlobServiceClient(azurite.blobEndpoint, undefined, { retryOptions: { maxTries: 1 } });
    await expect(anonymous.getUserDelegationKey(now, new Date(now.getTime() + 60_000))).rejects.toMatchObject({
      statusCode: 403,
    });
  });

  it('stops: the endpoint no longer answers', async () => {
    const second = await startAzurite();
    await second.stop();
    const client = new BlobServiceClient(second.blobEndpoint, second.credential, { retryOptions: { maxTries: 1 } });
    await expect(client.getProperties()).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
