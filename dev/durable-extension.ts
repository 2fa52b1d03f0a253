/**
 * The Durable extension's side of one orchestrator episode, replayed the way the real one does it, so that
 * dev/durable-history.ts can fail a test where Azure would fail (or hang) the instance.
 *
 * For an out-of-process (JavaScript) orchestrator the extension does not trust the library's task numbering: on
 * every episode it runs DurableTask.Core's executor over the whole history and, in parallel, re-enacts the
 * action list the library returned (OutOfProcOrchestrationShim), allocating task ids itself. Every TaskScheduled
 * or TimerCreated in the history must match the id the re-enactment gave that action, or DurableTask throws a
 * non-determinism error and the instance fails. What is re-enacted here, with the source it follows:
 *
 * - azure-functions-durable-extension, src/WebJobs.Extensions.DurableTask/Listener/OutOfProcOrchestrationShim.cs:
 *   schema V2+ awaits the actions one after the other (ProcessAsyncActionsV2); schema V1 invokes them all at
 *   once (ProcessAsyncActionsV1). A WhenAny/WhenAll re-creates every child it is sent. A CreateTimer action with
 *   `isCanceled` is created and its token cancelled at once; schema < V3 refuses a timer longer than the
 *   provider's maximum (ThrowIfInvalidTimerLengthForStorageProvider).
 * - same repository, ContextImplementations/DurableOrchestrationContext.cs: `CreateTimer<T>` splits a timer longer
 *   than MaximumDelayTime into LongRunningTimerIntervalLength steps until less than one step remains, checks the
 *   cancellation token between steps (a cancelled long timer re-creates only its first interval on replay), and
 *   keeps `IsLongRunningTimer` on the context; `WaitForExternalEvent`/`RaiseEvent` keep one stack of waiters per
 *   event name (the newest waiter gets the event) and buffer events nobody waits for.
 * - same repository, AzureStorageDurabilityProvider.cs: MaximumDelayTime 6 days, LongRunningTimerIntervalLength 3 days.
 * - durabletask, src/DurableTask.Core/TaskOrchestrationContext.cs: `idCounter++` per scheduled task and timer,
 *   cancellation removes the open task, HandleTaskScheduledEvent/HandleTimerCreatedEvent throw
 *   NonDeterministicOrchestrationException on a missing or different action; a TimerFired or TaskCompleted for
 *   no open task is only logged.
 * - durabletask, src/DurableTask.Core/RetryInterceptor.cs: a failed attempt waits on a timer
 *   (first interval × backoff^n, capped by the maximum interval) before the next; the last failed attempt
 *   still creates a "dummy" timer at the current time.
 */

export const ExtensionSchema = { Original: 0, V2: 1, V3: 2 } as const;

export interface ExtensionLimits {
  /** Longest timer created as one timer (DurabilityProvider.MaximumDelayTime). */
  maximumDelayMs: number;
  /** Step of a longer timer (DurabilityProvider.LongRunningTimerIntervalLength). */
  longRunningTimerIntervalMs: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** AzureStorageDurabilityProvider's values. */
export const AZURE_STORAGE_LIMITS: ExtensionLimits = { maximumDelayMs: 6 * DAY_MS, longRunningTimerIntervalMs: 3 * DAY_MS };

/** OutOfProcOrchestrationShim.AsyncActionType. */
export const ActionType = {
  CallActivity: 0,
  CallActivityWithRetry: 1,
  CreateTimer: 5,
  WaitForExternalEvent: 6,
  WhenAny: 11,
  WhenAll: 12,
} as const;

export interface OrchestratorAction {
  actionType: number;
  functionName?: string;
  input?: unknown;
  fireAt?: Date | string;
  isCanceled?: boolean;
  externalEventName?: string;
  retryOptions?: {
    maxNumberOfAttempts: number;
    firstRetryIntervalInMilliseconds: number;
    backoffCoefficient?: number;
    maxRetryIntervalInMilliseconds?: number;
    retryTimeoutInMilliseconds?: number;
  };
  compoundActions?: OrchestratorAction[];
}

export interface ExtensionHistoryEvent {
  EventType: number;
  EventId: number;
  Timestamp: Date;
  [field: string]: unknown;
}

/** What the extension schedules at the end of the episode (history it appends), in id order. */
export type NewAction =
  | { kind: 'activity'; id: number; name: string; input: unknown }
  | {
      kind: 'timer';
      id: number;
      fireAt: Date;
      /** The orchestrator's CreateTimer (its leaf index in the action tree); absent for a retry timer. */
      leaf?: number;
    };

export interface ExtensionReplay {
  newActions: NewAction[];
  /** Task ids the extension has allocated: the library must have counted as many. */
  taskCount: number;
  /** Why Azure would fail (or never finish) this instance; undefined when the episode is sound. */
  failure?: string;
}

/** The orchestrator's actions, depth first: the order the extension invokes them (and each leaf's index). */
export function* actionLeaves(actions: readonly (OrchestratorAction | readonly OrchestratorAction[])[]): Generator<OrchestratorAction> {
  for (const action of actions) {
    if (Array.isArray(action)) yield* actionLeaves(action);
    else if ((action as OrchestratorAction).compoundActions) yield* actionLeaves((action as OrchestratorAction).compoundActions!);
    else yield action as OrchestratorAction;
  }
}

/** DurableTask.Core's EventType values (as the history carries them). */
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

/** A .NET task, reduced to what ordering needs: completion callbacks run inline (DurableTask's scheduler is synchronous). */
class SimTask {
  done = false;
  failed = false;
  private readonly listeners: (() => void)[] = [];

  complete(failed = false): void {
    if (this.done) return;
    this.done = true;
    this.failed = failed;
    for (const listener of this.listeners.splice(0)) listener();
  }

  then(listener: () => void): void {
    if (this.done) listener();
    else this.listeners.push(listener);
  }
}

class Divergence extends Error {}

type Scheduled = NewAction;

/**
 * Replays one episode as the extension would: `history` is everything the instance has (this episode's new
 * events included), `actions` what durable-functions returned for it.
 */
export function replayLikeTheExtension(
  history: readonly ExtensionHistoryEvent[],
  actions: readonly (OrchestratorAction | readonly OrchestratorAction[])[],
  options: { schemaVersion: number; orchestratorDone: boolean; limits?: ExtensionLimits },
): ExtensionReplay {
  const replay = new Replay(options.schemaVersion, options.limits ?? AZURE_STORAGE_LIMITS);
  const topLevel = [...actionLeavesTopLevel(actions)];
  const leafIndex = new Map<OrchestratorAction, number>();
  let index = 0;
  for (const leaf of actionLeaves(topLevel)) leafIndex.set(leaf, index++);
  replay.leafIndex = leafIndex;
  try {
    for (const event of history) replay.process(event, topLevel);
    if (options.schemaVersion >= ExtensionSchema.V2) {
      const waitingOn = replay.shimPosition;
      const last = topLevel.length - 1;
      if (waitingOn < last || (options.orchestratorDone && waitingOn <= last && !replay.shimFinished)) {
        throw new Divergence(
          `The extension's replay is still waiting on action ${waitingOn} (${describe(topLevel[waitingOn])}) while the orchestrator ` +
            `went on to action ${last}: in Azure the instance would hang here (no later action is ever scheduled).`,
        );
      }
    }
  } catch (error) {
    if (error instanceof Divergence) return { newActions: [], taskCount: replay.idCounter, failure: error.message };
    throw error;
  }
  return {
    newActions: [...replay.actionsMap.values()].sort((a, b) => a.id - b.id),
    taskCount: replay.idCounter,
  };
}

/** Schema V2+ sends one list; older payloads nest one list per yield. Either way: the top-level actions in order. */
function* actionLeavesTopLevel(actions: readonly (OrchestratorAction | readonly OrchestratorAction[])[]): Generator<OrchestratorAction> {
  for (const action of actions) {
    if (Array.isArray(action)) yield* actionLeavesTopLevel(action);
    else yield action as OrchestratorAction;
  }
}

function describe(action: OrchestratorAction | undefined): string {
  if (!action) return 'none';
  const name = Object.entries(ActionType).find(([, value]) => value === action.actionType)?.[0] ?? `type ${action.actionType}`;
  return action.functionName ? `${name} ${action.functionName}` : name;
}

class Replay {
  now = new Date(0);
  idCounter = 0;
  /** Actions created in this replay and not yet matched by a history event (DurableTask's orchestratorActionsMap). */
  readonly actionsMap = new Map<number, Scheduled>();
  private readonly openTasks = new Map<number, (failed: boolean) => void>();
  private readonly pendingEvents = new Map<string, SimTask[]>();
  private readonly bufferedEvents = new Map<string, number>();
  /** DurableOrchestrationContext.IsLongRunningTimer: a field of the context, shared by every CreateTimer call. */
  private isLongRunningTimer = false;
  leafIndex = new Map<OrchestratorAction, number>();
  shimPosition = 0;
  shimFinished = false;

  constructor(
    private readonly schemaVersion: number,
    private readonly limits: ExtensionLimits,
  ) {}

  process(event: ExtensionHistoryEvent, topLevel: OrchestratorAction[]): void {
    switch (event.EventType) {
      case HistoryEventType.OrchestratorStarted:
        this.now = new Date(event.Timestamp);
        break;
      case HistoryEventType.ExecutionStarted:
        this.startShim(topLevel);
        break;
      case HistoryEventType.TaskScheduled: {
        const scheduled = this.actionsMap.get(event.EventId);
        if (!scheduled) {
          throw new Divergence(
            `NonDeterministicOrchestrationException: A previous execution of this orchestration scheduled an activity task with sequence ID ` +
              `${event.EventId} and name '${String(event.Name)}', but the current replay execution hasn't (yet?) scheduled this task.`,
          );
        }
        if (scheduled.kind !== 'activity') {
          throw new Divergence(
            `NonDeterministicOrchestrationException: A previous execution of this orchestration scheduled an activity task with sequence number ` +
              `${event.EventId} named '${String(event.Name)}', but the current orchestration replay instead produced a CreateTimerOrchestratorAction action with this sequence number.`,
          );
        }
        if (scheduled.name.toLowerCase() !== String(event.Name).toLowerCase()) {
          throw new Divergence(
            `NonDeterministicOrchestrationException: A previous execution of this orchestration scheduled an activity task with sequence number ` +
              `${event.EventId} named '${String(event.Name)}', but the current orchestration replay instead scheduled an activity task named '${scheduled.name}' with this sequence number.`,
          );
        }
        this.actionsMap.delete(event.EventId);
        break;
      }
      case HistoryEventType.TimerCreated: {
        const scheduled = this.actionsMap.get(event.EventId);
        if (!scheduled) {
          throw new Divergence(
            `NonDeterministicOrchestrationException: A previous execution of this orchestration scheduled a timer task with sequence number ` +
              `${event.EventId} but the current replay execution hasn't (yet?) scheduled this task.`,
          );
        }
        if (scheduled.kind !== 'timer') {
          throw new Divergence(
            `NonDeterministicOrchestrationException: A previous execution of this orchestration scheduled a timer task with sequence number ` +
              `${event.EventId} but the current orchestration replay instead produced a ScheduleTaskOrchestratorAction (activity '${scheduled.name}') with this sequence number.`,
          );
        }
        this.actionsMap.delete(event.EventId);
        break;
      }
      case HistoryEventType.TaskCompleted:
        this.resolve(event.TaskScheduledId as number, false);
        break;
      case HistoryEventType.TaskFailed:
        this.resolve(event.TaskScheduledId as number, true);
        break;
      case HistoryEventType.TimerFired:
        this.resolve(event.TimerId as number, false);
        break;
      case HistoryEventType.EventRaised:
        this.raiseEvent(String(event.Name));
        break;
      default:
        break;
    }
  }

  private resolve(id: number, failed: boolean): void {
    const open = this.openTasks.get(id);
    if (!open) return; // DurableTask logs a duplicate event and goes on.
    this.openTasks.delete(id);
    open(failed);
  }

  private startShim(topLevel: OrchestratorAction[]): void {
    if (this.schemaVersion < ExtensionSchema.V2) {
      // ProcessAsyncActionsV1: every action of the set at once.
      for (const action of topLevel) this.invoke(action);
      this.shimPosition = topLevel.length;
      this.shimFinished = true;
      return;
    }
    // ProcessAsyncActionsV2: invoke, await, next.
    const next = (position: number): void => {
      this.shimPosition = position;
      if (position >= topLevel.length) {
        this.shimFinished = true;
        return;
      }
      this.invoke(topLevel[position]!).then(() => next(position + 1));
    };
    next(0);
  }

  private invoke(action: OrchestratorAction): SimTask {
    switch (action.actionType) {
      case ActionType.CallActivity:
        return this.scheduleTask(action.functionName!, action.input);
      case ActionType.CallActivityWithRetry:
        return this.scheduleWithRetry(action);
      case ActionType.CreateTimer:
        return this.createTimer(action);
      case ActionType.WaitForExternalEvent:
        return this.waitForExternalEvent(action.externalEventName!);
      case ActionType.WhenAny: {
        const any = new SimTask();
        for (const child of action.compoundActions ?? []) this.invoke(child).then(() => any.complete());
        return any;
      }
      case ActionType.WhenAll: {
        const all = new SimTask();
        const children = (action.compoundActions ?? []).map((child) => this.invoke(child));
        let left = children.length;
        if (left === 0) all.complete();
        for (const child of children) child.then(() => --left === 0 && all.complete());
        return all;
      }
      default:
        throw new Error(`dev/durable-extension.ts does not re-enact action type ${action.actionType}; add it before using it.`);
    }
  }

  private scheduleTask(name: string, input: unknown): SimTask {
    const id = this.idCounter++;
    this.actionsMap.set(id, { kind: 'activity', id, name, input });
    const task = new SimTask();
    this.openTasks.set(id, (failed) => task.complete(failed));
    return task;
  }

  private innerTimer(fireAt: Date, leaf?: number): { id: number; task: SimTask; cancel: () => void } {
    const id = this.idCounter++;
    this.actionsMap.set(id, { kind: 'timer', id, fireAt, ...(leaf === undefined ? {} : { leaf }) });
    const task = new SimTask();
    this.openTasks.set(id, (failed) => task.complete(failed));
    const cancel = () => {
      if (task.done) return;
      this.openTasks.delete(id);
      task.complete(true);
    };
    return { id, task, cancel };
  }

  /** RetryInterceptor.Invoke. */
  private scheduleWithRetry(action: OrchestratorAction): SimTask {
    const options = action.retryOptions!;
    const result = new SimTask();
    const firstAttempt = this.now;
    const attempt = (retryCount: number): void => {
      const call = this.scheduleTask(action.functionName!, action.input);
      call.then(() => {
        if (!call.failed) return result.complete();
        if (retryCount + 1 === options.maxNumberOfAttempts) {
          this.innerTimer(this.now).task.then(() => result.complete(true)); // "Dummy timer for back-compat"
          return;
        }
        const delay = this.nextRetryDelay(options, retryCount, firstAttempt);
        if (delay === 0) return result.complete(true);
        this.innerTimer(new Date(this.now.getTime() + delay)).task.then(() => attempt(retryCount + 1));
      });
    };
    if (options.maxNumberOfAttempts > 0) attempt(0);
    else result.complete(true);
    return result;
  }

  private nextRetryDelay(options: NonNullable<OrchestratorAction['retryOptions']>, retryCount: number, firstAttempt: Date): number {
    const timeout = options.retryTimeoutInMilliseconds;
    if (timeout !== undefined && this.now.getTime() >= firstAttempt.getTime() + timeout) return 0;
    const delay = options.firstRetryIntervalInMilliseconds * Math.pow(options.backoffCoefficient ?? 1, retryCount);
    const max = options.maxRetryIntervalInMilliseconds ?? 6 * DAY_MS;
    return delay < max ? delay : max;
  }

  /** OutOfProcOrchestrationShim's CreateTimer case over DurableOrchestrationContext.CreateTimer<T>. */
  private createTimer(action: OrchestratorAction): SimTask {
    const fireAt = new Date(action.fireAt!);
    const leaf = this.leafIndex.get(action);
    const untilFire = fireAt.getTime() - this.now.getTime();
    if (this.schemaVersion < ExtensionSchema.V3 && untilFire > this.limits.maximumDelayMs) {
      throw new Divergence(
        `ArgumentException: The Azure Storage provider supports a maximum of ${this.limits.maximumDelayMs / DAY_MS} days for time-based delays (fireAt)`,
      );
    }
    let intervalFireAt = fireAt;
    if (untilFire > this.limits.maximumDelayMs) {
      this.isLongRunningTimer = true;
      intervalFireAt = new Date(this.now.getTime() + this.limits.longRunningTimerIntervalMs);
    }
    const result = new SimTask();
    let cancelled = false;
    let cancelCurrent: () => void = () => undefined;
    const finish = () => {
      this.isLongRunningTimer = false;
      result.complete();
    };

    if (!this.isLongRunningTimer) {
      const timer = this.innerTimer(fireAt, leaf);
      cancelCurrent = timer.cancel;
      timer.task.then(() => (timer.task.failed ? result.complete(true) : finish()));
    } else {
      const loop = (): void => {
        if (!(this.now < fireAt) || cancelled) return finish();
        const timer = this.innerTimer(intervalFireAt, leaf);
        cancelCurrent = timer.cancel;
        timer.task.then(() => {
          // An awaited cancelled timer throws: the method ends without resetting IsLongRunningTimer.
          if (timer.task.failed) return result.complete(true);
          const remaining = fireAt.getTime() - this.now.getTime();
          if (remaining <= 0) return finish();
          intervalFireAt = new Date(this.now.getTime() + Math.min(remaining, this.limits.longRunningTimerIntervalMs));
          loop();
        });
      };
      loop();
    }
    if (action.isCanceled) {
      cancelled = true;
      cancelCurrent();
    }
    return result;
  }

  private waitForExternalEvent(name: string): SimTask {
    const waiter = new SimTask();
    const stack = this.pendingEvents.get(name) ?? [];
    stack.push(waiter);
    this.pendingEvents.set(name, stack);
    const buffered = this.bufferedEvents.get(name) ?? 0;
    if (buffered > 0) {
      if (buffered === 1) this.bufferedEvents.delete(name);
      else this.bufferedEvents.set(name, buffered - 1);
      this.raiseEvent(name);
    }
    return waiter;
  }

  private raiseEvent(name: string): void {
    const stack = this.pendingEvents.get(name);
    const waiter = stack?.pop();
    if (stack && stack.length === 0) this.pendingEvents.delete(name);
    if (waiter) waiter.complete();
    else this.bufferedEvents.set(name, (this.bufferedEvents.get(name) ?? 0) + 1);
  }
}
