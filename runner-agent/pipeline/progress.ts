/**
 * Throttles progress reports. Every report becomes an external event on the job's orchestration (which handles
 * a few dozen a second at best, and each one is a replay), so the runner sends few:
 *
 *   - never more often than every 10 s (`minIntervalMs`);
 *   - then when the percentage moved by ≥ 5 points, or 30 s passed (`heartbeatMs`) and bytes moved,
 *     so a backup with no known percentage (pg_dump) still shows bytes moving;
 *   - 100 % is always sent, once, whatever the timing.
 *
 * At most one report is in flight; a value that arrives meanwhile is folded into the next one.
 */
export interface ProgressSample {
  percent: number;
  bytes: number;
}

export interface ProgressThrottleOptions {
  send: (sample: ProgressSample) => Promise<void>;
  minIntervalMs?: number;
  minStepPercent?: number;
  heartbeatMs?: number;
  now?: () => number;
}

export class ProgressThrottle {
  private lastSent: ProgressSample | undefined;
  private lastSentAt = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<void> | undefined;
  private finished = false;
  private readonly minIntervalMs: number;
  private readonly minStepPercent: number;
  private readonly heartbeatMs: number;
  private readonly now: () => number;

  constructor(private readonly options: ProgressThrottleOptions) {
    this.minIntervalMs = options.minIntervalMs ?? 10_000;
    this.minStepPercent = options.minStepPercent ?? 5;
    this.heartbeatMs = options.heartbeatMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  /** Offers a sample; sends it when the rule allows. Never throws (send failures are the sender's to log). */
  offer(sample: ProgressSample): void {
    if (this.finished || this.inFlight || !this.due(sample)) return;
    this.dispatch(sample);
  }

  /** Sends 100 % (waits for a report in flight first). */
  async complete(bytes: number): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.inFlight;
    this.dispatch({ percent: 100, bytes });
    await this.inFlight;
  }

  private due(sample: ProgressSample): boolean {
    const elapsed = this.now() - this.lastSentAt;
    if (elapsed < this.minIntervalMs) return false;
    if (!this.lastSent) return true;
    const step = sample.percent - this.lastSent.percent;
    return step >= this.minStepPercent || (elapsed >= this.heartbeatMs && sample.bytes > this.lastSent.bytes);
  }

  private dispatch(sample: ProgressSample): void {
    const rounded = { percent: Math.min(100, Math.max(0, Math.round(sample.percent * 10) / 10)), bytes: sample.bytes };
    this.lastSent = rounded;
    this.lastSentAt = this.now();
    this.inFlight = this.options
      .send(rounded)
      .catch(() => undefined)
      .finally(() => {
        this.inFlight = undefined;
      });
  }
}
