import * as df from 'durable-functions';
import type { OrchestrationContext } from 'durable-functions';
import { afterEach, describe, expect, it } from 'vitest';
import { InProcessDurableHost } from '../../dev/durable-host.js';

// A small orchestrator exercising what the backup orchestration uses: activities (with retry), an external
// event raced against a timer, cancelling the losing timer, custom status.
function* approval(context: OrchestrationContext): Generator<df.Task, unknown, any> {
  const input = context.df.getInput<{ deadlineMs: number }>();
  const first = yield context.df.callActivity('double', 21);
  context.df.setCustomStatus({ stage: 'waiting', first });
  const deadline = new Date(context.df.currentUtcDateTime.getTime() + input.deadlineMs);
  const timer = context.df.createTimer(deadline);
  const approved = context.df.waitForExternalEvent('Approve');
  const winner = yield context.df.Task.any([approved, timer]);
  if (winner === timer) return { first, outcome: 'timed out' };
  timer.cancel();
  const retry = new df.RetryOptions(10, 3);
  const flaky = yield context.df.callActivityWithRetry('flaky', retry, approved.result);
  return { first, outcome: 'approved', flaky };
}

let failuresLeft = 0;
const activities = {
  double: (n: unknown) => (n as number) * 2,
  flaky: (who: unknown) => {
    if (failuresLeft-- > 0) throw new Error('transient');
    return `ok:${String((who as { by: string }).by)}`;
  },
};

describe('InProcessDurableHost (the sandbox and full-flow tests run the real orchestrator through it)', () => {
  let host: InProcessDurableHost;
  afterEach(() => host.close());

  it('runs activities, delivers an event that wins the race and completes with the timer cancelled', async () => {
    failuresLeft = 2;
    host = new InProcessDurableHost({ orchestrators: { approval }, activities });
    expect(await host.startNew('approval', { instanceId: 'i-1', input: { deadlineMs: 60_000 } })).toBe('i-1');
    await host.whenIdle();
    expect(await host.getStatus('i-1')).toMatchObject({ runtimeStatus: 'Running', customStatus: { stage: 'waiting', first: 42 } });

    await host.raiseEvent('i-1', 'Approve', { by: 'alice' });
    await host.whenIdle();
    expect(await host.getStatus('i-1')).toMatchObject({
      runtimeStatus: 'Completed',
      output: { first: 42, outcome: 'approved', flaky: 'ok:alice' },
    });
    // Two failed attempts, then success: the retry bookkeeping must line up with the library's own.
    const failed = host.history('i-1').filter((e) => e.EventType === 6);
    expect(failed).toHaveLength(2);
  });

  it('surfaces an activity failure once the retries are spent', async () => {
    failuresLeft = 5;
    host = new InProcessDurableHost({ orchestrators: { approval }, activities });
    await host.startNew('approval', { instanceId: 'i-2', input: { deadlineMs: 60_000 } });
    await host.whenIdle();
    await host.raiseEvent('i-2', 'Approve', { by: 'bob' });
    await host.whenIdle();
    const status = await host.getStatus('i-2');
    expect(status.runtimeStatus).toBe('Failed');
    expect(status.error).toContain('transient');
  });

  it('fires a due timer, and refuses a second instance with the same id as the real client does (HTTP 500)', async () => {
    host = new InProcessDurableHost({ orchestrators: { approval }, activities });
    await host.startNew('approval', { instanceId: 'i-3', input: { deadlineMs: 3_600_000 } });
    await expect(host.startNew('approval', { instanceId: 'i-3', input: { deadlineMs: 1 } })).rejects.toThrow(/unexpected status code: 500/);
    await host.whenIdle();
    host.fireTimers('i-3', new Date(Date.now() + 2 * 3_600_000));
    await host.whenIdle();
    expect(await host.getStatus('i-3')).toMatchObject({ runtimeStatus: 'Completed', output: { outcome: 'timed out' } });
  });

  it('answers like the real client: 404 for unknown instances (no "404" in raiseEvent’s text), 410 silently for ended ones', async () => {
    host = new InProcessDurableHost({ orchestrators: { approval }, activities });
    const raised = host.raiseEvent('nope', 'Approve', {});
    await expect(raised).rejects.toThrow("No instance with ID 'nope' found.");
    await expect(raised).rejects.not.toThrow(/404/);
    await expect(host.getStatus('nope')).rejects.toThrow(/HTTP 404 response/);

    await host.startNew('approval', { instanceId: 'i-4', input: { deadlineMs: 1 } });
    expect((await host.getStatus('i-4')).runtimeStatus).toBe('Pending'); // its first episode has not run yet
    await host.whenIdle();
    host.fireTimers('i-4', new Date(Date.now() + 60_000));
    await host.whenIdle();
    expect((await host.getStatus('i-4')).runtimeStatus).toBe('Completed');
    await expect(host.raiseEvent('i-4', 'Approve', {})).resolves.toBeUndefined(); // 410: dropped, not an error
    await host.whenIdle();
    expect(host.history('i-4').filter((e) => e.EventType === 15)).toEqual([]);
  });

  it('terminates a live instance: Terminated, its events dropped; terminating an ended one changes nothing', async () => {
    host = new InProcessDurableHost({ orchestrators: { approval }, activities });
    await host.startNew('approval', { instanceId: 'i-5', input: { deadlineMs: 60_000 } });
    await host.whenIdle();
    await host.terminate('i-5', 'operator');
    expect(await host.getStatus('i-5')).toMatchObject({ runtimeStatus: 'Terminated', output: 'operator' });
    await host.raiseEvent('i-5', 'Approve', { by: 'carol' });
    await host.whenIdle();
    expect((await host.getStatus('i-5')).runtimeStatus).toBe('Terminated');
    await expect(host.terminate('nope', 'x')).rejects.toThrow("No instance with ID 'nope' found.");
  });
});
