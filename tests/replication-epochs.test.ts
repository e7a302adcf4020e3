/**
 * Secondaries must never stay stale (issue 10, item 9). A static primary without a ledger
 * (ROLE=primary, DURABILITY=none) used to restart at epoch 0 with versions from 1, and the
 * secondaries, holding a higher version of epoch 0, dropped everything it sent as stale; and a
 * secondary that missed the first messages of a new term applied the later ones without noticing
 * the gap (gap detection worked within one epoch only). Budget: ~15 s.
 */
import { Redis } from 'ioredis';
import { startRedis, stopAll, type Dependency } from './harness/deps.js';
import { freePort } from './harness/ports.js';
import { startService, waitFor, type ServiceHandle } from './harness/service.js';
import { buy, peek } from './support/http.js';

afterAll(stopAll);

describe('static primary and secondary over Redis, no ledger', () => {
  const cluster = `epochs_${process.pid}`;
  let redis: Dependency;
  let redisClient: Redis;
  let primaryPort: number;
  let primary: ServiceHandle | null = null;
  let secondary: ServiceHandle;

  const startPrimary = () => startService({ ROLE: 'primary', DURABILITY: 'none', MONGO_URL: '', REDIS_URL: redis.url, CLUSTER_NAME: cluster, STOCK_HOST_ID: 'primary', PORT: String(primaryPort) });
  const agree = async (lane: string, sku: string) => {
    if (!primary) return false;
    const [truth, copy] = await Promise.all([peek(primary.url, lane, sku), peek(secondary.url, lane, sku)]);
    return truth.status === 200 && copy.status === 200 && truth.body.remaining === copy.body.remaining;
  };

  beforeAll(async () => {
    redis = await startRedis();
    redisClient = new Redis(redis.url);
    primaryPort = await freePort();
    primary = await startPrimary();
    secondary = await startService({ ROLE: 'secondary', PRIMARY_URL: primary.url, MONGO_URL: '', REDIS_URL: redis.url, CLUSTER_NAME: cluster, STOCK_HOST_ID: 'secondary' });
  });

  afterAll(async () => {
    redisClient?.disconnect();
    await Promise.all([primary?.stop(), secondary?.stop()]);
  });

  test('the primary restarts (memory lost, as DURABILITY=none says): the secondary follows its new state', async () => {
    // One published version per buy, so the secondary holds a version well above 1.
    for (let i = 0; i < 20; i++) {
      expect((await buy(primary!.url, 'lock', 'NVDA', 1)).status).toBe(200);
      await waitFor(() => agree('lock', 'NVDA'), { timeoutMs: 5000, intervalMs: 10, message: 'secondary follows each sale' });
    }
    expect((await peek(secondary.url, 'lock', 'NVDA')).body.remaining).toBe(14_980);
    primary!.kill();
    await primary!.stop('SIGKILL');
    primary = await startPrimary();
    expect((await peek(primary.url, 'lock', 'NVDA')).body.remaining).toBe(15_000);
    await waitFor(() => agree('lock', 'NVDA'), { timeoutMs: 5000, message: "the secondary takes the restarted primary's state" });
    // And keeps following it.
    expect((await buy(primary.url, 'lock', 'NVDA', 3)).status).toBe(200);
    await waitFor(() => agree('lock', 'NVDA'), { timeoutMs: 5000, message: 'the secondary follows the new term' });
  });

  test('a secondary that missed the first messages of a new term resyncs from the snapshot', async () => {
    const { channel, snapshot, meta } = { channel: `superstock:${cluster}:stock-events`, snapshot: `superstock:${cluster}:snapshot`, meta: `superstock:${cluster}:snapshot:meta` };
    // The secondary has subscribed and read the snapshot once: what follows reaches it as events.
    await waitFor(() => agree('lock', 'NVDA'), { timeoutMs: 5000, message: 'the secondary follows the primary' });
    const epoch = Number(await redisClient.hget(meta, 'epoch'));
    // A new term whose versions 1-4 this secondary never heard: the snapshot has them (a SKU
    // created in version 2, say); version 5 only touches NVDA.
    await redisClient.multi().hset(snapshot, '0:GAPPED', '70:30:100', '0:NVDA', '1:14999:15000').hset(meta, 'epoch', epoch + 1, 'version', 5, 'host', 'next-primary').exec();
    await redisClient.publish(channel, JSON.stringify({ host: 'next-primary', epoch: epoch + 1, version: 5, at: Date.now(), updates: [[0, 'NVDA', 1, 14999, 15000]] }));
    await waitFor(async () => (await peek(secondary.url, 'atomic', 'GAPPED')).status === 200, { timeoutMs: 5000, message: 'the secondary read the snapshot' });
    expect((await peek(secondary.url, 'atomic', 'GAPPED')).body).toMatchObject({ remaining: 70, sold: 30, initial: 100 });
    expect((await peek(secondary.url, 'atomic', 'NVDA')).body).toMatchObject({ remaining: 1, sold: 14999 });
  });
});
