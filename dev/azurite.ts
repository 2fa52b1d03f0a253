/**
 * Azurite's Blob service as a per-test-file stand-in for Azure Blob Storage, with OAuth on so that
 * user-delegation SAS works like in Azure. OAuth needs HTTPS: the loopback certificate from ./tls.ts.
 *
 *   let azurite: Azurite;
 *   beforeAll(async () => { azurite = await startAzurite(); });
 *   afterAll(() => azurite?.stop());
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { AccessToken, TokenCredential } from '@azure/identity';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { ensureLoopbackCert } from './tls.js';

export interface Azurite {
  /** e.g. `https://127.0.0.1:41234/devstoreaccount1` (path-style: the account is the first path segment). */
  blobEndpoint: string;
  /** Mints bearer tokens Azurite's basic OAuth accepts. */
  credential: TestTokenCredential;
  serviceClient: BlobServiceClient;
  /** Creates a container (a fresh random name unless given) and returns its client. */
  createContainer(name?: string): Promise<ContainerClient>;
  stop(): Promise<void>;
}

/** Azurite's fixed development account; with OAuth it is still the account segment of every URL. */
export const azuriteAccountName = 'devstoreaccount1';

/**
 * Blob gateway options Azurite needs. Azurite 3.37 verifies a user-delegation SAS with `scid` left out of the
 * string to sign, so a SAS carrying a correlation id is refused (403; test/dev/azurite.test.ts shows it). The
 * correlation id still goes to the audit row and the API answer; only the SAS goes without it here.
 */
export const azuriteGatewayOptions = { signCorrelationIds: false } as const;

const startTimeoutMs = 60_000;
const stopTimeoutMs = 5_000;
const tokenLifetimeSeconds = 60 * 60;

/**
 * A TokenCredential for Azurite only. Azurite's basic OAuth checks `iss` (an sts.windows.net prefix), `aud`
 * and the lifetime claims but not the signature, so the token is an unsigned JWT. Counts its calls so tests
 * can see how often a client asked for a token.
 */
export class TestTokenCredential implements TokenCredential {
  getTokenCalls = 0;

  constructor(
    readonly tenantId: string = randomUUID(),
    readonly objectId: string = randomUUID(),
  ) {}

  async getToken(): Promise<AccessToken> {
    this.getTokenCalls += 1;
    const now = Math.floor(Date.now() / 1000);
    const exp = now + tokenLifetimeSeconds;
    const header = { alg: 'none', typ: 'JWT' };
    const claims = {
      iss: `https://sts.windows.net/${this.tenantId}/`,
      aud: 'https://storage.azure.com',
      iat: now,
      nbf: now - 60,
      exp,
      tid: this.tenantId,
      oid: this.objectId,
      sub: this.objectId,
      appid: this.objectId,
    };
    const token = `${base64url(header)}.${base64url(claims)}.`;
    return { token, expiresOnTimestamp: exp * 1000 };
  }
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

const azuriteBlobMain = createRequire(import.meta.url).resolve('azurite/dist/src/blob/main.js');

/** Starts Azurite's Blob service on a free loopback port (in memory) and waits until it listens. */
export async function startAzurite(): Promise<Azurite> {
  const { certPath, keyPath } = ensureLoopbackCert();
  const child = spawn(
    process.execPath,
    [
      azuriteBlobMain,
      '--blobHost', '127.0.0.1',
      '--blobPort', '0', // Azurite picks a free port and prints it: no race with other workers
      '--oauth', 'basic',
      '--cert', certPath,
      '--key', keyPath,
      '--inMemoryPersistence',
      '--disableTelemetry',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // A worker that dies without running afterAll must not leave Azurite behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  let origin: string;
  try {
    origin = await listeningOrigin(child);
  } catch (error) {
    process.removeListener('exit', killOnExit);
    await stopChild(child);
    throw error;
  }

  const blobEndpoint = `${origin}/${azuriteAccountName}`;
  const credential = new TestTokenCredential();
  const serviceClient = new BlobServiceClient(blobEndpoint, credential);

  return {
    blobEndpoint,
    credential,
    serviceClient,
    async createContainer(name = `test-${randomUUID()}`) {
      const container = serviceClient.getContainerClient(name);
      await container.create();
      return container;
    },
    async stop() {
      process.removeListener('exit', killOnExit);
      await stopChild(child);
    },
  };
}

/** Resolves with `https://127.0.0.1:<port>` once Azurite reports it listens; rejects if it exits first. */
function listeningOrigin(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    let settled = false;
    // A worker busy for long (PGlite compiling WebAssembly, a loaded machine) runs due timers before reading
    // pipes: let one I/O poll pass before deciding Azurite never said it listens.
    const timer = setTimeout(
      () => setImmediate(() => fail(new Error(`Azurite did not start within ${startTimeoutMs} ms. Output:\n${output}`))),
      startTimeoutMs,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const match = /successfully listens on (https:\/\/[^\s]+)/.exec(output);
      if (match?.[1]) {
        cleanup();
        resolve(match[1]);
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      fail(new Error(`Azurite exited before listening (code ${code}, signal ${signal}). Output:\n${output}`));
    const onError = (error: Error) => fail(error);
    function fail(error: Error) {
      if (settled) return;
      cleanup();
      reject(error);
    }
    function cleanup() {
      settled = true;
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
      // Keep draining the pipes so a chatty Azurite never blocks on a full buffer.
      child.stdout?.resume();
      child.stderr?.resume();
    }
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/**
 * SIGTERM makes Azurite close its server, but its process lingers on timers afterwards; with in-memory
 * persistence there is nothing left to flush, so it is killed once it reports closed (or after a grace period).
 */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const closed = new Promise<void>((resolve) => {
    const onData = (chunk: Buffer) => {
      if (chunk.toString('utf8').includes('successfully closed')) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
  });
  child.kill('SIGTERM');
  let grace: NodeJS.Timeout | undefined;
  await Promise.race([exited, closed, new Promise<void>((resolve) => (grace = setTimeout(resolve, stopTimeoutMs)))]);
  clearTimeout(grace);
  child.kill('SIGKILL');
  await exited;
}
