/**
 * Orchestration replay. Every new event makes the Durable extension replay the job's whole history through the
 * orchestrator, so the history's length is the cost that could grow with a long backup. Measured here, for a
 * 1-minute, a 10-hour and a 100-hour backup:
 *
 * 1. Runner side: progress offered every second to the real ProgressThrottle (runner-agent/pipeline/progress.ts)
 *    on a simulated clock; how many reports the runner sends.
 * 2. Orchestrator side: the job's whole life (prepare … uploaded … Available … retention … Expired) on the real
 *    `backupJob2` orchestrator played by dev/durable-history.ts (durable-functions' own replay engine, the
 *    extension's replay re-enacted), each report routed as the runner endpoint routes it
 *    (services/runner.ts `reachesOrchestration`: progress on a Running job goes to the job row only). Target
 *    (issue 16): ≤ 100 history events per job whatever the duration. For comparison, v1 `backupJob` with every
 *    report raised (what it received before), for the 1-minute and 10-hour backups.
 * 3. Replay time: one replay of each final history through `createOrchestrator` (what the extension asks for on
 *    each new event), median of several.
 */
import { DummyOrchestrationContext } from 'durable-functions';
import { ACTIVITY } from '../orchestrations/backupJob.activities.js';
import { INTEGRITY_ACTIVITY } from '../orchestrations/integrity.activities.js';
import { BACKUP_JOB_ORCHESTRATOR, backupJobOrchestrator } from '../orchestrations/backupJob.js';
import { BACKUP_JOB2_ORCHESTRATOR, backupJob2Orchestrator } from '../orchestrations/backupJob2.js';
import { ProgressThrottle, type ProgressSample } from '../runner-agent/pipeline/progress.js';
import { reachesOrchestration } from '../services/runner.js';
import type { JobStatus } from '../shared/contracts/jobs.js';
import { ORCHESTRATION_EVENTS, type RunnerEvent } from '../shared/contracts/runner.js';
import { BLOB_PATH, JOB_ID, SAMPLE_MANIFEST_KEY_ID, SAMPLE_REHASH, SAMPLE_SHA256, T0, preparedJob } from '../test/support/backup-job-sample.js';
import { HistoryEventType, OrchestrationDriver, ReplaySchema, testingUtils, type HistoryEvent } from '../dev/durable-history.js';
import { fixed, printTable, ratio } from './lib/report.js';
import { elapsedMs, percentile } from './lib/stats.js';

const SECOND = 1000;
const HOUR = 3600 * SECOND;
const BYTES_PER_SECOND = 15 * 1024 ** 2;
const HISTORY_TARGET = 100;
const replaySamples = 15;
const durations = [
  { label: '1 minute', seconds: 60 },
  { label: '10 hours', seconds: 10 * 3600 },
  { label: '100 hours', seconds: 100 * 3600 },
];
/** Long enough for the 100-hour backup (the orchestrator caps every wait at 6 days). */
const policy = { runTimeoutMinutes: 120 * 60, retentionDays: 7 };

type Orchestrator = Parameters<typeof OrchestrationDriver.start>[0];

export async function runReplayBench(): Promise<void> {
  // 1. Runner side.
  const reports = new Map<string, Report[]>();
  for (const duration of durations) reports.set(duration.label, await throttledReports(duration.seconds));
  printTable(
    'Progress offered every second (runner-side throttle, simulated clock)',
    ['backup', 'offered', 'sent', 'sent / hour'],
    durations.map(({ label, seconds }) => [label, seconds, reports.get(label)!.length, fixed(reports.get(label)!.length / (seconds / 3600), 0)]),
  );

  // 2. Orchestrator side.
  const played: Array<{ label: string; version: string; life: JobLife }> = [];
  for (const { label } of durations) {
    console.log(`Playing a ${label} backup through backupJob2 …`);
    played.push({ label, version: BACKUP_JOB2_ORCHESTRATOR, life: await playJob(backupJob2Orchestrator, BACKUP_JOB2_ORCHESTRATOR, reports.get(label)!, 'endpoint') });
  }
  for (const { label } of durations.slice(0, 2)) {
    console.log(`Playing a ${label} backup through v1 backupJob, every report raised …`);
    played.push({ label, version: `${BACKUP_JOB_ORCHESTRATOR} (v1)`, life: await playJob(backupJobOrchestrator, BACKUP_JOB_ORCHESTRATOR, reports.get(label)!, 'all') });
  }
  printTable(
    'History per job (7-day retention, expired at its end)',
    ['backup', 'orchestrator', 'reports sent', 'raised on the orchestration', 'history at Available', 'history at Expired', `≤ ${HISTORY_TARGET}`],
    played.map(({ label, version, life }) => [
      label,
      version,
      life.reports,
      life.raised,
      life.historyAtAvailable,
      life.history.length,
      version === BACKUP_JOB2_ORCHESTRATOR ? (life.history.length <= HISTORY_TARGET ? 'MET' : 'NOT MET') : '-',
    ]),
  );
  const v2 = played.filter((entry) => entry.version === BACKUP_JOB2_ORCHESTRATOR);
  const worst = Math.max(...v2.map((entry) => entry.life.history.length));
  console.log(
    `Target: history ≤ ${HISTORY_TARGET} events per job whatever the duration (backupJob2): largest ${worst} -> ${worst <= HISTORY_TARGET ? 'MET' : 'NOT MET'}`,
  );

  // 3. Replay time of each final history (all of it played but the last episode).
  printTable(
    `One replay of the job's whole history through durable-functions' replay engine (median of ${replaySamples})`,
    ['backup', 'orchestrator', 'history events', 'replay p50 ms', 'replay max ms', 'vs backupJob2, 1 minute'],
    await (async () => {
      const rows: Array<Array<string | number>> = [];
      let baseline: number | undefined;
      for (const { label, version, life } of played) {
        const orchestrator = version === BACKUP_JOB2_ORCHESTRATOR ? backupJob2Orchestrator : backupJobOrchestrator;
        const times: number[] = [];
        for (let i = 0; i < replaySamples; i++) times.push(await timeReplay(orchestrator, life.history));
        times.sort((a, b) => a - b);
        const p50 = percentile(times, 0.5);
        baseline ??= p50;
        rows.push([label, version, life.history.length, fixed(p50, 2), fixed(times.at(-1), 2), ratio(p50, baseline)]);
      }
      return rows;
    })(),
  );
}

interface Report {
  atMs: number;
  sample: ProgressSample;
}

/** Reports the runner's throttle sends for a backup of `seconds` offering a sample every second. */
async function throttledReports(seconds: number): Promise<Report[]> {
  let nowMs = 0;
  const sent: Report[] = [];
  const throttle = new ProgressThrottle({
    now: () => nowMs,
    send: async (sample) => void sent.push({ atMs: nowMs, sample }),
  });
  for (let second = 1; second <= seconds; second++) {
    nowMs = second * SECOND;
    throttle.offer({ percent: (100 * second) / seconds, bytes: second * BYTES_PER_SECOND });
    await Promise.resolve(); // a report in flight settles before the next second (the API answers in ms)
  }
  await throttle.complete(seconds * BYTES_PER_SECOND);
  return sent;
}

interface JobLife {
  reports: number;
  raised: number;
  historyAtAvailable: number;
  history: HistoryEvent[];
}

/**
 * One job from start to Expired. Runner reports are routed as the endpoint routes them (`endpoint`), or all raised
 * (`all`, what v1 instances received before); activities are answered as soon as they are scheduled.
 */
async function playJob(orchestrator: Orchestrator, name: string, reports: Report[], routing: 'endpoint' | 'all'): Promise<JobLife> {
  const run = await OrchestrationDriver.start(orchestrator, { instanceId: JOB_ID, input: { jobId: JOB_ID }, startAt: T0, name });
  let jobStatus: JobStatus = 'Pending';
  let raised = 0;
  const answer = async () => {
    for (let activity = run.waitingActivities[0]; activity; activity = run.waitingActivities[0]) {
      const result = answers[activity.name]?.();
      if (!result) throw new Error(`no answer for ${activity.name}`);
      if ('status' in result) jobStatus = result.status as JobStatus;
      await run.completeActivity(activity.name, result);
    }
  };
  const answers: Record<string, () => object> = {
    [ACTIVITY.prepareJob]: () => preparedJob(policy),
    [ACTIVITY.enqueueJob]: () => ({ ok: true, status: 'Queued' }),
    [ACTIVITY.markRunning]: () => ({ ok: true, status: 'Running' }),
    [ACTIVITY.recordProgress]: () => ({ ok: true }),
    [ACTIVITY.beginVerification]: () => ({ ok: true, status: 'Verifying' }),
    [ACTIVITY.verifyUpload]: () => ({ ok: true, sizeBytes: 4096, sha256: SAMPLE_SHA256 }),
    [INTEGRITY_ACTIVITY.rehashBlob]: () => SAMPLE_REHASH,
    [INTEGRITY_ACTIVITY.publishManifest]: () => ({ ok: true, manifestKeyId: SAMPLE_MANIFEST_KEY_ID }),
    [ACTIVITY.markAvailable]: () => ({ ok: true, status: 'Available' }),
    [ACTIVITY.issueDownloadLink]: () => ({ ok: true, expiresAt: run.now.toISOString(), reused: false }),
    [ACTIVITY.expireBackup]: () => ({ ok: true, status: 'Expired' }),
  };
  const report = async (event: RunnerEvent, atMs: number) => {
    await run.advanceTo(new Date(T0.getTime() + atMs));
    if (routing === 'endpoint' && !reachesOrchestration(event, jobStatus)) return;
    raised++;
    await run.raiseEvent(ORCHESTRATION_EVENTS.runner, event, new Date(T0.getTime() + atMs));
    await answer();
  };

  await answer();
  await report({ type: 'accepted', eventId: 'accepted-1', runnerId: 'runner-1', attempt: 1 }, SECOND);
  for (const [index, { atMs, sample }] of reports.entries()) {
    await report({ type: 'progress', eventId: `progress-${index}`, percent: sample.percent ?? 0, bytes: sample.bytes }, SECOND + atMs);
  }
  const end = SECOND + (reports.at(-1)?.atMs ?? 0) + SECOND;
  await report(
    { type: 'uploaded', eventId: 'uploaded-1', blobPath: BLOB_PATH, sizeBytes: 4096, sha256: SAMPLE_SHA256, compression: 'none', encrypted: false },
    end,
  );
  if ((jobStatus as JobStatus) !== 'Available') throw new Error(`the job is ${jobStatus} after the upload: ${run.failure ?? JSON.stringify(run.output)}`);
  const historyAtAvailable = run.history.length;
  await run.advanceTo(new Date(run.now.getTime() + policy.retentionDays * 24 * HOUR));
  await answer();
  if (!run.isDone || run.failure) throw new Error(`the job did not expire cleanly: ${run.failure ?? 'still running'}`);
  return { reports: reports.length + 2, raised, historyAtAvailable, history: run.history };
}

/** One replay of `history` (all of it played but the last episode), as the extension asks for a new event. */
async function timeReplay(orchestrator: Orchestrator, history: HistoryEvent[]): Promise<number> {
  const copy = structuredClone(history);
  const lastEpisode = copy.findLastIndex((event) => event.EventType === HistoryEventType.OrchestratorStarted);
  copy.forEach((event, index) => (event.IsPlayed = index < lastEpisode));
  const context = new DummyOrchestrationContext('bench', 'bench-replay', () => undefined);
  const input = new testingUtils.DurableOrchestrationInput(JOB_ID, copy, { jobId: JOB_ID }, '3.00:00:00', '6.00:00:00', 30_000, ReplaySchema.V4);
  const start = process.hrtime.bigint();
  await testingUtils.createOrchestrator(orchestrator)(input, context);
  return elapsedMs(start);
}
