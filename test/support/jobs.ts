/** Waiting on a job in the store, for tests that drive the whole stack. */
import type { JobRecord, Store } from '../../shared/db/store.js';

/** Polls until `done(job)`; the error names what was awaited and where the job is instead. */
export async function waitForJob(store: Store, jobId: string, done: (job: JobRecord) => boolean, what: string, timeoutMs = 60_000): Promise<JobRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await store.getJob(jobId);
    if (job && done(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${jobId} did not become ${what}; it is ${job?.status} (${job?.errorCode ?? ''} ${job?.errorMessage ?? ''})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
