/** Endpoints of the on-prem runner agent (app role Runner on an application token). */
import { RunnerEvent, RunnerEventAck, UploadTarget } from '../shared/contracts/runner.js';
import * as runner from '../services/runner.js';
import { endpoint } from './endpoint.js';
import { IdParams } from './params.js';
import { httpRoute } from './registry.js';
import { accepted, ok } from './responses.js';

const runnerOnly = { anyOf: ['Runner'] } as const;

export const issueUploadTarget = endpoint({
  summary: "A fresh write-only SAS for the job's blob, while the job is Queued or Running (409 with `jobStatus` otherwise)",
  access: runnerOnly,
  params: IdParams,
  responses: [{ status: 200, description: 'Where and until when the runner may write', schema: UploadTarget }],
  async handle({ scope, params }) {
    return ok(await runner.issueUploadTarget(scope, params.id));
  },
});

export const postRunnerEvent = endpoint({
  summary: "Report accepted/progress/uploaded/failed for a job (409 with the job's `jobStatus` when it is no longer runnable)",
  access: runnerOnly,
  params: IdParams,
  body: RunnerEvent,
  responses: [
    { status: 202, description: 'Lifecycle events passed to the job orchestration; progress on a Running job written to the job row (at most every 15 s)', schema: RunnerEventAck },
  ],
  async handle({ scope, params, body }) {
    return accepted(await runner.reportRunnerEvent(scope, params.id, body));
  },
});

httpRoute({ name: 'runner-upload-target', route: 'runner/jobs/{id}/upload-target', methods: ['POST'], handler: issueUploadTarget });
httpRoute({ name: 'runner-events', route: 'runner/jobs/{id}/events', methods: ['POST'], handler: postRunnerEvent, durableClient: true });
