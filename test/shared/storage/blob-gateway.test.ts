import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { BlobServiceClient, BlockBlobClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { attachmentContentDisposition, createBlobGateway } from '../../../shared/storage/blob-gateway.js';
import type { BlobGateway } from '../../../shared/storage/gateway.js';
import { azuriteGatewayOptions, startAzurite, type Azurite } from '../../../dev/azurite.js';

const minutes = (n: number) => n * 60_000;
const fromNow = (ms: number) => new Date(Date.now() + ms);

/** A client that holds nothing but the SAS URL, as the runner or a browser would; one try, no retries. */
function sasClient(url: string): BlockBlobClient {
  return new BlockBlobClient(url, undefined, { retryOptions: { maxTries: 1 } });
}

function withQueryParam(url: string, name: string, edit: (value: string) => string): string {
  const parsed = new URL(url);
  parsed.searchParams.set(name, edit(parsed.searchParams.get(name) ?? ''));
  return parsed.toString();
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

describe('createBlobGateway against Azurite (user-delegation SAS over HTTPS)', () => {
  let azurite: Azurite;
  let containerName: string;
  let gateway: BlobGateway;

  beforeAll(async () => {
    azurite = await startAzurite();
    containerName = (await azurite.createContainer()).containerName;
    gateway = createBlobGateway({ blobEndpoint: azurite.blobEndpoint, container: containerName, credential: azurite.credential, ...azuriteGatewayOptions });
  });

  afterAll(async () => {
    await azurite?.stop();
  });

  /** Puts a blob in place with the fixture's own (OAuth) client, not through a SAS. */
  async function putBlob(path: string, bytes: Buffer, metadata?: Record<string, string>): Promise<void> {
    await azurite.serviceClient.getContainerClient(containerName).getBlockBlobClient(path).uploadData(bytes, { metadata });
  }

  const uniquePath = () => `backups/srv-1/db-1/${randomUUID()}.bak.gz`;

  it('read SAS: downloads the exact bytes as an attachment with the file name, read-only and HTTPS-only', async () => {
    const path = uniquePath();
    const bytes = randomBytes(200_000);
    await putBlob(path, bytes);

    const link = await gateway.issueReadSas(path, { correlationId: randomUUID(), expiresAt: fromNow(minutes(15)), fileName: 'Sales-20261123-0905.bak.gz' });

    const query = new URL(link.url).searchParams;
    expect(query.get('sp')).toBe('r');
    expect(query.get('spr')).toBe('https');
    expect(query.get('skoid')).toBeTruthy(); // signed with a user-delegation key, not an account key
    const response = await fetch(link.url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-disposition')).toBe('attachment; filename="Sales-20261123-0905.bak.gz"');
    expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);
  });

  it('signs the correlation id (scid) and the delegated user (sduoid) into the SAS, as Azure verifies them', async () => {
    const signing = createBlobGateway({ blobEndpoint: azurite.blobEndpoint, container: containerName, credential: azurite.credential });
    const path = uniquePath();
    await putBlob(path, Buffer.from('traceable'));
    const correlationId = randomUUID();
    const oid = randomUUID();
    const plain = new URL((await signing.issueReadSas(path, { correlationId, expiresAt: fromNow(minutes(15)), fileName: 'a.bak' })).url).searchParams;
    expect(plain.get('scid')).toBe(correlationId);
    expect(plain.get('sduoid')).toBeNull();
    // The delegated user field exists from service version 2025-07-05 on.
    expect(plain.get('sv')! >= '2025-07-05').toBe(true);
    const bound = new URL(
      (await signing.issueReadSas(path, { correlationId, delegatedUserObjectId: oid, expiresAt: fromNow(minutes(15)), fileName: 'a.bak' })).url,
    ).searchParams;
    expect(bound.get('sduoid')).toBe(oid);
    expect(bound.get('scid')).toBe(correlationId);
    // Each field is under the signature: a link with the field edited is another link.
    expect(bound.get('sig')).not.toBe(plain.get('sig'));
  });

  it('Azurite 3.37 implements neither scid nor sduoid: it refuses such a SAS, so the local stack signs no scid', async () => {
    // When this starts failing, Azurite checks these fields: drop azuriteGatewayOptions and test enforcement.
    const signing = createBlobGateway({ blobEndpoint: azurite.blobEndpoint, container: containerName, credential: azurite.credential });
    const path = uniquePath();
    await putBlob(path, Buffer.from('traceable'));
    const withScid = await signing.issueReadSas(path, { correlationId: randomUUID(), expiresAt: fromNow(minutes(15)), fileName: 'a.bak' });
    expect((await fetch(withScid.url)).status).toBe(403);
    const bound = await gateway.issueReadSas(path, { correlationId: randomUUID(), delegatedUserObjectId: randomUUID(), expiresAt: fromNow(minutes(15)), fileName: 'a.bak' });
    expect((await fetch(bound.url)).status).toBe(403);
    const unsigned = await gateway.issueReadSas(path, { correlationId: randomUUID(), expiresAt: fromNow(minutes(15)), fileName: 'a.bak' });
    expect(new URL(unsigned.url).searchParams.get('scid')).toBeNull();
    expect((await fetch(unsigned.url)).status).toBe(200);
  });

  it('write SAS: uploads a multi-block blob (stage + commit) but cannot read it back', async () => {
    const path = uniquePath();
    const link = await gateway.issueWriteSas(path, { expiresAt: fromNow(minutes(30)) });
    expect(new URL(link.url).searchParams.get('sp')).toBe('cw');

    const uploader = sasClient(link.url);
    const blocks = [randomBytes(70_000), randomBytes(70_000), randomBytes(1_234)];
    const blockIds = blocks.map((_, index) => Buffer.from(`block-${String(index).padStart(6, '0')}`).toString('base64'));
    for (const [index, block] of blocks.entries()) {
      await uploader.stageBlock(blockIds[index]!, block, block.length);
    }
    const whole = Buffer.concat(blocks);
    const sha256 = createHash('sha256').update(whole).digest('hex');
    await uploader.commitBlockList(blockIds, { metadata: { sha256, size: String(whole.length) } });

    const facts = await gateway.getBlobFacts(path);
    expect(facts).toMatchObject({ sizeBytes: whole.length, metadata: { sha256, size: String(whole.length) } });

    await expect(uploader.download()).rejects.toMatchObject({ statusCode: 403 });
    expect((await fetch(link.url)).status).toBe(403);
  });

  it('read SAS: cannot upload, stage or overwrite', async () => {
    const path = uniquePath();
    await putBlob(path, Buffer.from('original'));
    const link = await gateway.issueReadSas(path, { correlationId: randomUUID(), expiresAt: fromNow(minutes(15)), fileName: 'x.bak' });

    const client = sasClient(link.url);
    await expect(client.upload('replaced', 8)).rejects.toMatchObject({ statusCode: 403 });
    await expect(client.stageBlock(Buffer.from('b1').toString('base64'), 'xx', 2)).rejects.toMatchObject({ statusCode: 403 });
    expect((await azurite.serviceClient.getContainerClient(containerName).getBlobClient(path).downloadToBuffer()).toString()).toBe('original');
  });

  it('a SAS for one blob does not reach another blob', async () => {
    const [mine, other] = [uniquePath(), uniquePath()];
    await putBlob(mine, Buffer.from('mine'));
    await putBlob(other, Buffer.from('other'));
    const read = await gateway.issueReadSas(mine, { correlationId: randomUUID(), expiresAt: fromNow(minutes(15)), fileName: 'mine.bak' });
    const write = await gateway.issueWriteSas(mine, { expiresAt: fromNow(minutes(15)) });

    const otherUrl = azurite.serviceClient.getContainerClient(containerName).getBlobClient(other).url;
    expect((await fetch(`${otherUrl}?${new URL(read.url).searchParams}`)).status).toBe(403);
    await expect(sasClient(`${otherUrl}?${new URL(write.url).searchParams}`).upload('x', 1)).rejects.toMatchObject({ statusCode: 403 });
    expect((await fetch(read.url)).status).toBe(200); // the same SAS works on its own blob
  });

  it('refuses an expired SAS', async () => {
    const path = uniquePath();
    await putBlob(path, Buffer.from('old'));
    const expired = await gateway.issueReadSas(path, {
      correlationId: randomUUID(),
      startsAt: fromNow(-minutes(10)),
      expiresAt: fromNow(-minutes(1)),
      fileName: 'old.bak',
    });
    expect((await fetch(expired.url)).status).toBe(403);
  });

  it('refuses a SAS whose permissions or signature were edited', async () => {
    const path = uniquePath();
    await putBlob(path, Buffer.from('guarded'));
    const link = await gateway.issueReadSas(path, { correlationId: randomUUID(), expiresAt: fromNow(minutes(15)), fileName: 'guarded.bak' });
    expect((await fetch(link.url)).status).toBe(200);

    const widened = withQueryParam(link.url, 'sp', () => 'rcwd');
    expect((await fetch(widened)).status).toBe(403);
    await expect(sasClient(widened).upload('overwritten', 11)).rejects.toMatchObject({ statusCode: 403 });

    const forged = withQueryParam(link.url, 'sig', (sig) => (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1));
    expect((await fetch(forged)).status).toBe(403);

    const renamed = withQueryParam(link.url, 'rscd', () => 'inline');
    expect((await fetch(renamed)).status).toBe(403);
  });

  it('getBlobFacts: size and metadata of a committed blob, undefined when absent or only staged', async () => {
    const path = uniquePath();
    await putBlob(path, Buffer.alloc(4321, 7), { sha256: 'a'.repeat(64), engine: 'postgres' });
    expect(await gateway.getBlobFacts(path)).toMatchObject({
      sizeBytes: 4321,
      metadata: { sha256: 'a'.repeat(64), engine: 'postgres' },
    });

    expect(await gateway.getBlobFacts(uniquePath())).toBeUndefined();

    const staged = uniquePath();
    const write = await gateway.issueWriteSas(staged, { expiresAt: fromNow(minutes(15)) });
    await sasClient(write.url).stageBlock(Buffer.from('b0').toString('base64'), 'abc', 3);
    expect(await gateway.getBlobFacts(staged)).toBeUndefined();
  });

  it('deleteBlob: removes the blob with its snapshots, false when nothing is there', async () => {
    const path = uniquePath();
    await putBlob(path, Buffer.from('to delete'));
    const blob = azurite.serviceClient.getContainerClient(containerName).getBlobClient(path);
    await blob.createSnapshot();

    expect(await gateway.deleteBlob(path)).toBe(true);
    expect(await gateway.getBlobFacts(path)).toBeUndefined();
    const left = [];
    for await (const item of azurite.serviceClient.getContainerClient(containerName).listBlobsFlat({ prefix: path, includeSnapshots: true })) {
      left.push(item);
    }
    expect(left).toEqual([]);
    expect(await gateway.deleteBlob(path)).toBe(false);
  });

  it('fetches one delegation key for many SAS, and a new one only for a SAS the cached key cannot cover', async () => {
    const keyRequests = vi.spyOn(BlobServiceClient.prototype, 'getUserDelegationKey');
    try {
      const fresh = createBlobGateway({ blobEndpoint: azurite.blobEndpoint, container: containerName, credential: azurite.credential });
      await Promise.all(
        Array.from({ length: 8 }, (_, i) => fresh.issueReadSas(uniquePath(), { correlationId: randomUUID(), expiresAt: fromNow(minutes(60)), fileName: `f${i}.bak` })),
      );
      for (let i = 0; i < 4; i++) await fresh.issueWriteSas(uniquePath(), { expiresAt: fromNow(minutes(30)) });
      expect(keyRequests).toHaveBeenCalledTimes(1);

      // Past the cached key's expiry (it was asked for two days): a SAS must not outlive its key.
      const longLink = await fresh.issueReadSas(uniquePath(), { correlationId: randomUUID(), expiresAt: fromNow(minutes(3 * 24 * 60)), fileName: 'long.bak' });
      expect(keyRequests).toHaveBeenCalledTimes(2);
      const keyExpiresOn = keyRequests.mock.calls[1]![1] as Date;
      expect(keyExpiresOn.getTime()).toBeGreaterThanOrEqual(longLink.expiresAt.getTime());

      await fresh.issueReadSas(uniquePath(), { correlationId: randomUUID(), expiresAt: fromNow(minutes(60)), fileName: 'short.bak' });
      expect(keyRequests).toHaveBeenCalledTimes(2);
    } finally {
      keyRequests.mockRestore();
    }
  });

  it('issues a SAS almost as long as a delegation key may live, and it works', async () => {
    const path = uniquePath();
    await putBlob(path, Buffer.from('long-lived'));
    const link = await gateway.issueReadSas(path, { correlationId: randomUUID(), expiresAt: fromNow(minutes(7 * 24 * 60 - 10)), fileName: 'long.bak' });
    expect(await (await fetch(link.url)).text()).toBe('long-lived');
  });

  it('refuses a SAS longer than a delegation key may live, or one that ends before it starts', async () => {
    await expect(
      gateway.issueReadSas(uniquePath(), { correlationId: randomUUID(), expiresAt: fromNow(minutes(8 * 24 * 60)), fileName: 'x.bak' }),
    ).rejects.toMatchObject({ name: 'AppError', code: 'validation_failed' });
    await expect(
      gateway.issueWriteSas(uniquePath(), { startsAt: fromNow(minutes(10)), expiresAt: fromNow(minutes(5)) }),
    ).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(gateway.issueWriteSas('backups/../secrets.bak', { expiresAt: fromNow(minutes(5)) })).rejects.toMatchObject({
      code: 'validation_failed',
    });
  });

  it('ping: succeeds for the container, dependency_unavailable for a missing one', async () => {
    await expect(gateway.ping()).resolves.toBeUndefined();
    const missing = createBlobGateway({ blobEndpoint: azurite.blobEndpoint, container: 'no-such-container', credential: azurite.credential });
    await expect(missing.ping()).rejects.toMatchObject({ name: 'AppError', code: 'dependency_unavailable' });
  });

  it('turns an unreachable endpoint into dependency_unavailable', async () => {
    const port = await closedPort();
    const unreachable = createBlobGateway({
      blobEndpoint: `https://127.0.0.1:${port}/devstoreaccount1`,
      container: containerName,
      credential: azurite.credential,
      retryOptions: { maxTries: 1 },
    });
    for (const attempt of [
      () => unreachable.ping(),
      () => unreachable.getBlobFacts(uniquePath()),
      () => unreachable.deleteBlob(uniquePath()),
      () => unreachable.issueReadSas(uniquePath(), { correlationId: randomUUID(), expiresAt: fromNow(minutes(5)), fileName: 'x.bak' }),
    ]) {
      await expect(attempt()).rejects.toMatchObject({ name: 'AppError', code: 'dependency_unavailable' });
    }
  });

  it('does not hide a refusal as an outage: a credential Azurite rejects surfaces as the 403 it is', async () => {
    const rejected = createBlobGateway({
      blobEndpoint: azurite.blobEndpoint,
      container: containerName,
      credential: { getToken: async () => ({ token: 'not-a-jwt', expiresOnTimestamp: Date.now() + minutes(60) }) },
      retryOptions: { maxTries: 1 },
    });
    await expect(rejected.ping()).rejects.toMatchObject({ statusCode: 403 });
  });
});

describe('attachmentContentDisposition', () => {
  it('quotes an ordinary file name', () => {
    expect(attachmentContentDisposition('Sales-20261123-0905.bak.gz')).toBe('attachment; filename="Sales-20261123-0905.bak.gz"');
  });

  it.each([
    ['a"; filename="evil.exe', 'attachment; filename="a_; filename=_evil.exe"'],
    ['back\\slash.bak', 'attachment; filename="back_slash.bak"'],
    ['line\r\nSet-Cookie: x=1', 'attachment; filename="line__Set-Cookie: x=1"'],
    ['Ünïcödé.bak', 'attachment; filename="_n_c_d_.bak"'],
    ['', 'attachment; filename="download"'],
  ])('makes %j safe inside the quotes', (hostile, expected) => {
    const header = attachmentContentDisposition(hostile);
    expect(header).toBe(expected);
    expect(header).toMatch(/^attachment; filename="[\x20-\x21\x23-\x5b\x5d-\x7e]+"$/);
  });
});
