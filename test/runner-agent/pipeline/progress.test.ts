import { describe, expect, it } from 'vitest';
import { ProgressThrottle, type ProgressSample } from '../../../runner-agent/pipeline/progress.js';
import { KeyedSemaphore } from '../../../runner-agent/semaphore.js';

function throttle() {
  let now = 0;
  const sent: ProgressSample[] = [];
  const t = new ProgressThrottle({ send: async (s) => void sent.push(s), now: () => now });
  return { t, sent, advance: (ms: number) => (now += ms) };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('progress throttle', () => {
  it('sends the first sample, then only after 10 s and a 5-point step', async () => {
    const { t, sent, advance } = throttle();
    t.offer({ percent: 1, bytes: 1 });
    await settle();
    advance(5_000);
    t.offer({ percent: 20, bytes: 2 }); // too soon
    await settle();
    advance(6_000);
    t.offer({ percent: 4, bytes: 3 }); // late enough, but only 3 points
    await settle();
    t.offer({ percent: 6, bytes: 4 });
    await settle();
    expect(sent).toEqual([{ percent: 1, bytes: 1 }, { percent: 6, bytes: 4 }]);
  });

  it('sends a heartbeat after 30 s when only bytes move (no known percentage)', async () => {
    const { t, sent, advance } = throttle();
    t.offer({ percent: 0, bytes: 10 });
    await settle();
    advance(20_000);
    t.offer({ percent: 0, bytes: 20 });
    await settle();
    advance(11_000);
    t.offer({ percent: 0, bytes: 30 });
    await settle();
    expect(sent.map((s) => s.bytes)).toEqual([10, 30]);
  });

  it('always sends 100 % once, whatever the timing', async () => {
    const { t, sent } = throttle();
    t.offer({ percent: 50, bytes: 1 });
    await t.complete(99);
    await t.complete(99);
    t.offer({ percent: 100, bytes: 100 });
    expect(sent).toEqual([{ percent: 50, bytes: 1 }, { percent: 100, bytes: 99 }]);
  });
});

describe('keyed semaphore', () => {
  it('runs at most `limit` per key, in arrival order, keys independent', async () => {
    const semaphore = new KeyedSemaphore(1);
    const order: string[] = [];
    const first = await semaphore.acquire('sql01');
    const other = await semaphore.acquire('pg01'); // another server is not blocked
    const second = semaphore.acquire('sql01').then((release) => (order.push('second'), release));
    const third = semaphore.acquire('sql01').then((release) => (order.push('third'), release));
    await settle();
    expect(order).toEqual([]);
    first();
    (await second)();
    (await third)();
    other();
    expect(order).toEqual(['second', 'third']);
    expect(semaphore.inUse('sql01')).toBe(0);
  });

  it('drops a waiter whose signal aborts', async () => {
    const semaphore = new KeyedSemaphore(1);
    const held = await semaphore.acquire('k');
    const aborter = new AbortController();
    const waiting = semaphore.acquire('k', aborter.signal);
    aborter.abort(new Error('shutdown'));
    await expect(waiting).rejects.toThrow('shutdown');
    held();
    expect(semaphore.inUse('k')).toBe(0);
  });
});
