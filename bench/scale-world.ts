/**
 * The scale bench's outside world, in a child process of its own so that its CPU is not the control plane's:
 * the runner agents (one real consumer per server, each on its own Service Bus connection, with the fake engine's
 * small synthetic backups) and the requesters (closed loops over the API, as people at the portal). It tells the
 * parent when each phase starts and ends (the parent snapshots its counters then) and reports what it saw.
 *
 * A job's end is seen by polling the jobs table on a connection of this process's own (one query for every
 * open job every 50 ms), not through the store, so that the parent's statement counts are the control plane's.
 */
import pg from 'pg';
import { startInProcessRunner, type InProcessRunner } from '../dev/in-process-runner.js';
import { fakeEngine } from '../dev/fake-engine.js';

export interface WorldInput {
  connectionString: string;
  topic: string;
  apiBaseUrl: string;
  runners: Array<{ serverId: string; subscription: string; runnerId: string; token: string }>;
  /** The database each runner's server holds (same order as `runners`). */
  databaseIds: string[];
  requesterToken: string;
  backupBytes: number;
  /** Where the jobs table is read to see jobs end (not the store's pool). */
  watchUrl: string;
  phases: WorldPhase[];
  jobTimeoutMs: number;
}

export interface WorldPhase {
  name: string;
  jobs: number;
  /** Requesters at once, each waiting for its job to end before the next. */
  concurrency: number;
}

export interface PhaseOutcome {
  name: string;
  jobIds: string[];
  /** Jobs that ended other than Available, with their status. */
  notAvailable: Array<{ jobId: string; status: string }>;
  /** Time each `POST /api/jobs` took, as the requester saw it (ms). */
  requestMs: number[];
  wallMs: number;
  /** This process's CPU during the phase (ms): runners, requesters and the watcher. */
  cpuMs: number;
}

export interface WorldResult {
  phases: PhaseOutcome[];
  backups: number;
  maxRssKiB: number;
}

/** Messages to the parent; each is answered with `{ kind: 'ack' }`, except the result. */
export type WorldMessage = { kind: 'phase-start' | 'phase-end'; name: string } | { kind: 'result'; result: WorldResult } | { kind: 'error'; error: string };

const terminal = new Set(['Available', 'Failed', 'Cancelled', 'Rejected', 'Expired']);

function tellParent(message: WorldMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    process.once('message', (reply: { kind: string }) => (reply.kind === 'ack' ? resolve() : reject(new Error(`unexpected reply ${reply.kind}`))));
    process.send!(message);
  });
}

/** Resolves each watched job with its final status, polling the jobs table on its own connection. */
class JobWatcher {
  private readonly waiting = new Map<string, (status: string) => void>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(private readonly client: pg.Client) {}

  watch(jobId: string): Promise<string> {
    return new Promise((resolve) => {
      this.waiting.set(jobId, resolve);
      this.timer ??= setInterval(() => void this.poll(), 50);
    });
  }

  private async poll(): Promise<void> {
    if (this.polling || this.waiting.size === 0) return;
    this.polling = true;
    try {
      const { rows } = await this.client.query<{ id: string; status: string }>('select id, status from jobs where id = any($1)', [[...this.waiting.keys()]]);
      for (const row of rows) {
        if (!terminal.has(row.status)) continue;
        this.waiting.get(row.id)?.(row.status);
        this.waiting.delete(row.id);
      }
    } finally {
      this.polling = false;
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}

async function requestJob(input: WorldInput, databaseId: string): Promise<{ jobId: string; ms: number }> {
  const t0 = performance.now();
  const response = await fetch(`${input.apiBaseUrl}/api/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${input.requesterToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ databaseId, options: { compression: 'none' } }),
  });
  const body = (await response.json()) as { id?: string };
  if (response.status !== 202 || !body.id) throw new Error(`POST /api/jobs answered ${response.status}: ${JSON.stringify(body).slice(0, 300)}`);
  return { jobId: body.id, ms: performance.now() - t0 };
}

async function runPhase(input: WorldInput, phase: WorldPhase, watcher: JobWatcher): Promise<PhaseOutcome> {
  await tellParent({ kind: 'phase-start', name: phase.name });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const outcome: PhaseOutcome = { name: phase.name, jobIds: [], notAvailable: [], requestMs: [], wallMs: 0, cpuMs: 0 };
  const databases = input.databaseIds.length;
  // Requester w asks for jobs w, w + c, w + 2c, …; job k is for database k mod n, so with c = n each requester
  // keeps to its own database (and runner) and no job waits behind another.
  const requesters = Array.from({ length: phase.concurrency }, async (_, w) => {
    for (let k = w; k < phase.jobs; k += phase.concurrency) {
      const { jobId, ms } = await requestJob(input, input.databaseIds[k % databases]!);
      outcome.jobIds.push(jobId);
      outcome.requestMs.push(ms);
      const status = await Promise.race([
        watcher.watch(jobId),
        new Promise<string>((resolve) => setTimeout(() => resolve('timed out'), input.jobTimeoutMs).unref()),
      ]);
      if (status !== 'Available') outcome.notAvailable.push({ jobId, status });
    }
  });
  await Promise.all(requesters);
  outcome.wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  outcome.cpuMs = (cpu.user + cpu.system) / 1000;
  await tellParent({ kind: 'phase-end', name: phase.name });
  return outcome;
}

async function main(input: WorldInput): Promise<WorldResult> {
  const engine = fakeEngine({ bytes: input.backupBytes });
  const runners: InProcessRunner[] = input.runners.map((runner) =>
    startInProcessRunner({
      connectionString: input.connectionString,
      topic: input.topic,
      subscription: runner.subscription,
      serverId: runner.serverId,
      apiBaseUrl: input.apiBaseUrl,
      token: async () => runner.token,
      engine,
      runnerId: runner.runnerId,
    }),
  );
  const client = new pg.Client({ connectionString: input.watchUrl });
  await client.connect();
  const watcher = new JobWatcher(client);
  const phases: PhaseOutcome[] = [];
  try {
    for (const phase of input.phases) phases.push(await runPhase(input, phase, watcher));
  } finally {
    watcher.close();
    await client.end();
    await Promise.all(runners.map((runner) => runner.stop().catch(() => undefined)));
  }
  return { phases, backups: engine.backups, maxRssKiB: process.resourceUsage().maxRSS };
}

process.once('message', (message: { input: WorldInput }) => {
  main(message.input).then(
    (result) => process.send!({ kind: 'result', result } satisfies WorldMessage, () => process.exit(0)),
    (error: unknown) => process.send!({ kind: 'error', error: error instanceof Error ? (error.stack ?? error.message) : String(error) } satisfies WorldMessage, () => process.exit(1)),
  );
});
