/**
 * Issue 10, items 3 and 4: races around a takeover.
 *  3. A Redis resync that was reading the old primary's snapshot when this replica took over must
 *     not install that snapshot — nor the events buffered meanwhile — over the rebuilt lanes.
 *     Real Redis; the snapshot read's answer is held back by a loopback proxy until after the
 *     takeover, the way a slow network delivers it.
 *  4. A contender that lost, yet raised the epoch (a stalled ex-leader resuming inside beginTerm),
 *     must not fence the real leader off for good: the leader notices, steps down, and the cluster
 *     sells again under a higher epoch. Real processes and MongoDB.
 * Budget: ~25 s.
 */
import { randomUUID } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { Registry } from 'prom-client';
import { StockSubscriber, SyncMetrics, syncKeys } from '../src/cluster/sync/redis-sync.js';
import { createLogger } from '../src/logger.js';
import { INITIAL, REMAINING, STRIDE, SharedStock } from '../src/memory/shared-stock.js';
import { startRedis, stopAll, type Dependency } from './harness/deps.js';
import { waitFor } from './harness/service.js';
import { TestCluster, metricsText } from './support/cluster.js';
import { sampleOf } from './support/exposition.js';
import { buy, peek, putSku } from './support/http.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

afterAll(stopAll);

/** A loopback proxy that can hold back the server's answers (requests still go through). */
async function startHoldingProxy(targetPort: number): Promise<{ port: number; hold(): void; release(): void; sentSinceHold(): number; close(): Promise<void> }> {
  let held: Array<{ socket: Socket; chunk: Buffer }> | null = null;
  let sent = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (chunk: Buffer) => {
      sent += chunk.length;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => (held ? held.push({ socket: client, chunk }) : client.write(chunk)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    hold() {
      held = [];
      sent = 0;
    },
    release() {
      const queued = held ?? [];
      held = null;
      for (const { socket, chunk } of queued) socket.write(chunk);
    },
    sentSinceHold: () => sent,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('item 3: a late resync after a takeover', () => {
  let redis: Dependency;

  beforeAll(async () => {
    redis = await startRedis();
  });

  test('the old primary’s snapshot and the events buffered during the resync are dropped once this replica leads', async () => {
    const keys = syncKeys(`late_${randomUUID().slice(0, 8)}`);
    const stock = SharedStock.allocate(16);
    const { slot } = stock.ensure('LATE', 100);
    const proxy = await startHoldingProxy(redis.port);
    const publisher = new Redis(redis.url);
    // The old primary's state: 100 → 60 at epoch 1, version 1.
    await publisher.multi().hset(keys.snapshot, '0:LATE', '60:40:100').hset(keys.meta, 'epoch', 1, 'version', 1, 'host', 'old').exec();
    const subscriberClient = new Redis(redis.url);
    const reader = new Redis(`redis://127.0.0.1:${proxy.port}`, { maxRetriesPerRequest: 1, commandTimeout: 20_000 });
    let following = true;
    const subscriber = new StockSubscriber(subscriberClient, reader, keys, stock, 'me', () => following, new SyncMetrics(new Registry()), createLogger('silent', {}));
    const words = stock.words('atomic');
    try {
      await subscriber.start();
      await waitFor(() => Atomics.load(words, slot * STRIDE + REMAINING) === 60, { timeoutMs: 5000, message: 'the first resync applied the snapshot' });

      // The old primary moves on (version 5 in the snapshot); this replica sees a gap and resyncs,
      // but the snapshot's answer is held back.
      await publisher.multi().hset(keys.snapshot, '0:LATE', '10:90:100').hset(keys.meta, 'epoch', 1, 'version', 5).exec();
      proxy.hold();
      await publisher.publish(keys.channel, JSON.stringify({ host: 'old', epoch: 1, version: 5, at: Date.now(), updates: [[0, 'LATE', 10, 90, 100]] }));
      await waitFor(() => proxy.sentSinceHold() > 0, { timeoutMs: 5000, message: 'the resync read was sent' });
      // An event arrives while the resync waits: it is buffered.
      await publisher.publish(keys.channel, JSON.stringify({ host: 'old', epoch: 1, version: 6, at: Date.now(), updates: [[0, 'LATE', 5, 95, 100]] }));
      await publisher.ping(); // the subscriber has had time to receive it (same server, sent before)

      // Takeover: this replica rebuilt the lane from the ledger (say 70 left) and now leads.
      following = false;
      Atomics.store(words, slot * STRIDE + REMAINING, 70);
      Atomics.store(words, slot * STRIDE + INITIAL, 100);
      proxy.release();
      await waitFor(async () => (await subscriberClient.ping()) === 'PONG' && (await reader.ping()) === 'PONG', { timeoutMs: 5000, message: 'the resync finished' });

      expect(Atomics.load(words, slot * STRIDE + REMAINING)).toBe(70);
      expect(Atomics.load(words, slot * STRIDE + INITIAL)).toBe(100); // sold = initial − remaining = 30
    } finally {
      subscriberClient.disconnect();
      reader.disconnect();
      publisher.disconnect();
      await proxy.close();
    }
  });
});

describe('item 4: a contender that raised the epoch after losing', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await TestCluster.start(3);
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  test('the fenced leader steps down and the cluster sells again under a higher epoch', async () => {
    const leader = await cluster.waitForSinglePrimary();
    expect((await putSku(cluster.url(leader), TEST_ADMIN_TOKEN, 'FENCED', 1000)).status).toBeLessThan(300);
    expect((await buy(cluster.url(leader), 'atomic', 'FENCED', 1)).status).toBe(200);
    const leaderEpoch = sampleOf(await metricsText(leader), 'superstock_epoch');

    // What Fence.beginTerm does for a contender that then declines to lead: epoch + 1 on the fence.
    const client = new MongoClient(process.env.MONGO_URL as string);
    try {
      const fence = client.db(cluster.database).collection<{ _id: string; epoch: number; seq: number; holder: string; sealing: unknown[] }>('fence');
      const current = await fence.findOne({ _id: 'fence' });
      expect(current?.epoch).toBe(leaderEpoch);
      await fence.updateOne({ _id: 'fence' }, { $set: { epoch: leaderEpoch + 1, seq: 0, holder: 'stalled-contender', sealing: [{ epoch: leaderEpoch, seq: current?.seq ?? 0 }] } });
    } finally {
      await client.close();
    }

    // Buys come back (through any replica) within a few lease periods, at a higher epoch.
    await waitFor(async () => (await buy(cluster.url(leader), 'atomic', 'FENCED', 1, randomUUID())).status === 200, {
      timeoutMs: 15_000,
      intervalMs: 100,
      message: 'buys served again after the fence moved',
    });
    const next = await cluster.waitForSinglePrimary();
    expect(sampleOf(await metricsText(next), 'superstock_epoch')).toBeGreaterThan(leaderEpoch + 1);
    expect((await peek(cluster.url(next), 'atomic', 'FENCED')).body.remaining).toBeLessThanOrEqual(998);
    // Every replica is ready again: the one that leads, and the others forwarding to it.
    for (const replica of cluster.replicas) {
      await waitFor(async () => (await fetch(`${cluster.url(replica)}/readyz`)).status === 200, { timeoutMs: 10_000, message: `${replica.id} ready` });
    }
  });
});
