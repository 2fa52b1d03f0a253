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
    expect(await host.startNew('approval', 'i-1', { deadlineMs: 60_000 })).toBe(true);
    await host.whenIdle();
    expect(host.getStatus('i-1')).toMatchObject({ runtimeStatus: 'Running', customStatus: { stage: 'waiting', first: 42 } });

    await host.raiseEvent('i-1', 'Approve', { by: 'alice' });
    await host.whenIdle();
    expect(host.getStatus('i-1')).toMatchObject({
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
    await host.startNew('approval', 'i-2', { deadlineMs: 60_000 });
    await host.whenIdle();
    await host.raiseEvent('i-2', 'Approve', { by: 'bob' });
    await host.whenIdle();
    const status = host.getStatus('i-2');
    expect(status?.runtimeStatus).toBe('Failed');
    expect(status?.error).toContain('transient');
  });

  it('fires a due timer, and refuses a second instance with the same id', async () => {
    host = new InProcessDurableHost({ orchestrators: { approval }, activities });
    await host.startNew('approval', 'i-3', { deadlineMs: 3_600_000 });
    expect(await host.startNew('approval', 'i-3', { deadlineMs: 1 })).toBe(false);
    await host.whenIdle();
    host.fireTimers('i-3', new Date(Date.now() + 2 * 3_600_000));
    await host.whenIdle();
    expect(host.getStatus('i-3')).toMatchObject({ runtimeStatus: 'Completed', output: { outcome: 'timed out' } });
  });

  it('drops events for instances that do not exist, as the extension does', async () => {
    host = new InProcessDurableHost({ orchestrators: { approval }, activities });
    expect(await host.raiseEvent('nope', 'Approve', {})).toBe(false);
  });
});
