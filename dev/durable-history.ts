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
 * Playing the extension's part faithfully is the point, so the driver numbers tasks as the extension does: every
 * activity call and timer the orchestrator's actions contain gets the next sequence id, counted through every
 * `Task.any`/`Task.all` child, even one sent before (the legacy out-of-process protocol has no task ids; the
 * extension re-creates each child it is sent). Retries take ids for their timer and re-run; timers longer than the
 * library's maximum short timer run as intervals (replay schema V3+). After every episode the driver compares its
 * count with the library's own: a mismatch means the real extension would hand results to the wrong tasks.
 */
import { createRequire } from 'node:module';
import { DummyOrchestrationContext } from 'durable-functions';

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

export const HistoryEventType = {
  ExecutionStarted: 0,
  TaskScheduled: 4,
  TaskCompleted: 5,
  TaskFailed: 6,
  TimerCreated: 10,
  TimerFired: 11,
  OrchestratorStarted: 12,
  OrchestratorCompleted: 13,
  EventRaised: 15,
} as const;

/** durable-functions' ReplaySchema. Azure's current extension speaks V3 or later; V1 is the library's default. */
export const ReplaySchema = { V1: 0, V2: 1, V3: 2, V4: 3 } as const;

const ActionType = { CallActivity: 0, CallActivityWithRetry: 1, CreateTimer: 5 } as const;

export interface HistoryEvent {
  EventType: number;
  EventId: number;
  IsPlayed: boolean;
  Timestamp: Date;
  [field: string]: unknown;
}

export interface OrchestratorAction {
  actionType: number;
  functionName?: string;
  input?: unknown;
  fireAt?: Date;
  isCanceled?: boolean;
  externalEventName?: string;
  retryOptions?: { maxNumberOfAttempts: number; firstRetryIntervalInMilliseconds: number };
  compoundActions?: OrchestratorAction[];
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

/** The extension's defaults for Azure Storage, as it passes them to the library. */
const LONG_TIMER_INTERVAL_MS = 3 * 24 * 60 * 60 * 1000;
const MAX_SHORT_TIMER_MS = 6 * 24 * 60 * 60 * 1000;

export interface ScheduledActivity {
  id: number;
  name: string;
  /** As the activity receives it: through JSON. */
  input: unknown;
  maxAttempts: number;
  attempt: number;
}

export interface ScheduledTimer {
  /** Sequence id of the interval now pending (the timer's own id unless it is a long timer). */
  id: number;
  /** When the pending interval fires. */
  fireAt: Date;
  /** When the timer the orchestrator asked for fires. */
  finalFireAt: Date;
  canceled: boolean;
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
  /** The orchestrator threw: the message the extension would record. */
  failure: string | undefined;
  now: Date;

  private nextId = 0;
  private actionsSeen = 0;
  private readonly timerByAction = new Map<number, ScheduledTimer>();
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

  /** Timers that will fire and that the orchestrator has not cancelled. */
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
   * The activity threw. With RetryOptions the library waits on a retry timer (its own sequence id) and, while
   * attempts remain, schedules the activity again (another id); the retry timer fires at once here.
   */
  async failActivity(name: string, reason: string): Promise<void> {
    const activity = this.pending(name);
    this.pendingActivities.delete(activity.id);
    const at = this.now;
    const events = [historyEvents.taskFailed(activity.id, reason, at)];
    if (activity.maxAttempts > 1) {
      const timerId = this.nextId++;
      events.push(historyEvents.timerCreated(timerId, at, at), historyEvents.timerFired(timerId, at, at));
      if (activity.attempt < activity.maxAttempts) {
        const id = this.nextId++;
        events.push(historyEvents.taskScheduled(id, name, activity.input, at));
        this.pendingActivities.set(id, { ...activity, id, attempt: activity.attempt + 1 });
      }
    }
    await this.episode(events, at);
  }

  /** Delivers an external event; false (and nothing happens) once the instance has finished, as in Azure. */
  async raiseEvent(name: string, payload: unknown, at: Date = this.now): Promise<boolean> {
    if (this.isDone) return false;
    await this.episode([historyEvents.eventRaised(name, payload, at)], at);
    return true;
  }

  /**
   * Moves time to `until`, firing every pending timer due by then in fire order, one episode each. Cancelled
   * timers fire too (the extension delivers them; the orchestrator must not care). A long timer's interval that
   * fires arms the next interval, as the extension does, unless the timer was cancelled.
   */
  async advanceTo(until: Date): Promise<void> {
    for (;;) {
      if (this.isDone) break;
      const due = [...this.pendingTimers.values()]
        .filter((timer) => timer.fireAt <= until)
        .sort((a, b) => a.fireAt.getTime() - b.fireAt.getTime() || a.id - b.id)[0];
      if (!due) break;
      this.pendingTimers.delete(due.id);
      const at = due.fireAt > this.now ? due.fireAt : this.now;
      const events = [historyEvents.timerFired(due.id, due.fireAt, at)];
      if (due.finalFireAt > due.fireAt && !due.canceled) {
        due.id = this.nextId++;
        due.fireAt = nextInterval(at, due.finalFireAt);
        this.pendingTimers.set(due.id, due);
        events.push(historyEvents.timerCreated(due.id, due.fireAt, at));
      }
      await this.episode(events, at);
    }
    if (until > this.now) this.now = until;
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

  /** One orchestrator execution: OrchestratorStarted, the new events, replay, then the new actions scheduled. */
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
    this.schedule(state.actions);
    this.checkNumbering(context);
    this.history.push(historyEvents.orchestratorCompleted(this.now));
    if (JSON.stringify(state.customStatus) !== JSON.stringify(this.state?.customStatus)) this.statuses.push(state.customStatus);
    this.state = state;
  }

  /** Schedules the actions not seen before and notes which timers the orchestrator has cancelled since. */
  private schedule(actions: OrchestratorState['actions']): void {
    let index = 0;
    for (const action of leaves(actions)) {
      if (action.actionType !== ActionType.CallActivity && action.actionType !== ActionType.CallActivityWithRetry && action.actionType !== ActionType.CreateTimer) {
        continue;
      }
      const seen = index < this.actionsSeen;
      if (action.actionType === ActionType.CreateTimer) {
        if (seen) this.timerByAction.get(index)!.canceled = action.isCanceled === true;
        else this.createTimer(index, action);
      } else if (!seen) {
        const id = this.nextId++;
        const input = JSON.parse(JSON.stringify(action.input ?? null)) as unknown;
        const maxAttempts = action.actionType === ActionType.CallActivityWithRetry ? (action.retryOptions?.maxNumberOfAttempts ?? 1) : 1;
        this.pendingActivities.set(id, { id, name: action.functionName!, input, maxAttempts, attempt: 1 });
        this.calls.push({ name: action.functionName!, input });
        this.history.push(historyEvents.taskScheduled(id, action.functionName!, input, this.now));
      }
      index++;
    }
    this.actionsSeen = index;
  }

  private createTimer(index: number, action: OrchestratorAction): void {
    const finalFireAt = new Date(action.fireAt!);
    const isLong = this.schemaVersion >= ReplaySchema.V3 && finalFireAt.getTime() - this.now.getTime() > MAX_SHORT_TIMER_MS;
    const timer: ScheduledTimer = {
      id: this.nextId++,
      fireAt: isLong ? nextInterval(this.now, finalFireAt) : finalFireAt,
      finalFireAt,
      canceled: action.isCanceled === true,
    };
    this.timerByAction.set(index, timer);
    this.timers.push(timer);
    this.pendingTimers.set(timer.id, timer);
    this.history.push(historyEvents.timerCreated(timer.id, timer.fireAt, this.now));
  }

  private checkNumbering(context: DummyOrchestrationContext): void {
    const executor = (context.df as unknown as { taskOrchestratorExecutor?: { sequenceNumber?: number } } | undefined)?.taskOrchestratorExecutor;
    const librarySequence = executor?.sequenceNumber;
    if (librarySequence !== undefined && librarySequence !== this.nextId) {
      throw new Error(
        `Task numbering diverged: durable-functions counts ${librarySequence} tasks, the extension would count ${this.nextId}. ` +
          'A task sent twice (e.g. one timer in two Task.any calls) or a cancelled long timer splitting again would do this.',
      );
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

function nextInterval(from: Date, finalFireAt: Date): Date {
  return finalFireAt.getTime() - from.getTime() > MAX_SHORT_TIMER_MS ? new Date(from.getTime() + LONG_TIMER_INTERVAL_MS) : finalFireAt;
}

/** Actions in the order the extension performs them: nested arrays (schema V1) and compound children flattened. */
function* leaves(actions: readonly (OrchestratorAction | readonly OrchestratorAction[])[]): Generator<OrchestratorAction> {
  for (const action of actions) {
    if (Array.isArray(action)) yield* leaves(action);
    else if ((action as OrchestratorAction).compoundActions) yield* leaves((action as OrchestratorAction).compoundActions!);
    else yield action as OrchestratorAction;
  }
}
