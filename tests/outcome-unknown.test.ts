/**
 * Issue 10, item 5: "refused" and "outcome unknown" are different answers. A call that reached
 * MongoDB, Redis or the primary and then got no answer may have been applied: the client is told
 * 504 `outcome_unknown` (never the 503 that promises nothing changed), and a retry with the same
 * Idempotency-Key resolves it — the sale is found, or made once. A call that could not be sent at
 * all stays a 503.
 * Budget: ~25 s (private MongoDB and Redis paused with SIGSTOP; two real replicas).
 */
import { randomUUID } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { startMongo, startRedis, stopAll, type Dependency } from './harness/deps.js';
import { startService, waitFor, type ServiceHandle } from './harness/service.js';
import { TestCluster, type Replica } from './support/cluster.js';
import { buy, peek, putSku, type Answer, type BuyBody, type ErrorBody } from './support/http.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

afterAll(stopAll);

/** Retry with the same key until the answer is final (not 504, not "in flight", not 503). */
async function resolveByRetrying(send: () => Promise<Answer<BuyBody & ErrorBody>>): Promise<Answer<BuyBody & ErrorBody>> {
  let last: Answer<BuyBody & ErrorBody> | null = null;
  await waitFor(
    async () => {
      last = await send();
      return last.status === 200 || (last.status === 409 && last.body.error.code !== 'idempotency_key_in_use');
    },
    { timeoutMs: 15_000, intervalMs: 100, message: 'a final answer for the retried key' },
  );
  return last as unknown as Answer<BuyBody & ErrorBody>;
}

describe('a store call cut off after it was sent', () => {
  let mongo: Dependency;
  let redis: Dependency;
  let service: ServiceHandle;

  beforeAll(async () => {
    [mongo, redis] = await Promise.all([startMongo(), startRedis()]);
    service = await startService({ MONGO_URL: mongo.url, REDIS_URL: redis.url, DEPENDENCY_TIMEOUT_MS: '1000', ADMIN_TOKEN: TEST_ADMIN_TOKEN, ELECTION: 'none', DURABILITY: 'none' });
  });

  afterAll(async () => {
    mongo?.resume();
    redis?.resume();
    await service?.stop();
  });

  test.each([
    ['db', () => mongo],
    ['redis', () => redis],
  ] as const)('%s lane: the store stops answering mid-buy → 504 outcome_unknown; a retry with the key learns the sale, sold once', async (lane, dependency) => {
    const sku = `UNK-${lane}`;
    expect((await putSku(service.url, TEST_ADMIN_TOKEN, sku, 100)).status).toBeLessThan(300);
    const key = randomUUID();
    dependency().pause();
    let answer: Answer<BuyBody & ErrorBody>;
    try {
      answer = await buy(service.url, lane, sku, 2, key);
    } finally {
      dependency().resume();
    }
    expect(answer.status).toBe(504);
    expect(answer.body.error.code).toBe('outcome_unknown');
    expect(answer.headers.get('retry-after')).not.toBeNull();

    // The store applied what it had received once it woke up.
    await waitFor(async () => (await peek(service.url, lane, sku)).body.sold === 2, { timeoutMs: 5000, message: 'the late sale lands' });
    const retried = await resolveByRetrying(() => buy(service.url, lane, sku, 2, key));
    expect(retried.status).toBe(200);
    expect((await peek(service.url, lane, sku)).body).toMatchObject({ sold: 2, remaining: 98 });
  });

  test('a store that is down before the call is a 503: refused, nothing changed', async () => {
    await redis.stop();
    try {
      await waitFor(async () => (await buy(service.url, 'redis', 'UNK-redis', 1, randomUUID())).status === 503, { timeoutMs: 5000, message: 'redis refused' });
      const answer = await buy(service.url, 'redis', 'UNK-redis', 1, randomUUID());
      expect(answer.status).toBe(503);
      expect(answer.body.error.code).toBe('dependency_unavailable');
    } finally {
      await redis.start();
    }
  });
});

describe('a forwarded buy whose primary stops answering after it was sent', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await TestCluster.start(2, { FORWARD_TIMEOUT_MS: '300' });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  test('→ 504 outcome_unknown, not 503; a retry with the same key sells at most once', async () => {
    const primary = await cluster.waitForSinglePrimary();
    const secondary = cluster.replicas.find((r) => r !== primary) as Replica;
    expect((await putSku(cluster.url(primary), TEST_ADMIN_TOKEN, 'FWD', 50)).status).toBeLessThan(300);
    // Warm the forwarding pool, so the buy below travels on an open connection.
    expect((await buy(cluster.url(secondary), 'atomic', 'FWD', 1, randomUUID())).status).toBe(200);

    const key = randomUUID();
    const pid = primary.service?.pid as number;
    process.kill(pid, 'SIGSTOP');
    let answer: Answer<BuyBody & ErrorBody>;
    try {
      answer = await buy(cluster.url(secondary), 'atomic', 'FWD', 1, key);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect(answer.status).toBe(504);
    expect(answer.body.error.code).toBe('outcome_unknown');

    const retried = await resolveByRetrying(() => buy(cluster.url(secondary), 'atomic', 'FWD', 1, key));
    expect(retried.status).toBe(200);
    const leader = await cluster.waitForSinglePrimary();
    expect((await peek(cluster.url(leader), 'atomic', 'FWD')).body).toMatchObject({ sold: 2, remaining: 48 });
    const client = new MongoClient(process.env.MONGO_URL as string);
    try {
      const batches = await client.db(cluster.database).collection<{ entries?: Array<{ op: string; key?: string }> }>('ledger').find({}).toArray();
      expect(batches.flatMap((b) => b.entries ?? []).filter((e) => e.op === 'buy' && e.key === key)).toHaveLength(1);
    } finally {
      await client.close();
    }
  });

  test('a primary that is gone (connection refused) is a 503: nothing was sent', async () => {
    const primary = await cluster.waitForSinglePrimary();
    const secondary = cluster.replicas.find((r) => r !== primary) as Replica;
    await primary.service?.stop('SIGKILL');
    primary.service = null;
    const answer = await buy(cluster.url(secondary), 'atomic', 'FWD', 1, randomUUID());
    // Either the survivor already leads (200) or it refused without sending anything (503).
    expect([200, 503]).toContain(answer.status);
    if (answer.status === 503) expect(answer.body.error.code).toBe('dependency_unavailable');
  });
});
