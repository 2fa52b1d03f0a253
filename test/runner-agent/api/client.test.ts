import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RunnerApiClient, parseRetryAfterMs, type TokenProvider } from '../../../runner-agent/api/client.js';
import { backoffDelayMs } from '../../../shared/retry.js';

type Answer = { status: number; body?: unknown; headers?: Record<string, string> } | 'hang-up';

let server: Server;
let baseUrl: string;
let answers: Answer[] = [];
let requests: Array<{ url: string; authorization?: string; body: string }> = [];

beforeAll(async () => {
  server = createServer((request: IncomingMessage, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      requests.push({ url: request.url ?? '', authorization: request.headers.authorization, body });
      const answer = answers.shift() ?? { status: 202, body: { jobId: 'j', status: 'Running', duplicate: false } };
      if (answer === 'hang-up') return request.socket.destroy();
      response.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
      response.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

beforeEach(() => {
  answers = [];
  requests = [];
});

function client(options: { tokens?: TokenProvider; maxAttempts?: number } = {}) {
  const sleeps: number[] = [];
  const api = new RunnerApiClient({
    baseUrl,
    tokens: options.tokens ?? { getToken: async () => 'tok' },
    retry: { maxAttempts: options.maxAttempts ?? 4, baseDelayMs: 100, maxDelayMs: 1000 },
    sleep: async (ms) => void sleeps.push(ms),
    random: () => 0.5,
  });
  return { api, sleeps };
}

const progress = { type: 'progress', eventId: 'job:a:progress:1', percent: 5, bytes: 10 } as const;

describe('runner API client', () => {
  it('posts events with the bearer token to the job route', async () => {
    const { api } = client();
    const outcome = await api.postEvent('job 1', progress);
    expect(outcome).toEqual({ kind: 'ok', value: { jobId: 'j', status: 'Running', duplicate: false } });
    expect(requests).toEqual([{ url: '/api/runner/jobs/job%201/events', authorization: 'Bearer tok', body: JSON.stringify(progress) }]);
  });

  it('maps 409 to a not-runnable outcome carrying the job status', async () => {
    answers = [{ status: 409, body: { type: 'x', title: 'Conflict', status: 'Cancelled', detail: 'The job was cancelled', code: 'conflict' } }];
    const { api } = client();
    expect(await api.postEvent('j', progress)).toEqual({ kind: 'not_runnable', status: 'Cancelled', detail: 'The job was cancelled' });
    expect(requests).toHaveLength(1);
    // The control plane's shape: `status` stays the HTTP status, the job's status is the `jobStatus` member.
    answers = [{ status: 409, body: { title: 'Conflict', status: 409, jobStatus: 'Failed', detail: 'The job failed', code: 'conflict' } }];
    expect(await api.uploadTarget('j')).toEqual({ kind: 'not_runnable', status: 'Failed', detail: 'The job failed' });
  });

  it('retries 5xx, 429 and network errors with backoff, honouring Retry-After', async () => {
    answers = [{ status: 503 }, { status: 429, headers: { 'retry-after': '7' } }, 'hang-up'];
    const { api, sleeps } = client();
    expect((await api.postEvent('j', progress)).kind).toBe('ok');
    expect(requests).toHaveLength(4);
    // Full jitter with random()=0.5: half of 100·2^attempt; Retry-After wins when present.
    expect(sleeps).toEqual([50, 7000, 200]);
  });

  it('gives up after the last attempt with dependency_unavailable (the message is then abandoned)', async () => {
    answers = [{ status: 500 }, { status: 502 }, { status: 504 }, { status: 503 }];
    const { api } = client();
    await expect(api.postEvent('j', progress)).rejects.toMatchObject({ code: 'dependency_unavailable' });
    expect(requests).toHaveLength(4);
  });

  it('never retries other 4xx', async () => {
    answers = [{ status: 400, body: { detail: 'bad event' } }];
    const { api } = client();
    await expect(api.postEvent('j', progress)).rejects.toMatchObject({ code: 'validation_failed', message: expect.stringContaining('bad event') });
    answers = [{ status: 403, body: { detail: 'no Runner role' } }];
    await expect(api.postEvent('j', progress)).rejects.toMatchObject({ code: 'forbidden' });
    expect(requests).toHaveLength(2);
  });

  it('after a 401 asks once for a fresh token and tries again', async () => {
    answers = [{ status: 401 }];
    const calls: Array<boolean | undefined> = [];
    const { api } = client({ tokens: { getToken: async (o) => (calls.push(o?.forceRefresh), o?.forceRefresh ? 'fresh' : 'stale') } });
    expect((await api.postEvent('j', progress)).kind).toBe('ok');
    expect(calls).toContain(true);
    expect(requests.map((r) => r.authorization)).toEqual(['Bearer stale', 'Bearer stale']);
  });

  it('validates the upload target', async () => {
    answers = [{ status: 200, body: { blobPath: 'backups/a', url: 'https://acct.blob.core.windows.net/c/backups/a?sig=x', expiresAt: '2026-11-23T10:00:00Z' } }];
    const { api } = client();
    expect(await api.uploadTarget('j')).toMatchObject({ kind: 'ok', value: { blobPath: 'backups/a' } });
    answers = [{ status: 200, body: { nope: true } }];
    await expect(api.uploadTarget('j')).rejects.toThrow(/unexpected body/);
  });

  it('probe: a 404 for a job that does not exist proves the token was accepted', async () => {
    answers = [{ status: 404, body: { detail: 'no such job' } }];
    expect(await client().api.probe()).toEqual({ status: 404 });
    answers = [{ status: 403, body: { detail: 'no Runner role' } }];
    await expect(client().api.probe()).rejects.toMatchObject({ code: 'forbidden' });
  });
});

describe('backoff helpers', () => {
  it('caps the exponential ceiling and draws below it', () => {
    const policy = { maxAttempts: 10, baseDelayMs: 100, maxDelayMs: 1000 };
    expect(backoffDelayMs(0, policy, () => 0.999)).toBe(99);
    expect(backoffDelayMs(8, policy, () => 0.999)).toBe(999);
    expect(backoffDelayMs(3, policy, () => 0)).toBe(0);
  });

  it('reads Retry-After as seconds or a date', () => {
    expect(parseRetryAfterMs('3')).toBe(3000);
    expect(parseRetryAfterMs(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(parseRetryAfterMs('soon')).toBeUndefined();
    expect(parseRetryAfterMs(null)).toBeUndefined();
  });
});
