/**
 * An in-process Durable Functions host for the local sandbox and the full-flow tests (a dev/test fixture,
 * never loaded by the Function App). The extension's part — history, task numbering, replay through
 * durable-functions' own engine — is played by the same driver the orchestration tests use
 * (dev/durable-history.ts); this host adds what a running host does around it: it runs the REAL
 * activity handlers for the activities the orchestrator schedules, arms real timers, delivers raised events,
 * and keeps one instance's episodes in order.
 *
 * Its client calls (`startNew`, `raiseEvent`, `getStatus`, `terminate`) answer exactly as durable-functions'
 * DurableClient does against the extension's HTTP API (see functions/durable-client.ts for the sources): a start on
 * an existing id rejects as an HTTP 500, an event for an unknown instance rejects with "No instance with ID '…'
 * found.", an event for an ended one is dropped silently (410), an unknown instance's status rejects with the
 * client's HTTP 404 text; an instance is Pending until its first episode has run, and Terminated once terminated.
 *
 * Timers longer than the library's maximum short timer (6 days) are not armed — no sandbox run lives that
 * long — and can be fired with `fireTimers`.
 */
import { randomUUID } from 'node:crypto';
import azureFunctions from '@azure/functions';
import { OrchestrationDriver } from './durable-history.js';
// A CommonJS package whose classes Node's ESM loader cannot name-import.
const { InvocationContext } = azureFunctions;

export type RuntimeStatus = 'Pending' | 'Running' | 'Completed' | 'Failed' | 'Terminated';

export interface InstanceStatus {
  instanceId: string;
  name: string;
  runtimeStatus: RuntimeStatus;
  customStatus: unknown;
  output: unknown;
  error?: string;
}

type ActivityHandler = (input: unknown, context: InstanceType<typeof InvocationContext>) => unknown;
type Orchestrator = Parameters<typeof OrchestrationDriver.start>[0];

interface Instance {
  id: string;
  name: string;
  driver?: OrchestrationDriver;
  /** Serialises episodes: the extension never runs two episodes of one instance at once. */
  queue: Promise<void>;
  startedActivities: Set<number>;
  armedTimers: Map<number, NodeJS.Timeout>;
  /** Armed retry back-off timers, counted in `busy`. */
  armedRetries: Set<number>;
  /** Episodes queued plus activities running. */
  busy: number;
  hostError?: string;
  /** Set by `terminate`: the reason, which the real client reports as the output. */
  terminated?: string;
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

  /** Starts an instance. Like the real client, an id that exists is refused as an HTTP 500 and nothing changes. */
  async startNew(name: string, options: { instanceId: string; input?: unknown }): Promise<string> {
    const { instanceId, input } = options;
    const orchestrator = this.options.orchestrators[name];
    if (!orchestrator) throw new Error(`No orchestrator named ${name} is registered`);
    if (this.instances.has(instanceId)) {
      const details = { Message: 'An error has occurred.', ExceptionMessage: `An Orchestration instance with the status ${this.statusOf(this.instances.get(instanceId)!).runtimeStatus} already exists.` };
      throw new Error(`The operation failed with an unexpected status code: 500. Details: ${JSON.stringify(details)}`);
    }
    const instance: Instance = { id: instanceId, name, queue: Promise.resolve(), startedActivities: new Set(), armedTimers: new Map(), armedRetries: new Set(), busy: 0 };
    this.instances.set(instanceId, instance);
    this.step(instance, async () => {
      instance.driver = await OrchestrationDriver.start(orchestrator, { instanceId, input, startAt: this.now(), name });
    });
    return instanceId;
  }

  /** Delivers an external event: rejects for an unknown instance (404), drops it silently for an ended one (410). */
  async raiseEvent(instanceId: string, eventName: string, payload: unknown): Promise<void> {
    const instance = this.known(instanceId);
    if (!isLive(this.statusOf(instance).runtimeStatus)) return;
    this.step(instance, async (driver) => {
      await driver.raiseEvent(eventName, payload, this.now());
    });
  }

  /** The instance's status; rejects with the client's 404 text for an unknown instance. */
  async getStatus(instanceId: string, _options?: unknown): Promise<InstanceStatus> {
    const instance = this.instances.get(instanceId);
    if (!instance) {
      throw new Error(
        `DurableClient error: Durable Functions extension replied with HTTP 404 response. This usually means we could not find any data associated with the instanceId provided: ${instanceId}.`,
      );
    }
    return this.statusOf(instance);
  }

  /** Ends a live instance as Terminated (nothing more runs); an ended one is left as it is (410), an unknown one rejects. */
  async terminate(instanceId: string, reason: string): Promise<void> {
    const instance = this.known(instanceId);
    if (!isLive(this.statusOf(instance).runtimeStatus)) return;
    instance.terminated = reason;
    this.disarmTimers(instance);
  }

  /** The status right now, without the client's manners (tests and the sandbox). */
  peekStatus(instanceId: string): InstanceStatus | undefined {
    const instance = this.instances.get(instanceId);
    return instance ? this.statusOf(instance) : undefined;
  }

  history(instanceId: string): readonly { EventType: number }[] {
    return this.instances.get(instanceId)?.driver?.history ?? [];
  }

  /** Moves the instance's clock to `asOf`, firing every timer due by then (tests skip time this way). */
  fireTimers(instanceId: string, asOf: Date): void {
    const instance = this.instances.get(instanceId);
    if (instance && instance.terminated === undefined) this.step(instance, (driver) => driver.advanceTo(asOf));
  }

  /** Resolves once no instance has an episode or activity in flight (timers and awaited events may remain). */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.add(resolve));
  }

  close(): void {
    this.closed = true;
    for (const instance of this.instances.values()) this.disarmTimers(instance);
  }

  private known(instanceId: string): Instance {
    const instance = this.instances.get(instanceId);
    if (!instance) throw new Error(`No instance with ID '${instanceId}' found.`);
    return instance;
  }

  private statusOf(instance: Instance): InstanceStatus {
    const driver = instance.driver;
    const failure = instance.hostError ?? driver?.failure;
    const runtimeStatus: RuntimeStatus =
      instance.terminated !== undefined
        ? 'Terminated'
        : failure !== undefined
          ? 'Failed'
          : driver?.isDone
            ? 'Completed'
            : driver
              ? 'Running'
              : 'Pending';
    return {
      instanceId: instance.id,
      name: instance.name,
      runtimeStatus,
      customStatus: driver?.customStatus ?? null,
      output: instance.terminated ?? driver?.output,
      ...(failure !== undefined && instance.terminated === undefined ? { error: failure } : {}),
    };
  }

  /**
   * Queues one episode. The orchestration clock first moves to the real time (firing timers due by now, as
   * they would have fired), then the step runs, then the host acts on what the orchestrator now waits for.
   */
  private step(instance: Instance, action: (driver: OrchestrationDriver) => Promise<unknown>): void {
    instance.busy++;
    instance.queue = instance.queue
      .then(async () => {
        if (this.closed || instance.terminated !== undefined) return;
        if (instance.driver && !instance.driver.isDone) await instance.driver.advanceTo(this.now());
        if (instance.driver?.isDone) return;
        await action(instance.driver as OrchestrationDriver);
        this.pump(instance);
      })
      .catch((error: unknown) => {
        instance.hostError = `host error: ${errorText(error)}`;
        this.log(`[durable] ${instance.name} ${instance.id} ${instance.hostError}`);
      })
      .finally(() => this.settle(instance));
  }

  private pump(instance: Instance): void {
    const driver = instance.driver!;
    if (driver.isDone) {
      this.disarmTimers(instance);
      if (driver.failure) this.log(`[durable] ${instance.name} ${instance.id} failed: ${driver.failure}`);
      return;
    }
    for (const activity of driver.waitingActivities) {
      if (instance.startedActivities.has(activity.id)) continue;
      instance.startedActivities.add(activity.id);
      void this.runActivity(instance, activity.name, activity.input);
    }
    const live = new Map(driver.liveTimers.map((timer) => [timer.id, timer]));
    for (const [id, handle] of instance.armedTimers) {
      if (!live.has(id)) {
        clearTimeout(handle);
        instance.armedTimers.delete(id);
        if (instance.armedRetries.delete(id)) this.settle(instance);
      }
    }
    for (const timer of live.values()) {
      if (instance.armedTimers.has(timer.id)) continue;
      const delay = timer.fireAt.getTime() - this.now().getTime();
      if (delay > MAX_ARMED_TIMER_MS) continue;
      // A retry back-off is work in flight (the activity runs again when it fires): whenIdle waits for it.
      if (timer.retry) {
        instance.busy++;
        instance.armedRetries.add(timer.id);
      }
      const handle = setTimeout(() => {
        this.step(instance, (d) => d.advanceTo(timer.fireAt));
        if (instance.armedRetries.delete(timer.id)) this.settle(instance);
      }, Math.max(0, delay));
      handle.unref();
      instance.armedTimers.set(timer.id, handle);
    }
  }

  private async runActivity(instance: Instance, name: string, input: unknown): Promise<void> {
    instance.busy++;
    try {
      const handler = this.options.activities[name];
      if (!handler) throw new Error(`No activity named ${name} is registered`);
      const context = new InvocationContext({
        functionName: name,
        invocationId: randomUUID(),
        logHandler: (_level, ...args) => this.log(`[${name}] ${args.map(String).join(' ')}`),
      });
      const output = await handler(input, context);
      this.step(instance, (driver) => driver.completeActivity(name, output));
    } catch (error) {
      this.log(`[durable] activity ${name} failed: ${errorText(error)}`);
      this.step(instance, (driver) => driver.failActivity(name, errorText(error), { waitForRetry: false }));
    } finally {
      this.settle(instance);
    }
  }

  private disarmTimers(instance: Instance): void {
    for (const handle of instance.armedTimers.values()) clearTimeout(handle);
    instance.armedTimers.clear();
    for (const id of [...instance.armedRetries]) {
      instance.armedRetries.delete(id);
      this.settle(instance);
    }
  }

  private isIdle(): boolean {
    for (const instance of this.instances.values()) if (instance.busy > 0) return false;
    return true;
  }

  private settle(instance: Instance): void {
    instance.busy--;
    if (!this.isIdle()) return;
    for (const resolve of this.idleWaiters) resolve();
    this.idleWaiters.clear();
  }
}

const isLive = (status: RuntimeStatus): boolean => status === 'Pending' || status === 'Running';

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
