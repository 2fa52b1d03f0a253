/**
 * A stand-in for the control plane's runner endpoints: records every call, answers events with 202 (or what a
 * test scripts), and hands out REAL write-only SAS URLs from the blob gateway (Azurite) for the job's blob path.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RunnerEvent } from '../../shared/contracts/runner.js';
import type { BlobGateway } from '../../shared/storage/gateway.js';

export interface RecordedEvent {
  jobId: string;
  event: RunnerEvent;
  authorization: string | undefined;
}

export interface ScriptedAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface ApiStandIn {
  baseUrl: string;
  events: RecordedEvent[];
  uploadTargetCalls: string[];
  /** Return an answer to override the default 202 for an event. */
  answerEvent?: (jobId: string, event: RunnerEvent) => ScriptedAnswer | undefined;
  /** Registers where a job's blob goes (the real API knows it from the job row). */
  blobPathFor: Map<string, string>;
  /** Resolves when an event matching `predicate` has been recorded. */
  waitForEvent(predicate: (e: RecordedEvent) => boolean, timeoutMs?: number): Promise<RecordedEvent>;
  close(): Promise<void>;
}

export async function startApiStandIn(gateway: BlobGateway): Promise<ApiStandIn> {
  const waiters: Array<{ predicate: (e: RecordedEvent) => boolean; resolve: (e: RecordedEvent) => void }> = [];
  let server: Server;
  const api: ApiStandIn = {
    baseUrl: '',
    events: [],
    uploadTargetCalls: [],
    blobPathFor: new Map(),
    // Generous: a bound on a wait (on a loaded CI machine), not a timing being tested.
    waitForEvent(predicate, timeoutMs = 45_000) {
      const found = api.events.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('timed out waiting for a runner event')), timeoutMs);
        waiters.push({
          predicate,
          resolve: (event) => {
            clearTimeout(timer);
            resolve(event);
          },
        });
      });
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };

  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      void (async () => {
        const send = (answer: ScriptedAnswer) => {
          response.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
          response.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
        };
        const match = /^\/api\/runner\/jobs\/([^/]+)\/(events|upload-target)$/.exec(request.url ?? '');
        if (request.method !== 'POST' || !match) return send({ status: 404, body: { status: 404, code: 'not_found' } });
        const jobId = decodeURIComponent(match[1]!);
        if (match[2] === 'events') {
          const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as RunnerEvent;
          const recorded = { jobId, event, authorization: request.headers.authorization };
          const scripted = api.answerEvent?.(jobId, event);
          if (!scripted || scripted.status < 300) {
            api.events.push(recorded);
            for (const waiter of waiters.filter((w) => w.predicate(recorded))) {
              waiters.splice(waiters.indexOf(waiter), 1);
              waiter.resolve(recorded);
            }
          }
          return send(scripted ?? { status: 202, body: { jobId, status: 'Running', duplicate: false } });
        }
        api.uploadTargetCalls.push(jobId);
        const blobPath = api.blobPathFor.get(jobId);
        if (!blobPath) return send({ status: 404, body: { status: 404, code: 'not_found', detail: 'no such job' } });
        const link = await gateway.issueWriteSas(blobPath, { expiresAt: new Date(Date.now() + 30 * 60_000) });
        return send({ status: 200, body: { blobPath, url: link.url, expiresAt: link.expiresAt.toISOString() } });
      })().catch((error: unknown) => {
        response.writeHead(500);
        response.end(String(error));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  api.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return api;
}
