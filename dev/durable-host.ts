/**
 * An in-process Durable Functions host for the local sandbox and the full-flow tests (a dev/test fixture,
 * never loaded by the Function App). It plays the part of the Durable extension: keeps each instance's
 * history, replays the REAL orchestrator through durable-functions' own replay engine (`createOrchestrator`,
 * `DurableOrchestrationInput`), runs the REAL activity handlers for the actions it returns, fires timers and
 * delivers raised events.
 *
 * Limits, on purpose: one orchestrator episode per new event (the extension batches); timers longer than
 * the library's maximum short timer (6 days) are recorded but not armed — no sandbox run lives that long —
 * and can be fired with `fireTimers`; activity retries follow RetryOptions with the real back-off delay.
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { InvocationContext } from '@azure/functions';
import { DummyOrchestrationContext } from 'durable-functions';

const require = createRequire(import.meta.url);
// Not in the package's typings; the same entry points durable-functions' own tests use.
const { createOrchestrator, DurableOrchestrationInput } = require('durable-functions/lib/src/util/testingUtils') as {
  createOrchestrator: (fn: unknown) => (input: unknown, context: unknown) => Promise<OrchestratorResult>;
  DurableOrchestrationInput: new (instanceId: string, history: HistoryEvent[], input: unknown) => unknown;
};

const enum EventType {
  ExecutionStarted = 0,
  TaskScheduled = 4,
  TaskCompleted = 5,
  TaskFailed = 6,
  TimerCreated = 10,
  TimerFired = 11,
  OrchestratorStarted = 12,
  OrchestratorCompleted = 13,
  EventRaised = 15,
}

const enum ActionType {
  CallActivity = 0,
  CallActivityWithRetry = 1,
  CreateTimer = 5,
  WaitForExternalEvent = 6,
}

interface HistoryEvent {
  EventType: EventType;
  EventId: number;
  IsPlayed: boolean;
  Timestamp: Date;
  [field: string]: unknown;
}

interface OrchestratorAction {
  actionType: number;
  functionName?: string;
  input?: unknown;
  fireAt?: Date;
  isCanceled?: boolean;
  retryOptions?: { firstRetryIntervalInMilliseconds: number; maxNumberOfAttempts: number; backoffCoefficient?: number };
}

interface OrchestratorResult {
  isDone: boolean;
  actions: OrchestratorAction[][];
  output?: unknown;
  error?: string;
  customStatus?: unknown;
}

export type RuntimeStatus = 'Running' | 'Completed' | 'Failed';

export interface InstanceStatus {
  instanceId: string;
  name: string;
  runtimeStatus: RuntimeStatus;
  customStatus: unknown;
  output: unknown;
  error?: string;
  historyLength: number;
}

type ActivityHandler = (input: unknown, context: InvocationContext) => unknown;
type Orchestrator = (...args: never[]) => unknown;

interface Instance {
  id: string;
  name: string;
  input: unknown;
  history: HistoryEvent[];
  status: InstanceStatus;
  /** Serialises episodes: the extension never runs two episodes of one instance at once. */
  queue: Promise<void>;
  /** Sequence ids already acted upon (scheduled activity or armed timer). */
  handled: Set<number>;
  /** Sequence ids a retried activity used beyond its first (one per retry timer, one per re-run). */
  retryIds: Map<number, number>;
  timers: Map<number, { fireAt: Date; handle?: NodeJS.Timeout }>;
  inFlight: number;
}

export interface DurableHostOptions {
  orchestrators: Record<string, Orchestrator>;
  activities: Record<string, ActivityHandler>;
  now?: () => Date;
  log?: (line: string) => void;
}

const MAX_ARMED_TIMER_MS = 6 * 24 * 60 * 60 * 1000;

export class InProcessDurableHost {
  private readonly instances = new Map<string, Instance>();
  private readonly idleWaiters = new Set<() => void>();
  private readonly now: () => Date;
  private readonly log: (line: string) => void;
  private closed = false;

  constructor(private readonly options: DurableHostOptions) {
    this.now = options.now ?? (() => new Date());
    this.log = options.log ?? (() => undefined);
  }

  /** Starts an instance; false (and nothing changes) when one with this id exists, as the extension does. */
  async startNew(name: string, instanceId: string, input: unknown): Promise<boolean> {
    if (!this.options.orchestrators[name]) throw new Error(`No orchestrator named ${name} is registered`);
    if (this.instances.has(instanceId)) return false;
    const instance: Instance = {
      id: instanceId,
      name,
      input,
      history: [],
      status: { instanceId, name, runtimeStatus: 'Running', customStatus: null, output: undefined, historyLength: 0 },
      queue: Promise.resolve(),
      handled: new Set(),
      retryIds: new Map(),
      timers: new Map(),
      inFlight: 0,
    };
    this.instances.set(instanceId, instance);
    this.enqueue(instance, [{ EventType: EventType.ExecutionStarted, Name: name, Input: JSON.stringify(input) }]);
    return true;
  }

  /** Delivers an external event. Like the extension, an event for an unknown instance is dropped. */
  async raiseEvent(instanceId: string, eventName: string, payload: unknown): Promise<boolean> {
    const instance = this.instances.get(instanceId);
    if (!instance || instance.status.runtimeStatus !== 'Running') return false;
    this.enqueue(instance, [{ EventType: EventType.EventRaised, Name: eventName, Input: JSON.stringify(payload ?? null) }]);
    return true;
  }

  getStatus(instanceId: string): InstanceStatus | undefined {
    const instance = this.instances.get(instanceId);
    return instance ? { ...instance.status, historyLength: instance.history.length } : undefined;
  }

  history(instanceId: string): readonly HistoryEvent[] {
    return this.instances.get(instanceId)?.history ?? [];
  }

  /** Fires every pending, uncancelled timer of the instance due at or before `asOf` (tests move time this way). */
  fireTimers(instanceId: string, asOf: Date): number {
    const instance = this.instances.get(instanceId);
    if (!instance) return 0;
    let fired = 0;
    for (const [timerId, timer] of instance.timers) {
      if (timer.fireAt.getTime() <= asOf.getTime()) {
        this.fire(instance, timerId);
        fired++;
      }
    }
    return fired;
  }

  /** Resolves once no instance has an episode or activity in flight (timers and awaited events may remain). */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.add(resolve));
  }

  close(): void {
    this.closed = true;
    for (const instance of this.instances.values()) {
      for (const timer of instance.timers.values()) if (timer.handle) clearTimeout(timer.handle);
      instance.timers.clear();
    }
  }

  private isIdle(): boolean {
    for (const instance of this.instances.values()) if (instance.inFlight > 0) return false;
    return true;
  }

  private settle(instance: Instance): void {
    instance.inFlight--;
    if (this.isIdle()) {
      for (const resolve of this.idleWaiters) resolve();
      this.idleWaiters.clear();
    }
  }

  /** `beforeEpisode` runs inside the instance's queue, so bookkeeping lands together with its events. */
  private enqueue(instance: Instance, newEvents: Partial<HistoryEvent>[], beforeEpisode?: () => void): void {
    instance.inFlight++;
    instance.queue = instance.queue
      .then(() => {
        beforeEpisode?.();
        return this.runEpisode(instance, newEvents);
      })
      .catch((error: unknown) => {
        instance.status = { ...instance.status, runtimeStatus: 'Failed', error: String(error) };
        this.log(`[durable] ${instance.name} ${instance.id} host error: ${String(error)}`);
      })
      .finally(() => this.settle(instance));
  }

  private async runEpisode(instance: Instance, newEvents: Partial<HistoryEvent>[]): Promise<void> {
    if (this.closed || instance.status.runtimeStatus !== 'Running') return;
    for (const event of instance.history) event.IsPlayed = true;
    const timestamp = this.now();
    instance.history.push(historyEvent({ EventType: EventType.OrchestratorStarted }, timestamp));
    for (const event of newEvents) instance.history.push(historyEvent(event, timestamp));

    const orchestrator = this.options.orchestrators[instance.name]!;
    const context = new DummyOrchestrationContext(instance.name, randomUUID(), (_level: unknown, ...args: unknown[]) =>
      this.log(`[${instance.name}] ${args.map(String).join(' ')}`),
    );
    let result: OrchestratorResult;
    try {
      result = await createOrchestrator(orchestrator)(
        new DurableOrchestrationInput(instance.id, instance.history, instance.input),
        context,
      );
    } catch (error) {
      // The library throws when the orchestrator itself threw; its state rides on the error.
      const state = (error as { state?: OrchestratorResult }).state;
      instance.status = {
        ...instance.status,
        runtimeStatus: 'Failed',
        error: state?.error ?? String(error),
        customStatus: state?.customStatus ?? instance.status.customStatus,
      };
      this.log(`[durable] ${instance.name} ${instance.id} failed: ${instance.status.error}`);
      this.clearTimers(instance);
      return;
    }
    instance.history.push(historyEvent({ EventType: EventType.OrchestratorCompleted }, timestamp));
    instance.status = { ...instance.status, customStatus: result.customStatus ?? instance.status.customStatus };

    if (result.isDone) {
      instance.status = { ...instance.status, runtimeStatus: 'Completed', output: result.output };
      this.clearTimers(instance);
      return;
    }
    if (result.error) {
      instance.status = { ...instance.status, runtimeStatus: 'Failed', error: result.error };
      this.clearTimers(instance);
      return;
    }
    this.dispatch(instance, result.actions.flat());
  }

  /**
   * Actions are returned from the start of the orchestration every episode. Activities and timers take
   * sequence ids in order (external-event waits take none); ids already handled are skipped.
   */
  private dispatch(instance: Instance, actions: OrchestratorAction[]): void {
    let sequenceId = 0;
    for (const action of actions) {
      if (action.actionType === ActionType.WaitForExternalEvent) continue;
      const id = sequenceId;
      sequenceId += 1 + (instance.retryIds.get(id) ?? 0);
      if (action.actionType === ActionType.CreateTimer) {
        if (action.isCanceled) this.cancelTimer(instance, id);
        else if (!instance.handled.has(id)) this.armTimer(instance, id, new Date(action.fireAt!));
        continue;
      }
      if (instance.handled.has(id)) continue;
      if (action.actionType === ActionType.CallActivity || action.actionType === ActionType.CallActivityWithRetry) {
        instance.handled.add(id);
        void this.runActivity(instance, id, action);
      } else {
        throw new Error(`The in-process host does not support action type ${action.actionType}`);
      }
    }
  }

  private async runActivity(instance: Instance, id: number, action: OrchestratorAction): Promise<void> {
    const name = action.functionName!;
    const handler = this.options.activities[name];
    instance.inFlight++;
    try {
      const scheduled: Partial<HistoryEvent>[] = [{ EventType: EventType.TaskScheduled, EventId: id, Name: name, Input: JSON.stringify(action.input ?? null) }];
      const retry = action.actionType === ActionType.CallActivityWithRetry ? action.retryOptions : undefined;
      const maxAttempts = retry?.maxNumberOfAttempts ?? 1;
      let delay = retry?.firstRetryIntervalInMilliseconds ?? 0;
      let taskId = id;
      for (let attempt = 1; ; attempt++) {
        try {
          if (!handler) throw new Error(`No activity named ${name} is registered`);
          const context = new InvocationContext({ functionName: name, invocationId: randomUUID(), logHandler: (_l, ...a) => this.log(`[${name}] ${a.map(String).join(' ')}`) });
          const output = await handler(action.input, context);
          const usedIds = taskId - id;
          this.enqueue(
            instance,
            [...scheduled, { EventType: EventType.TaskCompleted, TaskScheduledId: taskId, Result: JSON.stringify(output ?? null) }],
            () => instance.retryIds.set(id, usedIds),
          );
          return;
        } catch (error) {
          const failure = { EventType: EventType.TaskFailed, TaskScheduledId: taskId, Reason: errorText(error), Details: '' };
          this.log(`[durable] activity ${name} attempt ${attempt}/${maxAttempts} failed: ${errorText(error)}`);
          if (attempt >= maxAttempts) {
            // The library waits on one more retry timer before surfacing the error.
            const usedIds = taskId + 1 - id;
            this.enqueue(
              instance,
              [...scheduled, failure, { EventType: EventType.TimerCreated, EventId: taskId + 1 }, { EventType: EventType.TimerFired, TimerId: taskId + 1 }],
              () => instance.retryIds.set(id, usedIds),
            );
            return;
          }
          const timerId = taskId + 1;
          const nextTaskId = taskId + 2;
          scheduled.push(failure, { EventType: EventType.TimerCreated, EventId: timerId }, { EventType: EventType.TimerFired, TimerId: timerId }, { EventType: EventType.TaskScheduled, EventId: nextTaskId, Name: name });
          await new Promise((resolve) => setTimeout(resolve, delay));
          delay *= retry?.backoffCoefficient ?? 1;
          taskId = nextTaskId;
        }
      }
    } finally {
      this.settle(instance);
    }
  }

  private armTimer(instance: Instance, id: number, fireAt: Date): void {
    instance.handled.add(id);
    const timer: { fireAt: Date; handle?: NodeJS.Timeout } = { fireAt };
    instance.timers.set(id, timer);
    instance.history.push(historyEvent({ EventType: EventType.TimerCreated, EventId: id, FireAt: fireAt }, this.now()));
    const delay = fireAt.getTime() - this.now().getTime();
    if (delay <= MAX_ARMED_TIMER_MS) {
      timer.handle = setTimeout(() => this.fire(instance, id), Math.max(0, delay));
      timer.handle.unref();
    }
  }

  private fire(instance: Instance, id: number): void {
    const timer = instance.timers.get(id);
    if (!timer) return;
    if (timer.handle) clearTimeout(timer.handle);
    instance.timers.delete(id);
    this.enqueue(instance, [{ EventType: EventType.TimerFired, TimerId: id, FireAt: timer.fireAt }]);
  }

  private cancelTimer(instance: Instance, id: number): void {
    const timer = instance.timers.get(id);
    if (timer?.handle) clearTimeout(timer.handle);
    instance.timers.delete(id);
    instance.handled.add(id);
  }

  private clearTimers(instance: Instance): void {
    for (const id of [...instance.timers.keys()]) this.cancelTimer(instance, id);
  }
}

function historyEvent(event: Partial<HistoryEvent>, timestamp: Date): HistoryEvent {
  return { EventId: -1, IsPlayed: false, ...event, Timestamp: timestamp } as HistoryEvent;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
