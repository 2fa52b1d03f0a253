/** Endpoints of the on-prem runner agent (app role Runner on an application token). */
import { z } from 'zod';
import { ProbeTarget, RehearsalReport, RehearsalSource, RunnerEvent, RunnerEventAck, RunnerHeartbeat, RunnerHeartbeatAck, RunnersView, StagedBlocks, UploadTarget } from '../shared/contracts/runner.js';
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

export const listStagedBlocks = endpoint({
  summary: "The uncommitted blocks on the job's blob (Get Block List), for resuming an interrupted upload of a local backup file",
  access: runnerOnly,
  params: IdParams,
  responses: [{ status: 200, description: "Block ids and sizes an earlier attempt staged; the runner's SAS has no read", schema: StagedBlocks }],
  async handle({ scope, params }) {
    return ok(await runner.listStagedBlocks(scope, params.id));
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

export const issueRehearsalSource = endpoint({
  summary: 'A short read SAS for an Available backup to restore-rehearse, with its recorded digest and row counts (bound runner only)',
  access: runnerOnly,
  params: IdParams,
  responses: [
    { status: 200, description: 'Where to read the backup and what to check it against', schema: RehearsalSource },
    { status: 409, description: 'The backup is not Available; `jobStatus` says what it is' },
  ],
  async handle({ scope, params }) {
    return ok(await runner.issueRehearsalSource(scope, params.id));
  },
});

export const postRehearsalReport = endpoint({
  summary: "Report how a restore rehearsal of the job's backup ended (bound runner only); recorded on the job and audited",
  access: runnerOnly,
  params: IdParams,
  body: RehearsalReport,
  responses: [
    { status: 200, description: 'Recorded', schema: z.object({ jobId: z.uuid(), result: z.enum(['passed', 'failed']) }) },
    { status: 409, description: 'The backup is not Available any more; `jobStatus` says what it is' },
  ],
  async handle({ scope, params, body }) {
    return ok(await runner.reportRehearsal(scope, params.id, body));
  },
});

export const postRunnerHeartbeat = endpoint({
  summary: 'A runner host reports itself (every minute): id, version, servers, jobs in flight, free scratch space',
  access: runnerOnly,
  body: RunnerHeartbeat,
  responses: [{ status: 200, description: 'Which of its servers the registry binds it to', schema: RunnerHeartbeatAck }],
  async handle({ scope, body }) {
    return ok(await runner.recordHeartbeat(scope, body));
  },
});

export const listRunners = endpoint({
  summary: 'Runner hosts by last heartbeat (live or stale), and the servers no live bound runner serves (Admin)',
  access: { anyOf: ['Admin'] },
  responses: [{ status: 200, description: 'Runners and uncovered servers', schema: RunnersView }],
  async handle({ scope }) {
    return ok(await runner.listRunners(scope));
  },
});

export const issueProbeTarget = endpoint({
  summary: "A 5-minute SAS to write and delete one probe blob outside backups/ (for `dbdist-runner check`)",
  access: runnerOnly,
  responses: [{ status: 200, description: 'Where the probe may be written', schema: ProbeTarget }],
  async handle({ scope }) {
    return ok(await runner.issueProbeTarget(scope));
  },
});

httpRoute({ name: 'runner-probe-target', route: 'runner/probe-target', methods: ['POST'], handler: issueProbeTarget });
httpRoute({ name: 'runner-heartbeat', route: 'runner/heartbeat', methods: ['POST'], handler: postRunnerHeartbeat });
httpRoute({ name: 'runners-list', route: 'runners', methods: ['GET'], handler: listRunners });
httpRoute({ name: 'runner-upload-target', route: 'runner/jobs/{id}/upload-target', methods: ['POST'], handler: issueUploadTarget });
httpRoute({ name: 'runner-staged-blocks', route: 'runner/jobs/{id}/staged-blocks', methods: ['POST'], handler: listStagedBlocks });
httpRoute({ name: 'runner-rehearsal-source', route: 'runner/jobs/{id}/rehearsal-source', methods: ['POST'], handler: issueRehearsalSource });
httpRoute({ name: 'runner-rehearsal', route: 'runner/jobs/{id}/rehearsal', methods: ['POST'], handler: postRehearsalReport });
httpRoute({ name: 'runner-events', route: 'runner/jobs/{id}/events', methods: ['POST'], handler: postRunnerEvent, durableClient: true });
