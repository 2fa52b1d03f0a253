/**
 * durableJobOrchestrations against a stand-in for the Durable extension's HTTP API (the `rpcBaseUrl` the host
 * hands the client binding), driven through the real durable-functions client.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { durableJobOrchestrations } from '../../functions/durable-client.js';

interface Instance {
  runtimeStatus: string;
  input: unknown;
}

let server: Server;
let rpcBaseUrl: string;
const instances = new Map<string, Instance>();
const requests: Array<{ method: string; path: string; body: string }> = [];
/**
 * Answers like the extension's HTTP API (HttpApiHandler.cs): a start on an existing instance fails inside
 * DurableTask and surfaces as a plain 500 (there is no conflict status); a raise answers 404 for an unknown
 * instance and 410 for an ended one; a status read answers 404, 202 (Pending/Running) or 200.
 */
const ENDED = ['Completed', 'Failed', 'Terminated', 'Canceled'];
/** The next start finds the instance already created by a concurrent start (the race the port must absorb). */
let concurrentStartWins = false;
/** The next start fails for a reason of its own (the host is unwell): 500, and no instance. */
let failNextStart = false;
/** The instance is purged between the port's status read and its raise. */
let purgeBeforeNextRaise = false;

async function readBody(req: IncomingMessage): Promise<string> {
  let body = '';
  for await (const chunk of req) body += chunk;
  return body;
}

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const body = await readBody(req);
    requests.push({ method: req.method ?? '', path: url.pathname, body });
    const send = (status: number, json?: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(json === undefined ? '' : JSON.stringify(json));
    };
    let match = /^\/durabletask\/instances\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && match) {
      const instance = instances.get(match[1]!);
      if (!instance) return send(404);
      const now = new Date().toISOString();
      return send(['Pending', 'Running'].includes(instance.runtimeStatus) ? 202 : 200, { name: 'backupJob', instanceId: match[1], createdTime: now, lastUpdatedTime: now, input: instance.input, output: null, runtimeStatus: instance.runtimeStatus });
    }
    match = /^\/durabletask\/orchestrators\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'POST' && match) {
      if (concurrentStartWins) {
        concurrentStartWins = false;
        instances.set(match[2]!, { runtimeStatus: 'Running', input: JSON.parse(body) });
      }
      if (failNextStart) {
        failNextStart = false;
        return send(500, { Message: 'An error has occurred.' });
      }
      if (instances.has(match[2]!)) return send(500, { Message: 'An error has occurred.', ExceptionMessage: 'An Orchestration instance with the status Running already exists.' });
      instances.set(match[2]!, { runtimeStatus: 'Pending', input: JSON.parse(body) });
      return send(202, { id: match[2] });
    }
    match = /^\/durabletask\/instances\/([^/]+)\/raiseEvent\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'POST' && match) {
      if (purgeBeforeNextRaise) {
        purgeBeforeNextRaise = false;
        instances.delete(match[1]!);
      }
      const instance = instances.get(match[1]!);
      return send(!instance ? 404 : ENDED.includes(instance.runtimeStatus) ? 410 : 202);
    }
    send(500, { message: 'unexpected request' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  rpcBaseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/durabletask/`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  instances.clear();
  requests.length = 0;
});

/** An invocation context as the host builds it for a function that declared the durable client input. */
function contextWithDurableClient(): InvocationContext {
  const input = df.input.durableClient();
  const context = new InvocationContext({ functionName: 'jobs-create', invocationId: 'inv-1', options: { trigger: { type: 'httpTrigger', name: 'req' }, extraInputs: [input], extraOutputs: [] } as never });
  const managementUrls = { id: 'INSTANCEID', statusQueryGetUri: `${rpcBaseUrl}instances/INSTANCEID`, sendEventPostUri: `${rpcBaseUrl}instances/INSTANCEID/raiseEvent/{eventName}` };
  context.extraInputs.set(input, { taskHubName: 'dbdist', creationUrls: {}, managementUrls, baseUrl: rpcBaseUrl, requiredQueryStringParameters: '', rpcBaseUrl });
  return context;
}

const jobId = '3f2b9c1e-6a4d-4e8f-9b2a-1c3d5e7f9a0b';

describe('durableJobOrchestrations', () => {
  it('starts backupJob2 (what new jobs run) with the job id as instance id and input', async () => {
    const orchestrations = durableJobOrchestrations(contextWithDurableClient());
    expect(await orchestrations.getState(jobId)).toBe('NotFound');
    await orchestrations.startBackupJob(jobId);
    expect(instances.get(jobId)).toEqual({ runtimeStatus: 'Pending', input: { jobId } });
    expect(requests.find((r) => r.method === 'POST')?.path).toBe(`/durabletask/orchestrators/backupJob2/${jobId}`);
    expect(await orchestrations.getState(jobId)).toBe('Pending');
  });

  it('does not start (and so never restarts) an instance that exists, finished or not', async () => {
    instances.set(jobId, { runtimeStatus: 'Completed', input: { jobId } });
    await durableJobOrchestrations(contextWithDurableClient()).startBackupJob(jobId);
    expect(requests.filter((r) => r.method === 'POST')).toEqual([]);
    expect(instances.get(jobId)?.runtimeStatus).toBe('Completed');
  });

  it('treats a start that loses a race as done: the extension answers 500, and the instance exists', async () => {
    concurrentStartWins = true;
    const orchestrations = durableJobOrchestrations(contextWithDurableClient());
    await expect(orchestrations.startBackupJob(jobId)).resolves.toBeUndefined();
    expect(await orchestrations.getState(jobId)).toBe('Running');
  });

  it('passes on a start error when no instance came of it', async () => {
    failNextStart = true;
    const orchestrations = durableJobOrchestrations(contextWithDurableClient());
    await expect(orchestrations.startBackupJob(jobId)).rejects.toThrow(/unexpected status code: 500/);
    expect(await orchestrations.getState(jobId)).toBe('NotFound');
  });

  it('raises events with their payload at a live instance', async () => {
    instances.set(jobId, { runtimeStatus: 'Running', input: { jobId } });
    const orchestrations = durableJobOrchestrations(contextWithDurableClient());
    expect(await orchestrations.raiseEvent(jobId, 'Cancel', { requestedBy: { oid: 'x' } })).toEqual({ raised: true });
    const raised = requests.find((r) => r.path.endsWith('/raiseEvent/Cancel'));
    expect(JSON.parse(raised!.body)).toEqual({ requestedBy: { oid: 'x' } });
  });

  it('reports an event an ended instance would drop (the client is silent on 410) instead of taking it as delivered', async () => {
    const df = await import('durable-functions');
    const client = df.getClient(contextWithDurableClient());
    instances.set(jobId, { runtimeStatus: 'Completed', input: { jobId } });
    // The real client resolves on 410: nothing in its answer says the event was dropped.
    await expect(client.raiseEvent(jobId, 'Delete', {})).resolves.toBeUndefined();
    const orchestrations = durableJobOrchestrations(contextWithDurableClient());
    expect(await orchestrations.raiseEvent(jobId, 'Delete', {})).toEqual({ raised: false, state: 'Completed' });
  });

  it('reports an unknown instance (the client rejects 404 with no "404" in its text) as NotFound, never an error', async () => {
    const unknown = '00000000-0000-4000-8000-000000000000';
    const df = await import('durable-functions');
    const rejected = df.getClient(contextWithDurableClient()).raiseEvent(unknown, 'Cancel', {});
    await expect(rejected).rejects.toThrow(`No instance with ID '${unknown}' found.`);
    await expect(rejected).rejects.not.toThrow(/404/);

    const orchestrations = durableJobOrchestrations(contextWithDurableClient());
    expect(await orchestrations.raiseEvent(unknown, 'Cancel', {})).toEqual({ raised: false, state: 'NotFound' });
    // Purged between the status read and the raise: the 404 is read back as NotFound too.
    instances.set(jobId, { runtimeStatus: 'Running', input: { jobId } });
    purgeBeforeNextRaise = true;
    expect(await orchestrations.raiseEvent(jobId, 'Cancel', {})).toEqual({ raised: false, state: 'NotFound' });
  });
});
