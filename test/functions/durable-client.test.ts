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
/** Makes the next start answer 409, as the extension does when another start created the instance first. */
let conflictOnNextStart = false;

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
      return send(200, { name: 'backupJob', instanceId: match[1], createdTime: now, lastUpdatedTime: now, input: instance.input, output: null, runtimeStatus: instance.runtimeStatus });
    }
    match = /^\/durabletask\/orchestrators\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'POST' && match) {
      if (conflictOnNextStart) {
        conflictOnNextStart = false;
        return send(409, { message: 'instance already exists' });
      }
      instances.set(match[2]!, { runtimeStatus: 'Pending', input: JSON.parse(body) });
      return send(202, { id: match[2] });
    }
    match = /^\/durabletask\/instances\/([^/]+)\/raiseEvent\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'POST' && match) return send(instances.has(match[1]!) ? 202 : 404);
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

  it('treats a start that loses a race (409) as done', async () => {
    conflictOnNextStart = true;
    await expect(durableJobOrchestrations(contextWithDurableClient()).startBackupJob(jobId)).resolves.toBeUndefined();
  });

  it('raises events with their payload, and fails for an instance that does not exist', async () => {
    instances.set(jobId, { runtimeStatus: 'Running', input: { jobId } });
    const orchestrations = durableJobOrchestrations(contextWithDurableClient());
    await orchestrations.raiseEvent(jobId, 'Cancel', { requestedBy: { oid: 'x' } });
    const raised = requests.find((r) => r.path.endsWith('/raiseEvent/Cancel'));
    expect(JSON.parse(raised!.body)).toEqual({ requestedBy: { oid: 'x' } });
    await expect(orchestrations.raiseEvent('00000000-0000-4000-8000-000000000000', 'Cancel', {})).rejects.toThrow(/No instance/);
  });
});
