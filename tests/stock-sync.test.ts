/**
 * Replication of the in-memory lanes over real Redis (src/cluster/sync/redis-sync.ts), at the
 * unit of one publisher and one subscriber, each with its own table as on two replicas.
 *
 * A publish whose answer timed out may still have landed: the next one must not reuse its
 * version, or every secondary drops it as already seen. CI's fault matrix once ended with two
 * secondaries stuck on a SKU the primary had sold since (a stalled primary's publish timed out
 * and landed; its republish of everything went out under the same version). Here Redis holds
 * the publisher's writes back with CLIENT PAUSE WRITE, longer than its command timeout, and then
 * runs them: the way a stalled event loop or a slow Redis makes a MULTI time out yet land.
 * Budget: ~2 s.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { StockPublisher, StockSubscriber, SyncMetrics, syncKeys } from '../src/cluster/sync/redis-sync.js';
import { createRedisClient } from '../src/lanes/redis-lane.js';
import { createLogger } from '../src/logger.js';
import { REMAINING, STRIDE, SharedStock } from '../src/memory/shared-stock.js';
import { startRedis, stopAll, type Dependency } from './harness/deps.js';
import { waitFor } from './harness/wait.js';
import { sampleOf } from './support/exposition.js';

afterAll(stopAll);

/** A replica's count of one kind of replication event, read from its registry's exposition. */
const eventsOf = async (registry: Registry, kind: string): Promise<number> => sampleOf(await registry.metrics(), `superstock_sync_events_total{kind="${kind}"}`);

/** A primary's table and publisher, a secondary's table and subscriber, and an admin connection. */
async function replicationPair(redis: Dependency) {
  const keys = syncKeys(`sync_${randomUUID().slice(0, 8)}`);
  const primary = SharedStock.allocate(16);
  const secondary = SharedStock.allocate(16);
  const slots = { A: primary.ensure('A', 100).slot, B: primary.ensure('B', 100).slot };
  const publisherRegistry = new Registry();
  // A command timeout of 100 ms, so that a paused Redis outlasts it.
  const publisherClient = createRedisClient(redis.url, 100);
  publisherClient.on('error', () => undefined);
  const publisher = new StockPublisher(publisherClient, keys, primary, 'primary', 7, 10, new SyncMetrics(publisherRegistry), createLogger('silent', {}));
  const subscriberClient = new Redis(redis.url);
  const reader = new Redis(redis.url);
  const admin = new Redis(redis.url);
  const secondaryRegistry = new Registry();
  const subscriber = new StockSubscriber(subscriberClient, reader, keys, secondary, 'secondary', () => true, new SyncMetrics(secondaryRegistry), createLogger('silent', {}));
  const remainingOn = (sku: string) => {
    const slot = secondary.slotOf(sku);
    return slot < 0 ? null : Atomics.load(secondary.words('atomic'), slot * STRIDE + REMAINING);
  };
  await subscriber.start();
  publisher.start();
  await waitFor(() => remainingOn('A') === 100 && remainingOn('B') === 100, { timeoutMs: 5000, message: 'the secondary has both SKUs' });
  return {
    publisherClient,
    admin,
    sell(sku: 'A' | 'B', quantity: number) {
      Atomics.sub(primary.words('atomic'), slots[sku] * STRIDE + REMAINING, quantity);
      primary.markDirty('atomic', slots[sku]);
    },
    /** Until the publisher has counted a publish that failed. */
    publishFailed: () => waitFor(async () => (await eventsOf(publisherRegistry, 'publish_failed')) > 0, { timeoutMs: 5000, message: 'a publish failed' }),
    /** The secondary's levels once they equal `want`, or as they are after 5 s. */
    async secondaryLevels(want: { A: number; B: number }) {
      const levels = () => ({ A: remainingOn('A'), B: remainingOn('B') });
      await waitFor(() => levels().A === want.A && levels().B === want.B, { timeoutMs: 5000, message: 'the secondary holds the primary\'s levels' }).catch(() => undefined);
      return levels();
    },
    resyncs: () => eventsOf(secondaryRegistry, 'resync'),
    close() {
      publisher.stop();
      for (const client of [publisherClient, subscriberClient, reader, admin]) client.disconnect();
    },
  };
}

describe('stock replication over Redis', () => {
  let redis: Dependency;

  beforeAll(async () => {
    redis = await startRedis();
  });

  test('a publish that timed out but landed does not make the next one look already seen', async () => {
    const pair = await replicationPair(redis);
    try {
      // Redis holds the publisher's MULTI for 600 ms; it gives up after 100 ms, but Redis runs it later.
      await pair.admin.call('CLIENT', 'PAUSE', '600', 'WRITE');
      pair.sell('A', 10);
      await pair.publishFailed();
      // B is sold after that publish took its dirty bits: it goes out only in a later one.
      pair.sell('B', 20);
      expect(await pair.secondaryLevels({ A: 90, B: 80 })).toEqual({ A: 90, B: 80 });
    } finally {
      pair.close();
    }
  });

  test('a publish that never landed leaves a gap, and the secondary reads the snapshot', async () => {
    const pair = await replicationPair(redis);
    try {
      const resyncsBefore = await pair.resyncs();
      const id = String(await pair.publisherClient.client('ID'));
      await pair.admin.call('CLIENT', 'PAUSE', '5000', 'WRITE');
      pair.sell('A', 10);
      await pair.publishFailed();
      // Its connection dies with the MULTI still held: Redis never runs it.
      await pair.admin.call('CLIENT', 'KILL', 'ID', id);
      await pair.admin.call('CLIENT', 'UNPAUSE');
      pair.sell('B', 20);
      expect(await pair.secondaryLevels({ A: 90, B: 80 })).toEqual({ A: 90, B: 80 });
      expect(await pair.resyncs()).toBeGreaterThan(resyncsBefore);
    } finally {
      pair.close();
    }
  });
});
