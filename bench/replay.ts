/**
 * Orchestration replay. Every new event makes the Durable extension replay the job's whole history through the
 * orchestrator, so the history's length is the cost that grows with a long backup. Measured here:
 *
 * 1. Runner side: a 10-hour backup offers progress every second to the real ProgressThrottle
 *    (runner-agent/pipeline/progress.ts) on a simulated clock; how many reports would be sent.
 * 2. Orchestrator side: those reports, at their times, raised on the real `backupJob` orchestrator played by
 *    dev/durable-history.ts (durable-functions' own replay engine): history events and recordProgress
 *    activities scheduled. Also a runner that ignores the throttle (a report every second for 10 minutes), to see
 *    the orchestrator's own throttle on the job row alone.
 * 3. Replay time of the job's history after 10, 100 and 1000 progress events: one replay of the whole history
 *    through `createOrchestrator` (what the extension asks for on each new event), median of several.
 */
import { DummyOrchestrationContext } from 'durable-functions';
import { ACTIVITY } from '../orchestrations/backupJob.activities.js';
import { BACKUP_JOB_ORCHESTRATOR, PROGRESS_RECORD_INTERVAL_MS, backupJobOrchestrator } from '../orchestrations/backupJob.js';
import { ProgressThrottle, type ProgressSample } from '../runner-agent/pipeline/progress.js';
import { ORCHESTRATION_EVENTS, type RunnerEvent } from '../shared/contracts/runner.js';
import { JOB_ID, T0, preparedJob } from '../test/support/backup-job-sample.js';
import { HistoryEventType, OrchestrationDriver, ReplaySchema, testingUtils, type HistoryEvent } from '../dev/durable-history.js';
import { fixed, printTable, ratio } from './lib/report.js';
import { elapsedMs, percentile } from './lib/stats.js';


const SECOND = 1000;
const BACKUP_SECONDS = 10 * 60 * 60;
const BACKUP_BYTES = 500 * 1024 ** 3;
const milestones = [10, 100, 1000];
const replaySamples = 15;

export async function runReplayBench(): Promise<void> {
  // 1. Runner side.
  const knownPercent = await throttledReports({ percentKnown: true });
  const unknownPercent = await throttledReports({ percentKnown: false });
  printTable(
    '10-hour backup, progress offered every second (runner-side throttle, simulated clock)',
    ['engine progress', 'offered', 'sent', 'sent / hour', 'reduction'],
    [
      ['percent known (BACKUP … STATS)', BACKUP_SECONDS, knownPercent.length, fixed(knownPercent.length / 10, 0), ratio(BACKUP_SECONDS, knownPercent.length)],
      ['bytes only (pg_dump)', BACKUP_SECONDS, unknownPercent.length, fixed(unknownPercent.length / 10, 0), ratio(BACKUP_SECONDS, unknownPercent.length)],
    ],
  );

  // 2. Orchestrator side, and 3. the histories at the milestones for the replay timings.
  console.log('Playing the throttled reports through the orchestrator …');
  const throttled = await playProgress(knownPercent, milestones);
  console.log('Playing an unthrottled runner (a report every second for 10 minutes) …');
  const unthrottled = await playProgress(
    Array.from({ length: 600 }, (_, i) => ({ atMs: (i + 1) * SECOND, sample: { percent: (i + 1) / 6, bytes: (i + 1) * 1_000_000 } })),
    [],
  );
  printTable(
    `Orchestrator side (the job row gets progress at most every ${PROGRESS_RECORD_INTERVAL_MS / 1000} s; the custom status gets every report)`,
    ['run', 'progress events raised', 'recordProgress scheduled', 'history events', 'history events / progress event'],
    [
      [
        '10-hour backup, throttled runner',
        throttled.progressEvents,
        throttled.recordProgressCalls,
        throttled.historyLength,
        fixed(throttled.historyLength / throttled.progressEvents, 1),
      ],
      [
        '10 minutes, unthrottled runner (1/s)',
        unthrottled.progressEvents,
        unthrottled.recordProgressCalls,
        unthrottled.historyLength,
        fixed(unthrottled.historyLength / unthrottled.progressEvents, 1),
      ],
    ],
  );
  const perEvent = unthrottled.historyLength / unthrottled.progressEvents;
  console.log(
    `Without the runner's throttle a 10-hour backup would raise ${BACKUP_SECONDS} progress events: about ` +
      `${fixed((BACKUP_SECONDS * perEvent) / 1000, 0)}k history events at the unthrottled rate measured above, ` +
      `vs ${throttled.historyLength} with it.`,
  );

  // 3. Replay time against history length.
  const rows: Array<Played['snapshots'][number] & { p50: number; max: number }> = [];
  for (const snapshot of throttled.snapshots) {
    const times = [];
    for (let i = 0; i < replaySamples; i++) times.push(await timeReplay(snapshot.history));
    times.sort((a, b) => a - b);
    rows.push({ ...snapshot, p50: percentile(times, 0.5), max: times.at(-1)! });
  }
  printTable(
    `Replay of the whole history through durable-functions' replay engine (median of ${replaySamples})`,
    ['progress events', 'history events', 'replay p50 ms', 'replay max ms', 'µs per history event', 'vs 10 events'],
    rows.map((row) => [
      row.progressEvents,
      row.history.length,
      fixed(row.p50, 2),
      fixed(row.max, 2),
      fixed((row.p50 * 1000) / row.history.length, 1),
      ratio(row.p50, rows[0]!.p50),
    ]),
  );
  const full = throttled.snapshots.at(-1)!;
  console.log(
    `A replay costs about ${fixed((rows.at(-1)!.p50 * 1000) / full.history.length, 1)} µs per history event here; every one of the ` +
      `${throttled.progressEvents} reports of a throttled 10-hour backup replays the history as it stands, ` +
      `so the whole backup costs about ${fixed(sumOfReplaysMs(rows.at(-1)!.p50 / full.history.length, throttled.historyLength, throttled.progressEvents) / 1000, 1)} s of orchestrator replay in total.`,
  );
}

/** Reports the runner's throttle would send for a 10-hour backup offering a sample every second. */
async function throttledReports({ percentKnown }: { percentKnown: boolean }): Promise<Array<{ atMs: number; sample: ProgressSample }>> {
  let nowMs = 0;
  const sent: Array<{ atMs: number; sample: ProgressSample }> = [];
  const throttle = new ProgressThrottle({
    now: () => nowMs,
    send: async (sample) => void sent.push({ atMs: nowMs, sample }),
  });
  for (let second = 1; second <= BACKUP_SECONDS; second++) {
    nowMs = second * SECOND;
    const bytes = Math.round((BACKUP_BYTES * second) / BACKUP_SECONDS);
    throttle.offer({ percent: percentKnown ? (100 * second) / BACKUP_SECONDS : 0, bytes });
    await Promise.resolve(); // a report in flight settles before the next second (the API answers in ms)
  }
  await throttle.complete(BACKUP_BYTES);
  return sent;
}

interface Played {
  progressEvents: number;
  recordProgressCalls: number;
  historyLength: number;
  snapshots: Array<{ progressEvents: number; history: HistoryEvent[] }>;
}

/** A running job, then each report raised at its time; recordProgress answered as soon as it is scheduled. */
async function playProgress(reports: Array<{ atMs: number; sample: ProgressSample }>, snapshotAt: number[]): Promise<Played> {
  const run = await OrchestrationDriver.start(backupJobOrchestrator, {
    instanceId: JOB_ID,
    input: { jobId: JOB_ID },
    startAt: T0,
    name: BACKUP_JOB_ORCHESTRATOR,
  });
  await run.completeActivity(ACTIVITY.prepareJob, preparedJob());
  await run.completeActivity(ACTIVITY.enqueueJob, { ok: true, status: 'Queued' });
  await raise(run, { type: 'accepted', eventId: 'accepted-1', runnerId: 'runner-1', attempt: 1 }, T0);
  await run.completeActivity(ACTIVITY.markRunning, { ok: true, status: 'Running' });

  const snapshots: Played['snapshots'] = [];
  let raised = 0;
  for (const { atMs, sample } of reports) {
    await raise(run, { type: 'progress', eventId: `progress-${raised}`, percent: sample.percent, bytes: sample.bytes }, new Date(T0.getTime() + atMs));
    raised++;
    if (run.waitingActivities.some((activity) => activity.name === ACTIVITY.recordProgress)) {
      await run.completeActivity(ACTIVITY.recordProgress, { ok: true });
    }
    if (snapshotAt.includes(raised)) snapshots.push({ progressEvents: raised, history: structuredClone(run.history) });
  }
  if (run.isDone) throw new Error(`the orchestration ended during the progress reports: ${run.failure ?? JSON.stringify(run.output)}`);
  return {
    progressEvents: raised,
    recordProgressCalls: run.calls.filter((call) => call.name === ACTIVITY.recordProgress).length,
    historyLength: run.history.length,
    snapshots,
  };
}

function raise(run: OrchestrationDriver, event: RunnerEvent, at: Date): Promise<boolean> {
  return run.raiseEvent(ORCHESTRATION_EVENTS.runner, event, at);
}

/** One replay of `history` (all of it played but the last episode), as the extension asks for a new event. */
async function timeReplay(history: HistoryEvent[]): Promise<number> {
  const copy = structuredClone(history);
  const lastEpisode = copy.findLastIndex((event) => event.EventType === HistoryEventType.OrchestratorStarted);
  copy.forEach((event, index) => (event.IsPlayed = index < lastEpisode));
  const context = new DummyOrchestrationContext(BACKUP_JOB_ORCHESTRATOR, 'bench-replay', () => undefined);
  const input = new testingUtils.DurableOrchestrationInput(JOB_ID, copy, { jobId: JOB_ID }, '3.00:00:00', '6.00:00:00', 30_000, ReplaySchema.V4);
  const start = process.hrtime.bigint();
  const state = await testingUtils.createOrchestrator(backupJobOrchestrator)(input, context);
  const ms = elapsedMs(start);
  if (state.isDone) throw new Error('the replayed orchestration finished: the history is not the one expected');
  return ms;
}

/** Total replay time when each of `events` evenly spaced events replays the history grown so far (linear cost). */
function sumOfReplaysMs(msPerHistoryEvent: number, finalHistoryLength: number, events: number): number {
  // History grows about linearly with the events: the i-th replay sees ~ i/events of the final history.
  return msPerHistoryEvent * finalHistoryLength * ((events + 1) / 2);
}

