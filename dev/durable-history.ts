/**
 * Runs an orchestrator through durable-functions' OWN replay engine (`createOrchestrator`,
 * `DurableOrchestrationInput`), step by step, with a history this module writes the way the Durable extension
 * would. Nothing of `context.df` is mocked.
 *
 *   const run = await OrchestrationDriver.start(backupJobOrchestrator, { instanceId, input, startAt });
 *   await run.completeActivity('prepareJob', { ok: true, ... });   // TaskCompleted, replay
 *   await run.raiseEvent('RunnerEvent', { type: 'accepted', ... });  // EventRaised, replay
 *   await run.advanceTo(later);                                     // TimerFired for each due timer, replay
 *
 * Playing the extension's part faithfully is the point. After every episode the action list the library
 * returned is re-enacted the way the extension does (dev/durable-extension.ts, which names the extension and
 * DurableTask.Core sources it follows): task ids are allocated by that re-enactment and compared with the
 * history as DurableTask does, long timers are split the extension's way (3-day steps until less than 3 days
 * remain, Azure Storage backend), a cancelled long timer re-creates only its first interval, retries wait on a
 * back-off timer. What the extension would schedule is what this driver writes into the history. A
 * non-determinism error, an episode the extension would never finish (hang), or a library that counts its tasks
 * differently from the extension (results handed to the wrong tasks) fail the instance and reject the call
 * with a `ReplayDivergenceError`.
 */
import { createRequire } from 'node:module';
import { DummyOrchestrationContext } from 'durable-functions';
import {
  AZURE_STORAGE_LIMITS,
  ActionType,
  HistoryEventType,
  actionLeaves,
  replayLikeTheExtension,
  type OrchestratorAction,
} from './durable-extension.js';

export { HistoryEventType, type OrchestratorAction } from './durable-extension.js';

const require = createRequire(import.meta.url);
// Not in the package's typings; the entry points durable-functions' own tests use.
export const testingUtils = require('durable-functions/lib/src/util/testingUtils') as {
  createOrchestrator: (fn: unknown) => (input: unknown, context: unknown) => Promise<OrchestratorState>;
  DurableOrchestrationInput: new (
    instanceId: string,
    history: HistoryEvent[],
    input: unknown,
    longRunningTimerIntervalDuration?: string,
    maximumShortTimerDuration?: string,
    defaultHttpAsyncRequestSleepTimeMillseconds?: number,
    schemaVersion?: number,
  ) => unknown;
};

/** durable-functions' ReplaySchema. Azure's current extension speaks V3 or later; V1 is the library's default. */
export const ReplaySchema = { V1: 0, V2: 1, V3: 2, V4: 3 } as const;

export interface HistoryEvent {
  EventType: number;
  EventId: number;
  IsPlayed: boolean;
  Timestamp: Date;
  [field: string]: unknown;
}

export interface OrchestratorState {
  isDone: boolean;
  actions: (OrchestratorAction | OrchestratorAction[])[];
  output?: unknown;
  error?: string;
  customStatus?: unknown;
}

const event = (fields: Partial<HistoryEvent> & { EventType: number }, at: Date): HistoryEvent => ({
  EventId: -1,
  IsPlayed: false,
  ...fields,
  Timestamp: at,
});

/** History events as the extension writes them. `Input`/`Result` are JSON text. */
export const historyEvents = {
  orchestratorStarted: (at: Date) => event({ EventType: HistoryEventType.OrchestratorStarted }, at),
  orchestratorCompleted: (at: Date) => event({ EventType: HistoryEventType.OrchestratorCompleted }, at),
  executionStarted: (name: string, input: unknown, at: Date) =>
    event({ EventType: HistoryEventType.ExecutionStarted, Name: name, Input: JSON.stringify(input) }, at),
  taskScheduled: (id: number, name: string, input: unknown, at: Date) =>
    event({ EventType: HistoryEventType.TaskScheduled, EventId: id, Name: name, Input: JSON.stringify(input ?? null) }, at),
  taskCompleted: (scheduledId: number, result: unknown, at: Date) =>
    event({ EventType: HistoryEventType.TaskCompleted, TaskScheduledId: scheduledId, Result: JSON.stringify(result ?? null) }, at),
  taskFailed: (scheduledId: number, reason: string, at: Date) =>
    event({ EventType: HistoryEventType.TaskFailed, TaskScheduledId: scheduledId, Reason: reason, Details: '' }, at),
  timerCreated: (id: number, fireAt: Date, at: Date) => event({ EventType: HistoryEventType.TimerCreated, EventId: id, FireAt: fireAt }, at),
  timerFired: (timerId: number, fireAt: Date, at: Date) =>
    event({ EventType: HistoryEventType.TimerFired, TimerId: timerId, FireAt: fireAt }, at),
  eventRaised: (name: string, payload: unknown, at: Date) =>
    event({ EventType: HistoryEventType.EventRaised, Name: name, Input: JSON.stringify(payload ?? null) }, at),
};


export interface ScheduledActivity {
  id: number;
  name: string;
  /** As the activity receives it: through JSON. */
  input: unknown;
}

export interface ScheduledTimer {
  /** Sequence id of the interval now pending (the timer's own id unless it is a long timer). */
  id: number;
  /** When the pending interval fires. */
  fireAt: Date;
  /** When the timer the orchestrator asked for fires. */
  finalFireAt: Date;
  canceled: boolean;
  /** A retry back-off timer of the extension's, not one the orchestrator created. */
  retry?: true;
}

/** The real extension would fail (or hang) the instance here; the driver fails the instance and the call. */
export class ReplayDivergenceError extends Error {
  override name = 'ReplayDivergenceError';
}

type Orchestrator = (...args: never[]) => unknown;

export interface DriverOptions {
  instanceId: string;
  input: unknown;
  startAt: Date;
  name?: string;
  schemaVersion?: number;
}

/** One orchestration instance, played episode by episode. */
export class OrchestrationDriver {
  readonly history: HistoryEvent[] = [];
  /** Every activity call the orchestrator made, in order (a retry is not a new call). */
  readonly calls: { name: string; input: unknown }[] = [];
  /** Every timer the orchestrator created, in order. */
  readonly timers: ScheduledTimer[] = [];
  /** The orchestrator's logs (written only when not replaying). */
  readonly logs: string[] = [];
  /** Custom status after each episode that changed it. */
  readonly statuses: unknown[] = [];
  state: OrchestratorState | undefined;
  /** The instance failed: the message the extension would record. */
  failure: string | undefined;
  now: Date;

  private readonly timerByLeaf = new Map<number, ScheduledTimer>();
  private readonly calledLeaves = new Set<number>();
  private readonly pendingActivities = new Map<number, ScheduledActivity>();
  private readonly pendingTimers = new Map<number, ScheduledTimer>();
  private readonly schemaVersion: number;

  private constructor(
    private readonly orchestrator: Orchestrator,
    private readonly options: DriverOptions,
  ) {
    this.now = options.startAt;
    this.schemaVersion = options.schemaVersion ?? ReplaySchema.V4;
  }

  static async start(orchestrator: Orchestrator, options: DriverOptions): Promise<OrchestrationDriver> {
    const driver = new OrchestrationDriver(orchestrator, options);
    await driver.episode([historyEvents.executionStarted(options.name ?? 'orchestrator', options.input, options.startAt)], options.startAt);
    return driver;
  }

  get isDone(): boolean {
    return this.state?.isDone === true || this.failure !== undefined;
  }

  get output(): unknown {
    return this.state?.output;
  }

  get customStatus(): unknown {
    return this.state?.customStatus;
  }

  /** Activities scheduled and not yet answered. */
  get waitingActivities(): ScheduledActivity[] {
    return [...this.pendingActivities.values()];
  }

  /** Timers that will fire and that the orchestrator has not cancelled (retry back-off timers included). */
  get liveTimers(): ScheduledTimer[] {
    return [...this.pendingTimers.values()].filter((timer) => !timer.canceled);
  }

  /** The input of the one pending call of `name`. */
  inputOf<T = unknown>(name: string): T {
    return this.pending(name).input as T;
  }

  async completeActivity(name: string, result: unknown): Promise<void> {
    const activity = this.pending(name);
    this.pendingActivities.delete(activity.id);
    await this.episode([historyEvents.taskCompleted(activity.id, JSON.parse(JSON.stringify(result ?? null)), this.now)], this.now);
  }

  /**
   * The activity threw. With RetryOptions the extension waits on a back-off timer and schedules the activity
   * again while attempts remain (after the last one, a timer at once). Unless `waitForRetry` is false, time
   * moves on to that timer (firing whatever else is due by then), as it would in Azure.
   */
  async failActivity(name: string, reason: string, options: { waitForRetry?: boolean } = {}): Promise<void> {
    const activity = this.pending(name);
    this.pendingActivities.delete(activity.id);
    const retryTimersBefore = new Set(this.liveTimers.filter((timer) => timer.retry).map((timer) => timer.id));
    await this.episode([historyEvents.taskFailed(activity.id, reason, this.now)], this.now);
    if (options.waitForRetry === false) return;
    const retry = this.liveTimers.find((timer) => timer.retry && !retryTimersBefore.has(timer.id));
    if (retry) await this.advanceTo(retry.fireAt);
  }

  /** Delivers an external event; false (and nothing happens) once the instance has finished, as in Azure. */
  async raiseEvent(name: string, payload: unknown, at: Date = this.now): Promise<boolean> {
    if (this.isDone) return false;
    await this.episode([historyEvents.eventRaised(name, payload, at)], at);
    return true;
  }

  /**
   * Moves time to `until`, firing every pending timer due by then in fire order, one episode each. Cancelled
   * timers fire too (the extension does not withdraw a timer; the orchestrator must not care). The next interval
   * of a long timer is whatever the extension's replay of that episode schedules.
   */
  async advanceTo(until: Date): Promise<void> {
    for (;;) {
      if (this.isDone) break;
      const due = [...this.pendingTimers.entries()]
        .filter(([, timer]) => timer.fireAt <= until)
        .sort(([idA, a], [idB, b]) => a.fireAt.getTime() - b.fireAt.getTime() || idA - idB)[0];
      if (!due) break;
      const [id, timer] = due;
      this.pendingTimers.delete(id);
      const at = timer.fireAt > this.now ? timer.fireAt : this.now;
      await this.episode([historyEvents.timerFired(id, timer.fireAt, at)], at);
    }
    if (until > this.now) this.now = until;
  }

  /** Fires the next pending timer and delivers an event in the same episode (both reached the instance together). */
  async fireNextTimerWith(name: string, payload: unknown): Promise<void> {
    const next = [...this.pendingTimers.entries()].sort(([idA, a], [idB, b]) => a.fireAt.getTime() - b.fireAt.getTime() || idA - idB)[0];
    if (!next) throw new Error('No timer is pending');
    const [id, timer] = next;
    this.pendingTimers.delete(id);
    const at = timer.fireAt > this.now ? timer.fireAt : this.now;
    await this.episode([historyEvents.timerFired(id, timer.fireAt, at), historyEvents.eventRaised(name, payload, at)], at);
  }

  async advanceBy(ms: number): Promise<void> {
    await this.advanceTo(new Date(this.now.getTime() + ms));
  }

  private pending(name: string): ScheduledActivity {
    const matches = [...this.pendingActivities.values()].filter((activity) => activity.name === name);
    if (matches.length !== 1) {
      const waiting = [...this.pendingActivities.values()].map((activity) => activity.name).join(', ') || 'nothing';
      throw new Error(`Expected one pending call of ${name}; the orchestration waits on: ${waiting} (done: ${this.isDone})`);
    }
    return matches[0]!;
  }

  /** One orchestrator execution: OrchestratorStarted, the new events, replay, then what the extension schedules. */
  private async episode(newEvents: HistoryEvent[], at: Date): Promise<void> {
    if (this.isDone) throw new Error('The orchestration has finished; the extension would drop this.');
    if (at > this.now) this.now = at;
    for (const past of this.history) past.IsPlayed = true;
    this.history.push(historyEvents.orchestratorStarted(this.now), ...newEvents);

    const context = new DummyOrchestrationContext(this.options.name ?? 'orchestrator', `episode-${this.history.length}`, (_level, ...args) =>
      this.logs.push(args.map(String).join(' ')),
    );
    const input = new testingUtils.DurableOrchestrationInput(
      this.options.instanceId,
      this.history,
      this.options.input,
      '3.00:00:00',
      '6.00:00:00',
      30_000,
      this.schemaVersion,
    );
    let state: OrchestratorState;
    try {
      state = await testingUtils.createOrchestrator(this.orchestrator)(input, context);
    } catch (error) {
      this.failure = orchestrationFailureMessage(error);
      return;
    }

    const replay = replayLikeTheExtension(this.history, state.actions, {
      schemaVersion: this.schemaVersion,
      orchestratorDone: state.isDone,
      limits: AZURE_STORAGE_LIMITS,
    });
    const librarySequence = (context.df as unknown as { taskOrchestratorExecutor?: { sequenceNumber?: number } } | undefined)
      ?.taskOrchestratorExecutor?.sequenceNumber;
    const divergence =
      replay.failure ??
      (librarySequence !== undefined && librarySequence !== replay.taskCount
        ? `Task numbering diverged: durable-functions counts ${librarySequence} tasks, the extension ${replay.taskCount}; ` +
          'the library would hand results to the wrong tasks (e.g. it armed the next interval of a cancelled long timer).'
        : undefined);
    if (divergence !== undefined) {
      this.failure = divergence;
      this.state = state;
      throw new ReplayDivergenceError(divergence);
    }

    this.noteTimers(state.actions);
    for (const action of replay.newActions) {
      if (action.kind === 'activity') {
        const input = JSON.parse(JSON.stringify(action.input ?? null)) as unknown;
        this.pendingActivities.set(action.id, { id: action.id, name: action.name, input });
        this.history.push(historyEvents.taskScheduled(action.id, action.name, input, this.now));
      } else {
        const owner = action.leaf === undefined ? undefined : this.timerByLeaf.get(action.leaf);
        const timer: ScheduledTimer = owner ?? { id: action.id, fireAt: action.fireAt, finalFireAt: action.fireAt, canceled: false, retry: true };
        timer.id = action.id;
        timer.fireAt = action.fireAt;
        this.pendingTimers.set(action.id, timer);
        this.history.push(historyEvents.timerCreated(action.id, action.fireAt, this.now));
      }
    }
    this.history.push(historyEvents.orchestratorCompleted(this.now));
    if (JSON.stringify(state.customStatus) !== JSON.stringify(this.state?.customStatus)) this.statuses.push(state.customStatus);
    this.state = state;
  }

  /** Records new activity calls and timers (by their place in the action tree) and which timers are cancelled. */
  private noteTimers(actions: OrchestratorState['actions']): void {
    let leaf = 0;
    for (const action of actionLeaves(actions)) {
      if (action.actionType === ActionType.CreateTimer) {
        let timer = this.timerByLeaf.get(leaf);
        if (!timer) {
          const fireAt = new Date(action.fireAt!);
          timer = { id: -1, fireAt, finalFireAt: fireAt, canceled: false };
          this.timerByLeaf.set(leaf, timer);
          this.timers.push(timer);
        }
        timer.canceled = action.isCanceled === true;
      } else if (
        (action.actionType === ActionType.CallActivity || action.actionType === ActionType.CallActivityWithRetry) &&
        !this.calledLeaves.has(leaf)
      ) {
        this.calledLeaves.add(leaf);
        this.calls.push({ name: action.functionName!, input: JSON.parse(JSON.stringify(action.input ?? null)) as unknown });
      }
      leaf++;
    }
  }
}

/**
 * What the extension records when the orchestrator throws. The library's OrchestrationFailureError carries the
 * orchestrator state as JSON after `$OutOfProcData$:`; its `error` holds the message (the text before the label
 * is only the library's "orchestrator returned" flag).
 */
function orchestrationFailureMessage(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const [head, data] = error.message.split('\n\n$OutOfProcData$:');
  if (data !== undefined) {
    try {
      const state = JSON.parse(data) as { error?: unknown };
      if (typeof state.error === 'string') return state.error;
    } catch {
      // Not the library's format: fall back to the text before the label.
    }
  }
  return head ?? error.message;
}
