import { IdempotencyRegistry } from '../../src/idempotency.js';

describe('IdempotencyRegistry', () => {
  const answer = { status: 200, body: '{"ok":true}' };

  test('new → in progress → replay; a different request with the key is a mismatch', async () => {
    const registry = new IdempotencyRegistry(60_000, 10);
    expect(await registry.claim('k', 'a')).toEqual({ kind: 'new' });
    expect(await registry.claim('k', 'a')).toEqual({ kind: 'in_progress' });
    await registry.complete('k', answer);
    expect(await registry.claim('k', 'a')).toEqual({ kind: 'replay', response: answer });
    expect(await registry.claim('k', 'b')).toEqual({ kind: 'mismatch' });
  });

  test('a released claim can be made again', async () => {
    const registry = new IdempotencyRegistry(60_000, 10);
    await registry.claim('k', 'a');
    await registry.release('k');
    expect(await registry.claim('k', 'a')).toEqual({ kind: 'new' });
  });

  test('answers expire after the TTL', async () => {
    let now = 0;
    const registry = new IdempotencyRegistry(1000, 10, () => now);
    await registry.claim('k', 'a');
    await registry.complete('k', answer);
    now = 999;
    expect((await registry.claim('k', 'a')).kind).toBe('replay');
    now = 2000;
    expect((await registry.claim('k', 'a')).kind).toBe('new');
  });

  test('beyond the bound the oldest answered keys go first; claims in flight stay', async () => {
    const registry = new IdempotencyRegistry(60_000, 3);
    await registry.claim('pending', 'x');
    for (const key of ['a', 'b', 'c', 'd']) {
      await registry.claim(key, 'x');
      await registry.complete(key, answer);
    }
    expect(registry.size).toBeLessThanOrEqual(4);
    expect((await registry.claim('pending', 'x')).kind).toBe('in_progress');
    expect((await registry.claim('a', 'x')).kind).toBe('new');
  });

  test('a key memory has forgotten is looked up in the durable record; a concurrent duplicate waits; a failed look-up decides nothing', async () => {
    const sold = { status: 200, body: '{"lane":"atomic","sku":"A","quantity":1,"remaining":9}' };
    const records = new Map([['old', { fingerprint: 'atomic/A/1', response: sold }]]);
    let reachable = true;
    const registry = new IdempotencyRegistry(60_000, 1);
    registry.useDurableAnswers({
      covers: (fingerprint) => fingerprint.startsWith('atomic/'),
      find: async (key) => {
        if (!reachable) throw new Error('down');
        return records.get(key) ?? null;
      },
    });
    const [first, duplicate] = await Promise.all([registry.claim('old', 'atomic/A/1'), registry.claim('old', 'atomic/A/1')]);
    expect(first).toEqual({ kind: 'replay', response: sold });
    expect(duplicate).toEqual({ kind: 'in_progress' });
    expect(await registry.claim('old', 'atomic/A/2')).toEqual({ kind: 'mismatch' });
    expect(await registry.claim('fresh', 'atomic/A/1')).toEqual({ kind: 'new' });
    reachable = false;
    expect((await registry.claim('other', 'atomic/A/1')).kind).toBe('unavailable');
    expect((await registry.claim('redis-key', 'redis/A/1')).kind).toBe('new'); // not a ledgered lane
    reachable = true;
    expect(await registry.claim('other', 'atomic/A/1')).toEqual({ kind: 'new' });
  });

  test('a full registry evicts in O(1) per claim however long the churn, and an evicted key is still found in the durable record', async () => {
    const maxKeys = 200;
    const recorded = new Map<string, { fingerprint: string; response: typeof answer }>();
    let lookups = 0;
    const registry = new IdempotencyRegistry(60_000, maxKeys);
    registry.useDurableAnswers({
      covers: () => true,
      find: async (key) => {
        lookups++;
        return recorded.get(key) ?? null;
      },
    });
    // Slow buys: claims that stay in flight at the head of the queue the whole time.
    for (let i = 0; i < 20; i++) await registry.claim(`slow-${i}`, 'x');
    let made = 0;
    let notNew = 0;
    /** `count` keyed buys: claimed and answered, one in three failing and released instead. */
    const churn = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++, made++) {
        const key = `k-${made}`;
        if ((await registry.claim(key, 'x')).kind !== 'new') notNew++;
        if (made % 3 === 2) {
          await registry.release(key);
        } else {
          recorded.set(key, { fingerprint: 'x', response: answer });
          await registry.complete(key, answer);
        }
      }
    };
    await churn(2 * maxKeys); // full from here on
    const costOf = async (count: number): Promise<number> => {
      const before = registry.evictionSteps;
      await churn(count);
      return (registry.evictionSteps - before) / count;
    };
    const early = await costOf(5 * maxKeys);
    const late = await costOf(50 * maxKeys);
    // Records looked at per claim: about one evicted and one where the walk stops, plus the stale
    // records of released claims and the slow claims coming round once per lap — never the churn.
    expect(notNew).toBe(0);
    expect(early).toBeLessThan(4);
    expect(late).toBeLessThan(4);
    expect(registry.size).toBeLessThanOrEqual(maxKeys);
    expect(registry.queued).toBeLessThanOrEqual(3 * maxKeys + 1024);
    for (let i = 0; i < 20; i++) expect((await registry.claim(`slow-${i}`, 'x')).kind).toBe('in_progress');
    // Memory dropped the first keys long ago; their sales are still answered from the record.
    const before = lookups;
    expect(await registry.claim('k-0', 'x')).toEqual({ kind: 'replay', response: answer });
    expect(await registry.claim('k-2', 'x')).toEqual({ kind: 'new' }); // released: never sold
    expect(lookups - before).toBe(2);
  });
});
