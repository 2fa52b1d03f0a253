/**
 * The notifier against real loopback receivers: a webhook that checks the HMAC signature, one that fails, one that
 * hangs, and an HTTPS Event Grid stand-in that the real @azure/eventgrid client publishes CloudEvents to.
 */
import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { AccessToken, TokenCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgliteStore } from '../../dev/stores.js';
import { ensureLoopbackCert } from '../../dev/tls.js';
import type { Store } from '../../shared/db/store.js';
import { NotificationEvent } from '../../shared/contracts/notifications.js';
import {
  WEBHOOK_SIGNATURE_HEADER,
  WEBHOOK_TIMESTAMP_HEADER,
  eventGridChannel,
  webhookChannel,
  webhookSignature,
} from '../../services/notification-channels.js';
import { dispatchNotifications, retryDelayMs } from '../../services/notifications.js';
import { seedDatabase, seedJob, type SeededDatabase } from '../support/deps.js';

const SECRET = 'a-webhook-secret-of-at-least-32-characters';

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
}

/** A loopback receiver that records each call and answers with `respond` (or never, to hang). */
async function receiver(respond: (res: ServerResponse) => void, tls = false): Promise<{ url: string; calls: Received[]; close(): Promise<void> }> {
  const calls: Received[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      calls.push({ headers: req.headers, body });
      respond(res);
    });
  };
  const cert = ensureLoopbackCert();
  const server: Server = tls ? createHttpsServer({ cert: cert.cert, key: cert.key }, handler) : createHttpServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}/hook`,
    calls,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

let store: Store;
let seeded: SeededDatabase;
const receivers: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  store = await createPgliteStore();
  seeded = await seedDatabase(store, { name: 'sales' });
});
afterAll(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  await store?.close();
});

async function track<T extends { close(): Promise<void> }>(r: Promise<T>): Promise<T> {
  const started = await r;
  receivers.push(started);
  return started;
}

/** Drains whatever earlier tests left, so each test sees only its own events. */
async function drain() {
  await dispatchNotifications({ store, now: () => new Date(Date.now() + 365 * 86_400_000), notifications: [] });
}

describe('notifier', () => {
  it('tells the requester when the copy is Available, with a signature the receiver can check', async () => {
    await drain();
    const hook = await track(receiver((res) => res.writeHead(204).end()));
    const job = await seedJob(store, seeded, { requesterOid: randomUUID(), status: 'Available' });
    const logs: string[] = [];
    const report = await dispatchNotifications(
      { store, now: () => new Date(), notifications: [webhookChannel({ url: hook.url, secret: SECRET })] },
      { log: (line) => logs.push(line) },
    );
    expect(report).toEqual({ delivered: 1, retrying: 0, dropped: 0, skipped: 0 });
    expect(hook.calls).toHaveLength(1);
    const [call] = hook.calls;
    const event = NotificationEvent.parse(JSON.parse(call!.body));
    expect(event).toMatchObject({ type: 'dbdist.job.available', audience: 'requester', jobId: job.id, databaseName: 'sales', requester: { oid: job.requesterOid } });
    expect(event.text).toContain('ready to download');
    const timestamp = String(call!.headers[WEBHOOK_TIMESTAMP_HEADER]);
    expect(call!.headers[WEBHOOK_SIGNATURE_HEADER]).toBe(webhookSignature(SECRET, timestamp, call!.body));
    expect(call!.headers[WEBHOOK_SIGNATURE_HEADER]).not.toBe(webhookSignature('another-secret-of-at-least-32-chars!!', timestamp, call!.body));
    expect(logs.join('\n')).toContain(`dbdist.job.available ${event.id} delivered`);
    // The line the alert rules count (infra/modules/alerts.bicep), once per event.
    expect(logs.filter((line) => line.startsWith(`dbdist.event dbdist.job.available ${event.id} job=${job.id}`))).toHaveLength(1);
    // Delivered means done: the next run has nothing to send.
    expect(await dispatchNotifications({ store, now: () => new Date(), notifications: [webhookChannel({ url: hook.url, secret: SECRET })] })).toEqual({ delivered: 0, retrying: 0, dropped: 0, skipped: 0 });
  });

  it('bounds a hanging webhook by the timeout and still delivers to the other channel', async () => {
    await drain();
    const hanging = await track(receiver(() => {}));
    const good = await track(receiver((res) => res.writeHead(200).end('ok')));
    const job = await seedJob(store, seeded, { requesterOid: randomUUID(), status: 'Queued' });
    await store.transitionJob(job.id, { from: ['Queued'], to: 'Failed', patch: { errorCode: 'engine_error' } }, { actorType: 'system', actorId: 't', action: 'job.failed', target: `job/${job.id}` });
    const channels = [webhookChannel({ url: hanging.url, secret: SECRET, name: 'slow' }), webhookChannel({ url: good.url, secret: SECRET, name: 'good' })];
    const warnings: string[] = [];
    const report = await dispatchNotifications({ store, now: () => new Date(), notifications: channels }, { timeoutMs: 300, warn: (line) => warnings.push(line) });
    expect(report.retrying).toBe(1);
    expect(good.calls.map((c) => JSON.parse(c.body).type)).toEqual(['dbdist.job.failed']);
    expect(hanging.calls).toHaveLength(1);
    expect(warnings.join('\n')).toMatch(/slow: timed out after 300 ms/);
    const [pending] = await store.listPendingNotifications(new Date(Date.now() + retryDelayMs(1) + 1000), 10);
    // The good channel took it; a retry goes only to the one that did not.
    expect(pending).toMatchObject({ attempts: 1, deliveredTo: ['good'] });
  });

  it('retries a failing webhook with back-off, then drops the event with a log line', async () => {
    await drain();
    const failing = await track(receiver((res) => res.writeHead(503).end()));
    await store.appendAudit({ actorType: 'system', actorId: 'rpo-check', action: 'rpo.breached', target: `database/${seeded.database.id}`, detail: { databaseName: 'sales', rpoHours: 24 } });
    const channels = [webhookChannel({ url: failing.url, secret: SECRET })];
    const warnings: string[] = [];
    let clock = Date.now();
    const run = () => dispatchNotifications({ store, now: () => new Date(clock), notifications: channels }, { maxAttempts: 3, warn: (line) => warnings.push(line) });
    expect((await run()).retrying).toBe(1);
    expect((await run()).retrying).toBe(0); // not due yet: back-off
    clock += retryDelayMs(1) + 1;
    expect((await run()).retrying).toBe(1);
    clock += retryDelayMs(2) + 1;
    expect((await run()).dropped).toBe(1);
    expect(failing.calls).toHaveLength(3);
    expect(warnings.at(-1)).toMatch(/dbdist\.rpo\.breached .* dropped after 3 attempts: webhook:127\.0\.0\.1:\d+: webhook answered 503/);
    clock += 365 * 86_400_000;
    expect(await run()).toEqual({ delivered: 0, retrying: 0, dropped: 0, skipped: 0 });
  });

  it('publishes CloudEvents to Event Grid with the app identity (real @azure/eventgrid client, HTTPS stand-in)', async () => {
    await drain();
    const topic = await track(receiver((res) => res.writeHead(200).end(), true));
    const credential: TokenCredential = {
      getToken: async (scopes): Promise<AccessToken> => ({ token: `token-for:${[scopes].flat().join(' ')}`, expiresOnTimestamp: Date.now() + 3_600_000 }),
    };
    const job = await seedJob(store, seeded, { requesterOid: randomUUID(), status: 'Available' });
    const report = await dispatchNotifications({ store, now: () => new Date(), notifications: [eventGridChannel({ endpoint: topic.url.replace('/hook', '/api/events'), credential })] });
    expect(report.delivered).toBe(1);
    const [call] = topic.calls;
    expect(call!.headers.authorization).toBe('Bearer token-for:https://eventgrid.azure.net/.default');
    expect(call!.headers['content-type']).toMatch(/application\/cloudevents-batch\+json/);
    const [cloudEvent] = JSON.parse(call!.body) as Array<Record<string, unknown>>;
    expect(cloudEvent).toMatchObject({ specversion: '1.0', type: 'dbdist.job.available', source: `/dbdist/jobs/${job.id}`, data: { jobId: job.id, audience: 'requester' } });
  });

  it('drains events nobody is told about without calling anyone', async () => {
    await drain();
    const hook = await track(receiver((res) => res.writeHead(204).end()));
    const job = await seedJob(store, seeded, { requesterOid: randomUUID(), status: 'Available' });
    await store.appendAudit({ actorType: 'system', actorId: 'x', action: 'rpo.recovered', target: `database/${seeded.database.id}`, jobId: null });
    void job;
    const report = await dispatchNotifications({ store, now: () => new Date(), notifications: [webhookChannel({ url: hook.url, secret: SECRET })] });
    expect(report.delivered).toBe(2);
    expect(hook.calls.map((c) => JSON.parse(c.body).type).sort()).toEqual(['dbdist.job.available', 'dbdist.rpo.recovered']);
  });
});
