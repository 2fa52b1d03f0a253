/** Backup jobs: request, list, read, cancel, delete the backup, download link. */
import {
  ApprovalDecisionRequest,
  CreateJobRequest,
  DownloadLink,
  DownloadLinkRequest,
  JobView,
  ListJobsQuery,
  RejectionRequest,
} from '../shared/contracts/jobs.js';
import { JobPage } from '../shared/openapi.js';
import * as jobs from '../services/jobs.js';
import { requestRehearsal } from '../services/rehearsals.js';
import { z } from 'zod';
import { endpoint } from './endpoint.js';
import { IdParams } from './params.js';
import { httpRoute } from './registry.js';
import { accepted, ok } from './responses.js';

export const createJob = endpoint({
  summary: 'Request a backup of a registered database (caller in one of its requester groups, or Admin)',
  access: { anyOf: ['Requester', 'Admin'] },
  body: CreateJobRequest,
  responses: [{ status: 202, description: 'The job, Pending; Location names it', schema: JobView, headers: { location: 'URL of the job' } }],
  async handle({ scope, body }) {
    const job = await jobs.requestBackup(scope, body);
    return accepted(job, `jobs/${job.id}`);
  },
});

export const listJobs = endpoint({
  summary: "The caller's jobs, newest first (an Admin or an Auditor sees everyone's; an Approver with status=AwaitingApproval sees all pending ones)",
  access: { anyOf: ['Requester', 'Admin', 'Auditor', 'Approver'] },
  query: ListJobsQuery,
  responses: [{ status: 200, description: 'One page of jobs', schema: JobPage }],
  async handle({ scope, query }) {
    return ok(await jobs.listJobs(scope, query));
  },
});

export const getJob = endpoint({
  summary: 'One job (its requester, Admin, Auditor, or an Approver for jobs under approval); never a download link (POST …/download-link returns one, once)',
  access: { anyOf: ['Requester', 'Admin', 'Auditor', 'Approver'] },
  params: IdParams,
  responses: [{ status: 200, description: 'The job', schema: JobView }],
  async handle({ scope, params }) {
    return ok(await jobs.getJob(scope, params.id));
  },
});

/** 202 when the orchestration was asked, 200 when it was done here. */
const actionResponse = (result: jobs.JobActionResult, jobId: string) =>
  result.outcome === 'requested' ? accepted(result.job, `jobs/${jobId}`) : ok(result.job);

export const cancelJob = endpoint({
  summary: 'Ask for a job to be cancelled (its requester or Admin; Pending, Queued or Running only)',
  access: { anyOf: ['Requester', 'Admin'] },
  params: IdParams,
  responses: [
    { status: 202, description: 'Cancellation requested from the job orchestration; the job as it was', schema: JobView },
    { status: 200, description: 'The job had no live orchestration: cancelled directly; the job as it is now', schema: JobView },
    { status: 409, description: 'Too late (the upload has finished: Verifying and after) or already ended; `jobStatus` says which' },
  ],
  async handle({ scope, params }) {
    return actionResponse(await jobs.requestCancel(scope, params.id), params.id);
  },
});

export const deleteJobBackup = endpoint({
  summary: 'Delete an Available backup before its retention ends (its requester or Admin)',
  access: { anyOf: ['Requester', 'Admin'] },
  params: IdParams,
  responses: [
    { status: 202, description: 'Deletion requested from the job orchestration; the job as it was', schema: JobView },
    { status: 200, description: 'The job had no live orchestration: blob deleted and job Expired directly; the job as it is now', schema: JobView },
  ],
  async handle({ scope, params }) {
    return actionResponse(await jobs.requestBackupDeletion(scope, params.id), params.id);
  },
});

export const approveJob = endpoint({
  summary: 'Approve a job awaiting approval (an Approver who did not request it; a refusal is audited)',
  // Any valid caller reaches the service, so that a refused attempt (self-approval, no role) is recorded.
  access: 'authenticated',
  params: IdParams,
  body: ApprovalDecisionRequest,
  responses: [{ status: 202, description: 'Approval handed to the orchestration; the job as it was', schema: JobView }],
  async handle({ scope, params, body }) {
    return accepted(await jobs.decideApproval(scope, params.id, 'approved', body.reason), `jobs/${params.id}`);
  },
});

export const rejectJob = endpoint({
  summary: 'Reject a job awaiting approval, with a reason (an Approver who did not request it; a refusal is audited)',
  access: 'authenticated',
  params: IdParams,
  body: RejectionRequest,
  responses: [{ status: 202, description: 'Rejection handed to the orchestration; the job as it was', schema: JobView }],
  async handle({ scope, params, body }) {
    return accepted(await jobs.decideApproval(scope, params.id, 'rejected', body.reason), `jobs/${params.id}`);
  },
});

export const createDownloadLink = endpoint({
  summary: 'A short-lived read-only link to an Available backup (its requester or Admin; refusals are audited)',
  // Any valid caller reaches the service, so that a refused attempt is recorded in the audit trail.
  access: 'authenticated',
  params: IdParams,
  body: DownloadLinkRequest,
  responses: [{ status: 200, description: 'The link, returned this once (stored nowhere), with its correlation id', schema: DownloadLink }],
  async handle({ scope, params, body, context }) {
    const link = await jobs.issueDownloadLink(scope, params.id, body);
    // What docs/audit-downloads.md joins storage logs on (AppTraces); never the URL, a bearer secret.
    context.log(`sas.download_issued job=${params.id} correlationId=${link.correlationId} for=${scope.principal.oid} expiresAt=${link.expiresAt}`);
    return ok(link);
  },
});

export const rehearseJob = endpoint({
  summary: 'Ask the runner of the backup’s server to restore-rehearse an Available backup (Admin); the outcome lands on the job',
  access: { anyOf: ['Admin'] },
  params: IdParams,
  responses: [
    {
      status: 202,
      description: 'Rehearsal requested (audited); `restoreRehearsal` on the job shows the outcome',
      schema: z.object({ jobId: z.uuid(), rehearsalId: z.uuid(), requestedAt: z.iso.datetime() }).meta({ id: 'RehearsalRequested' }),
      headers: { location: 'URL of the job' },
    },
    { status: 409, description: 'The job is not Available, or its copy is age-encrypted (no runner can open it); `jobStatus` says which' },
  ],
  async handle({ scope, params }) {
    return accepted(await requestRehearsal(scope, params.id), `jobs/${params.id}`);
  },
});

httpRoute({ name: 'jobs-rehearse', route: 'jobs/{id}/rehearse', methods: ['POST'], handler: rehearseJob });
httpRoute({ name: 'jobs-create', route: 'jobs', methods: ['POST'], handler: createJob, durableClient: true });
httpRoute({ name: 'jobs-list', route: 'jobs', methods: ['GET'], handler: listJobs });
httpRoute({ name: 'jobs-get', route: 'jobs/{id}', methods: ['GET'], handler: getJob });
httpRoute({ name: 'jobs-cancel', route: 'jobs/{id}/cancel', methods: ['POST'], handler: cancelJob, durableClient: true });
httpRoute({ name: 'jobs-delete-backup', route: 'jobs/{id}/backup', methods: ['DELETE'], handler: deleteJobBackup, durableClient: true });
httpRoute({ name: 'jobs-approve', route: 'jobs/{id}/approve', methods: ['POST'], handler: approveJob, durableClient: true });
httpRoute({ name: 'jobs-reject', route: 'jobs/{id}/reject', methods: ['POST'], handler: rejectJob, durableClient: true });
httpRoute({ name: 'jobs-download-link', route: 'jobs/{id}/download-link', methods: ['POST'], handler: createDownloadLink });
