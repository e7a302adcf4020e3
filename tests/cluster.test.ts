/**
 * Three replicas as real processes, with real MongoDB and Redis: one elected primary, failover
 * when it dies, fencing when it is paused and comes back, replication to the secondaries, and —
 * the original's unsolved "oversell scenario" — killing the primary under load, round after
 * round, without ever overselling or losing an acknowledged sale.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { MEMORY_LANES } from '../src/config.js';
import { startRedis, type Dependency, stopAll } from './harness/deps.js';
import { waitFor } from './harness/service.js';
import { TestCluster, metricsText, roleOf, type Replica } from './support/cluster.js';
import { sampleOf } from './support/exposition.js';
import { buy, peek, putSku, type Answer, type BuyBody, type ErrorBody } from './support/http.js';
import { expectLaneAccounting, readLedger } from './support/ledger.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

afterAll(stopAll);

describe('three replicas: election and failover', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await TestCluster.start(3);
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  test('exactly one primary; buys sent to any replica are decided by it', async () => {
    const primary = await cluster.waitForSinglePrimary();
    await putSku(cluster.url(primary), TEST_ADMIN_TOKEN, 'ELECT', 30);
    for (const replica of cluster.replicas) {
      for (const lane of ['atomic', 'lock', 'signal', 'db', 'redis']) expect((await buy(cluster.url(replica), lane, 'ELECT', 2)).status).toBe(200);
    }
    for (const lane of ['atomic', 'lock', 'signal', 'db', 'redis']) expect((await peek(cluster.url(primary), lane, 'ELECT')).body).toMatchObject({ remaining: 24, sold: 6 });
    const secondary = cluster.replicas.find((r) => r !== primary) as Replica;
    expect(sampleOf(await metricsText(secondary), 'superstock_forwarded_requests_total{outcome="ok"}')).toBeGreaterThan(0);
    // Secondaries answer Peek from their replicated copy, which converges on the primary's.
    await waitFor(async () => (await peek(cluster.url(secondary), 'lock', 'ELECT')).body.remaining === 24, { timeoutMs: 5000, message: 'secondary copy converges' });
  });

  test('SIGKILL the primary → a new primary serves writes within 5 s; the old one comes back as a secondary', async () => {
    const primary = await cluster.waitForSinglePrimary();
    const survivor = cluster.replicas.find((r) => r !== primary) as Replica;
    primary.service?.kill();
    primary.service = null;
    const killedAt = Date.now();
    await waitFor(async () => (await buy(cluster.url(survivor), 'atomic', 'ELECT', 1)).status === 200, { timeoutMs: 10_000, intervalMs: 50, message: 'writes served again' });
    expect(Date.now() - killedAt).toBeLessThan(5000);
    const next = await cluster.waitForSinglePrimary();
    expect(next).not.toBe(primary);

    await cluster.startReplica(primary);
    expect(await roleOf(primary)).toBe('secondary');
    expect((await cluster.primaries()).map((r) => r.id)).toEqual([next.id]);
  });
});

describe('kill the primary under load (5 rounds, every lane)', () => {
  const LANES = ['atomic', 'lock', 'signal', 'db', 'redis'] as const;
  // Enough that the lanes sell out around the third round: failover is tested while selling and
  // at the edge of sold out, where an oversell would show.
  const STOCK = 1500;
  const ROUNDS = 5;
  const SKU = 'FLASH';
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await TestCluster.start(3);
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  test('acknowledged sales never exceed the stock, all are durable, counts match the ledger, retries never sell twice', async () => {
    const first = await cluster.waitForSinglePrimary();
    expect((await putSku(cluster.url(first), TEST_ADMIN_TOKEN, SKU, STOCK)).status).toBeLessThan(300);

    const acked = new Map<string, { lane: string; key: string }>();
    const unanswered: Array<{ lane: string; key: string }> = [];
    let stop = false;
    let sent = 0;
    let answered = 0;
    const client = async (n: number) => {
      while (!stop && sent < 100_000) {
        sent++;
        const lane = LANES[n % LANES.length] as string;
        const replica = cluster.live()[n % Math.max(1, cluster.live().length)];
        if (!replica) continue;
        const key = randomUUID();
        let answer: Answer<BuyBody & ErrorBody> | null;
        try {
          answer = await buy(cluster.url(replica), lane, SKU, 1, key);
        } catch {
          answer = null;
        }
        if (answer !== null) answered++;
        if (answer?.status === 200) acked.set(key, { lane, key });
        // No answer, a refusal (503) or an unknown outcome (504): the key's retry below settles it.
        else if (answer === null || answer.status === 503 || answer.status === 504) unanswered.push({ lane, key });
        // Refusals and outages come back fast: pace them, as a real client's backoff would.
        if (answer?.status !== 200) await new Promise((r) => setTimeout(r, 100));
      }
    };
    const load = Promise.all(Array.from({ length: 30 }, (_, n) => client(n)));

    for (let round = 0; round < ROUNDS; round++) {
      const before = answered;
      await waitFor(async () => answered >= before + 100, { timeoutMs: 20_000, message: `round ${round}: traffic flowing` });
      const primary = await cluster.waitForSinglePrimary();
      primary.service?.kill();
      primary.service = null;
      await cluster.waitForSinglePrimary(10_000);
      await cluster.startReplica(primary);
    }
    stop = true;
    await load;

    // Retry every unanswered request with its key until it gets a final answer (30 at a time).
    const primary = await cluster.waitForSinglePrimary();
    const retries = [...unanswered];
    await Promise.all(
      Array.from({ length: 30 }, async () => {
        for (let next = retries.pop(); next !== undefined; next = retries.pop()) {
          const { lane, key } = next;
          await waitFor(
            async () => {
              const answer = await buy(cluster.url(primary), lane, SKU, 1, key);
              if (answer.status === 200) acked.set(key, { lane, key });
              return answer.status === 200 || (answer.status === 409 && answer.body.error.code !== 'idempotency_key_in_use');
            },
            { timeoutMs: 10_000, message: `final answer for ${key}` },
          );
        }
      }),
    );

    const batches = await readLedger(process.env.MONGO_URL as string, cluster.database);
    for (const lane of LANES) {
      const ackedHere = [...acked.values()].filter((a) => a.lane === lane);
      const level = (await peek(cluster.url(primary), lane, SKU)).body;
      expectLaneAccounting({ lane, sku: SKU, stock: STOCK, level, ackedKeys: ackedHere.map((a) => a.key), batches });
    }
  }, 240_000);
});

describe('fencing', () => {
  let cluster: TestCluster;

  afterAll(async () => {
    await cluster?.stop();
  });

  test('a primary paused (SIGSTOP) until another wins writes nothing when it resumes (SIGCONT) and steps down', async () => {
    cluster = await TestCluster.start(3);
    const old = await cluster.waitForSinglePrimary();
    await putSku(cluster.url(old), TEST_ADMIN_TOKEN, 'FENCE', 1000);
    // Keep the old primary busy so it has group commits in flight when it freezes.
    const inFlight = Array.from({ length: 40 }, () => buy(cluster.url(old), 'atomic', 'FENCE', 1, randomUUID()).catch(() => null));
    process.kill(old.service?.pid as number, 'SIGSTOP');
    const oldEpoch = Math.max(0, ...(await readLedger(process.env.MONGO_URL as string, cluster.database)).filter((b) => !b.tombstone).map((b) => b.epoch));
    const others = cluster.replicas.filter((r) => r !== old);
    let successor: Replica | null = null;
    await waitFor(
      async () => {
        for (const r of others) if ((await roleOf(r)) === 'primary') successor = r;
        return successor !== null;
      },
      { timeoutMs: 10_000, message: 'another replica wins' },
    );
    const sealed = (await readLedger(process.env.MONGO_URL as string, cluster.database)).filter((b) => b.epoch <= oldEpoch && !b.tombstone).length;

    process.kill(old.service?.pid as number, 'SIGCONT');
    await Promise.all(inFlight);
    await waitFor(async () => (await roleOf(old)) === 'secondary', { timeoutMs: 10_000, message: 'old primary steps down' });
    // Whatever the old primary still tried to write after the takeover was refused by the fence.
    expect((await readLedger(process.env.MONGO_URL as string, cluster.database)).filter((b) => b.epoch <= oldEpoch && !b.tombstone).length).toBe(sealed);
    expect((await cluster.primaries()).map((r) => r.id)).toEqual([(successor as unknown as Replica).id]);
    const text = await metricsText(old);
    expect(sampleOf(text, 'superstock_epoch')).toBeLessThan(sampleOf(await metricsText(successor as unknown as Replica), 'superstock_epoch'));
  });
});

describe('replication over Redis pub/sub', () => {
  let redis: Dependency;
  let cluster: TestCluster;
  let publisher: Redis;

  beforeAll(async () => {
    redis = await startRedis();
    cluster = await TestCluster.start(3, { REDIS_URL: redis.url });
    publisher = new Redis(redis.url);
  });

  afterAll(async () => {
    publisher?.disconnect();
    await cluster?.stop();
    await redis?.stop();
  });

  async function converged(sku: string): Promise<boolean> {
    const primary = (await cluster.primaries())[0];
    if (!primary) return false;
    for (const lane of MEMORY_LANES) {
      const truth = (await peek(cluster.url(primary), lane, sku)).body;
      for (const r of cluster.replicas) if ((await peek(cluster.url(r), lane, sku)).body.remaining !== truth.remaining) return false;
    }
    return true;
  }

  test('Redis restarted mid-run: secondaries resync and converge to the primary', async () => {
    const primary = await cluster.waitForSinglePrimary();
    await putSku(cluster.url(primary), TEST_ADMIN_TOKEN, 'SYNC', 500);
    for (const lane of MEMORY_LANES) for (let i = 0; i < 10; i++) await buy(cluster.url(primary), lane, 'SYNC', 1);
    await waitFor(() => converged('SYNC'), { timeoutMs: 10_000, message: 'converged before the restart' });

    await redis.stop();
    for (const lane of MEMORY_LANES) for (let i = 0; i < 7; i++) expect((await buy(cluster.url(primary), lane, 'SYNC', 1)).status).toBe(200);
    await redis.start();
    await waitFor(() => converged('SYNC'), { timeoutMs: 20_000, message: 'converged after the restart' });
    const secondary = cluster.replicas.find((r) => r !== primary) as Replica;
    expect((await peek(cluster.url(secondary), 'lock', 'SYNC')).body).toMatchObject({ remaining: 483, sold: 17 });
    expect(sampleOf(await metricsText(secondary), 'superstock_sync_events_total{kind="resync"}')).toBeGreaterThan(0);
  });

  test('echoes and stale events are counted and ignored', async () => {
    const primary = await cluster.waitForSinglePrimary();
    const secondary = cluster.replicas.find((r) => r !== primary) as Replica;
    expect(sampleOf(await metricsText(primary), 'superstock_sync_events_total{kind="echo"}')).toBeGreaterThan(0);
    const before = await metricsText(secondary);
    const level = (await peek(cluster.url(secondary), 'atomic', 'SYNC')).body;
    // A stale event (epoch 0) and an echo (the secondary's own id), both claiming the SKU is gone.
    const bogus = (host: string, epoch: number) => JSON.stringify({ host, epoch, version: 1, at: Date.now(), updates: [[0, 'SYNC', 0, 999, 999]] });
    const channel = `superstock:${cluster.database}:stock-events`;
    await publisher.publish(channel, bogus('someone-else', 0));
    await publisher.publish(channel, bogus(secondary.id, 99));
    await waitFor(
      async () => {
        const after = await metricsText(secondary);
        return (
          sampleOf(after, 'superstock_sync_events_total{kind="stale"}') > sampleOf(before, 'superstock_sync_events_total{kind="stale"}') &&
          sampleOf(after, 'superstock_sync_events_total{kind="echo"}') > sampleOf(before, 'superstock_sync_events_total{kind="echo"}')
        );
      },
      { timeoutMs: 5000, message: 'stale and echo counted' },
    );
    expect((await peek(cluster.url(secondary), 'atomic', 'SYNC')).body.remaining).toBe(level.remaining);
  });
});
