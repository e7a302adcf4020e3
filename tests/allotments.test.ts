/**
 * CLUSTER_MODE=allotments on three real replicas (a private Redis and MongoDB wire server): every
 * replica sells its own allotment of the in-memory lanes' stock, commits to its own fenced ledger
 * stream, and the pool in MongoDB is the store of record.
 *
 * - Uneven demand: the other replicas hold units, then every buyer goes to one replica; the sale
 *   ends with every unit sold (no undersell), none oversold, every acknowledged sale in a ledger
 *   stream once, and the global Peek on every replica equal to what the ledgers say — judged by
 *   the history checker.
 * - A replica holding units is paused (SIGSTOP): its units are reclaimed once its lease expired and
 *   its stream is fenced and sealed, the others sell them; its old epoch's writes are refused; woken
 *   up it begins a new term, and every replica's Peek converges to the ledgers' truth.
 * - A replica holding units is killed: the same, and a restarted one closes its own old allotment.
 * - PUT of an existing SKU and reset while every replica sells it: each closes the allotments
 *   handed out before it (fencing their holders); the checker judges the history.
 * - A replica's ledger stream does not grow without end: a restarted replica drops its earlier
 *   terms' batches once past the idempotency TTL, keeps its open term's and the tombstones, and
 *   its counts stay exact.
 *
 * Budget: ~70-100 s on a quiet two-core machine (four clusters of three replicas, one of one).
 */
import { MongoClient } from 'mongodb';
import { MEMORY_LANES } from '../src/config.js';
import { Fence, replicaStream } from '../src/cluster/ledger/ledger.js';
import { checkHistory, describeResult, stateKey } from './checker/checker.js';
import { HistoryRecorder, readLevel, type Level, type Target } from './checker/history.js';
import { Workload, seededRandom } from './checker/workload.js';
import { startMongo, startRedis, stopAll, type Dependency } from './harness/deps.js';
import { waitFor } from './harness/wait.js';
import { TestCluster, metricsText, type Replica } from './support/cluster.js';
import { sampleOf } from './support/exposition.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

afterAll(stopAll);

const LANES = MEMORY_LANES;
let mongo: Dependency;
let redis: Dependency;

beforeAll(async () => {
  mongo = await startMongo();
  redis = await startRedis();
});

async function startAllotments(): Promise<TestCluster> {
  await redis.command('FLUSHALL');
  return TestCluster.start(
    3,
    {
      CLUSTER_MODE: 'allotments',
      MONGO_URL: mongo.url,
      REDIS_URL: redis.url,
      DEPENDENCY_TIMEOUT_MS: '1000',
      LEASE_DURATION_MS: '2000',
      RENEW_DEADLINE_MS: '1200',
      RETRY_PERIOD_MS: '300',
      ALLOTMENT_IDLE_MS: '60000', // units stay where they are unless asked for: the test is about asking
    },
    () => ({}),
    'ready',
    60_000,
  );
}

const targetOf = (cluster: TestCluster, r: Replica): Target => ({ id: r.id, url: cluster.url(r) });

interface LedgerBuy {
  lane: string;
  sku: string;
  q: number;
  key?: string;
}

interface StoredBatch {
  stream: string;
  epoch: number;
  tombstone?: true;
  entries?: Array<LedgerBuy & { op: string }>;
}

/** Every batch and tombstone in the replicas' ledger streams (they share one collection). */
async function storedBatches(database: string): Promise<StoredBatch[]> {
  const client = new MongoClient(mongo.url);
  try {
    return await client.db(database).collection<StoredBatch>('allotment_ledger').find({}).toArray();
  } finally {
    await client.close();
  }
}

/** Every buy in every replica's ledger stream (tombstones hold no entries). */
async function ledgerBuys(database: string): Promise<LedgerBuy[]> {
  return (await storedBatches(database)).flatMap((b) => b.entries ?? []).filter((e) => e.op === 'buy');
}

async function levelsOn(cluster: TestCluster, r: Replica, sku: string): Promise<Map<string, Level | null>> {
  const levels = new Map<string, Level | null>();
  for (const lane of LANES) levels.set(stateKey(lane, sku), await readLevel(targetOf(cluster, r), lane, sku));
  return levels;
}

/** Wait until every live replica's global Peek shows what the ledgers say was sold, on every lane. */
async function convergeToLedger(cluster: TestCluster, sku: string, initial: number, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => {
      const buys = await ledgerBuys(cluster.database);
      for (const r of cluster.live()) {
        const levels = await levelsOn(cluster, r, sku);
        for (const lane of LANES) {
          const sold = buys.filter((b) => b.lane === lane && b.sku === sku).reduce((sum, b) => sum + b.q, 0);
          const level = levels.get(stateKey(lane, sku));
          if (!level || level.sold !== sold || level.initial !== initial || level.remaining !== initial - sold) return false;
        }
      }
      return true;
    },
    { timeoutMs, intervalMs: 200, message: `every replica's Peek of ${sku} equals the ledgers` },
  );
}

/**
 * Buyers on `target` only, on every memory lane, until each has been told sold out; keyed buys
 * whose outcome was unknown or refused with a 503 are retried with their key, as a client would.
 */
async function buyUntilSoldOut(recorder: HistoryRecorder, target: Target, sku: string, buyersPerLane: number, deadlineMs: number): Promise<void> {
  let counter = 0;
  const deadline = Date.now() + deadlineMs;
  await Promise.all(
    LANES.flatMap((lane) =>
      Array.from({ length: buyersPerLane }, async () => {
        for (;;) {
          if (Date.now() > deadline) throw new Error(`${lane}: not sold out within ${deadlineMs} ms`);
          const key = `${lane}-${target.id}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;
          let record = await recorder.buy(target, lane, sku, 1, key);
          while (record.status === null || record.status >= 500) {
            await new Promise((r) => setTimeout(r, 50));
            record = await recorder.buy(target, lane, sku, 1, key);
          }
          if (record.status === 409 && (record.body as { error?: { code?: string } }).error?.code === 'sold_out') return;
        }
      }),
    ),
  );
}

async function sampleFrom(r: Replica, series: string): Promise<number> {
  return sampleOf(await metricsText(r), series);
}

describe('allotments mode: every replica sells', () => {
  test('uneven demand: others hold units, all buyers on one replica, every unit sold once', async () => {
    const cluster = await startAllotments();
    try {
      const [hot, ...others] = cluster.replicas as [Replica, Replica, Replica];
      const recorder = new HistoryRecorder({ requestTimeoutMs: 5000, adminToken: TEST_ADMIN_TOKEN });
      const STOCK = 200;
      expect((await recorder.put(targetOf(cluster, hot), 'HOT', STOCK)).status).toBe(201);
      // The other replicas sell a little first, so they hold chunks of the pool.
      for (const r of others) for (const lane of LANES) for (let i = 0; i < 3; i++) expect((await recorder.buy(targetOf(cluster, r), lane, 'HOT', 1, `warm-${r.id}-${lane}-${i}`)).status).toBe(200);
      for (const r of others) expect(await sampleFrom(r, 'superstock_allotment_units_granted_total{lane="atomic"}')).toBeGreaterThan(3);

      await buyUntilSoldOut(recorder, targetOf(cluster, hot), 'HOT', 4, 60_000);

      await convergeToLedger(cluster, 'HOT', STOCK);
      const buys = await ledgerBuys(cluster.database);
      for (const lane of LANES) {
        const mine = buys.filter((b) => b.lane === lane && b.sku === 'HOT');
        expect(mine.reduce((sum, b) => sum + b.q, 0)).toBe(STOCK); // every unit sold, none twice
        const keys = mine.map((b) => b.key);
        expect(new Set(keys).size).toBe(keys.length);
      }
      // The others handed their spare units back when asked.
      let returned = 0;
      for (const r of others) returned += await sampleFrom(r, 'superstock_allotment_units_returned_total{reason="asked"}');
      expect(returned).toBeGreaterThan(0);

      const replicas = new Map<string, Map<string, Level | null>>();
      for (const r of cluster.live()) replicas.set(r.id, await levelsOn(cluster, r, 'HOT'));
      const ledgerKeys = new Map<string, string[]>(LANES.map((lane) => [lane, buys.filter((b) => b.lane === lane && b.key !== undefined).map((b) => b.key as string)]));
      const result = checkHistory(recorder.records, { replicas, authority: hot.id, ledgerKeys }, { lanes: LANES, skus: ['HOT'] });
      if (!result.valid) console.log(describeResult(result));
      expect(result.violations).toEqual([]);
      // Peek's staleness is exported.
      expect(await sampleFrom(hot, 'superstock_allotment_peek_staleness_seconds')).toBeGreaterThanOrEqual(0);
    } finally {
      await cluster.stop();
    }
  }, 150_000);

  test('a paused replica holding units: reclaimed after its lease and fence, its old epoch refused, Peek converges', async () => {
    const cluster = await startAllotments();
    try {
      const [seller, paused] = cluster.replicas as [Replica, Replica, Replica];
      const recorder = new HistoryRecorder({ requestTimeoutMs: 5000, adminToken: TEST_ADMIN_TOKEN });
      const STOCK = 120;
      expect((await recorder.put(targetOf(cluster, seller), 'PAUSE', STOCK)).status).toBe(201);
      for (const lane of LANES) for (let i = 0; i < 2; i++) expect((await recorder.buy(targetOf(cluster, paused), lane, 'PAUSE', 1, `p-${lane}-${i}`)).status).toBe(200);
      const pausedEpoch = await sampleFrom(paused, 'superstock_epoch');
      const pid = paused.service?.pid as number;
      process.kill(pid, 'SIGSTOP');
      let woken = false;
      try {
        // Buyers on another replica get every unit, the paused replica's included once reclaimed.
        await buyUntilSoldOut(recorder, targetOf(cluster, seller), 'PAUSE', 2, 60_000);
        expect(await sampleFrom(seller, 'superstock_allotment_reclaims_total') + (await sampleFrom(cluster.replicas[2] as Replica, 'superstock_allotment_reclaims_total'))).toBeGreaterThanOrEqual(1);
        // The paused replica's epoch is fenced: nothing can be reserved under it any more.
        const client = new MongoClient(mongo.url);
        try {
          const stream = new Fence(client.db(cluster.database), 2000, replicaStream(paused.id));
          expect(await stream.reserve(pausedEpoch)).toBeNull();
          expect(await stream.beat(pausedEpoch)).toBe(false);
        } finally {
          await client.close();
        }
        process.kill(pid, 'SIGCONT');
        woken = true;
        // Woken, it finds itself fenced and begins a new term.
        await waitFor(async () => (await sampleFrom(paused, 'superstock_epoch')) > pausedEpoch, { timeoutMs: 20_000, intervalMs: 100, message: 'the woken replica begins a new term' });
      } finally {
        if (!woken) process.kill(pid, 'SIGCONT');
      }
      await convergeToLedger(cluster, 'PAUSE', STOCK);
      const buys = await ledgerBuys(cluster.database);
      for (const lane of LANES) expect(buys.filter((b) => b.lane === lane && b.sku === 'PAUSE').reduce((sum, b) => sum + b.q, 0)).toBe(STOCK);
    } finally {
      await cluster.stop();
    }
  }, 150_000);

  test('PUT and reset while every replica sells: the history checks out and every replica agrees', async () => {
    const cluster = await startAllotments();
    try {
      const recorder = new HistoryRecorder({ requestTimeoutMs: 5000, adminToken: TEST_ADMIN_TOKEN });
      const first = cluster.replicas[0] as Replica;
      expect((await recorder.put(targetOf(cluster, first), 'ADM', 80)).status).toBe(201);
      const workload = new Workload({
        recorder,
        lanes: LANES,
        skus: [{ sku: 'ADM', stock: 80 }],
        buyersPerLane: 2,
        keyedShare: 0.7,
        adminIntervalMs: 400,
        random: seededRandom(4242),
        targets: () => cluster.live().map((r) => targetOf(cluster, r)),
        backoffMs: 30,
        resettingShare: 0.6,
      });
      const settingCalls = () => recorder.records.filter((r) => (r.type === 'put' || r.type === 'reset') && r.status !== null && r.status < 300).length;
      const acked = () => recorder.records.filter((r) => r.type === 'buy' && r.status === 200).length;
      workload.start();
      try {
        await waitFor(() => settingCalls() >= 5 && acked() >= 150, { timeoutMs: 60_000, intervalMs: 100, message: '5 PUTs or resets and 150 sales acknowledged' });
      } finally {
        await workload.stop();
      }
      const { left } = await workload.resolveUnknowns(20_000);
      expect(left).toBe(0);
      let replicas = new Map<string, Map<string, Level | null>>();
      await waitFor(
        async () => {
          replicas = new Map();
          for (const r of cluster.live()) replicas.set(r.id, await levelsOn(cluster, r, 'ADM'));
          const views = [...replicas.values()].map((levels) => JSON.stringify([...levels]));
          return views.every((view) => view === views[0]);
        },
        { timeoutMs: 15_000, intervalMs: 200, message: 'every replica shows the same levels' },
      );
      const result = checkHistory(recorder.records, { replicas, authority: first.id }, { lanes: LANES, skus: ['ADM'] });
      if (!result.valid) console.log(describeResult(result));
      expect(result.violations).toEqual([]);
    } finally {
      await cluster.stop();
    }
  }, 150_000);

  test('a restarted replica drops its earlier terms\' batches past the idempotency TTL; its open term\'s, the tombstones and the counts stay', async () => {
    await redis.command('FLUSHALL');
    const cluster = await TestCluster.start(1, { CLUSTER_MODE: 'allotments', MONGO_URL: mongo.url, REDIS_URL: redis.url, DEPENDENCY_TIMEOUT_MS: '1000', IDEMPOTENCY_TTL_MS: '1000' }, () => ({}), 'ready', 60_000);
    try {
      const [replica] = cluster.replicas as [Replica];
      const recorder = new HistoryRecorder({ requestTimeoutMs: 5000, adminToken: TEST_ADMIN_TOKEN });
      const target = () => targetOf(cluster, replica);
      expect((await recorder.put(target(), 'TRIM', 100)).status).toBe(201);
      for (const lane of LANES) for (let i = 0; i < 3; i++) expect((await recorder.buy(target(), lane, 'TRIM', 1, `trim-${lane}-${i}`)).status).toBe(200);
      const firstTerm = await storedBatches(cluster.database);
      const oldEpoch = Math.max(...firstTerm.filter((b) => !b.tombstone).map((b) => b.epoch));
      expect(firstTerm.filter((b) => !b.tombstone && b.epoch === oldEpoch).length).toBeGreaterThan(0);

      await replica.service?.stop();
      await cluster.startReplica(replica);
      for (const lane of LANES) expect((await recorder.buy(target(), lane, 'TRIM', 1, `trim-${lane}-last`)).status).toBe(200);
      // The first term's batches go (at the new term's start, or the sweep a TTL later); the new term's stay.
      await waitFor(async () => (await storedBatches(cluster.database)).every((b) => b.tombstone || b.epoch > oldEpoch), {
        timeoutMs: 15_000,
        intervalMs: 200,
        message: 'the first term\'s batches dropped',
      });
      const after = await storedBatches(cluster.database);
      expect(after.filter((b) => !b.tombstone).length).toBeGreaterThan(0);
      for (const tombstone of firstTerm.filter((b) => b.tombstone)) expect(after).toContainEqual(tombstone);
      // What the dropped batches sold was settled into the pool when the first term's allotment closed.
      for (const lane of LANES) expect(await readLevel(target(), lane, 'TRIM')).toEqual({ remaining: 96, sold: 4, initial: 100 });
      // And a third term, closing the second from its batches, still counts every sale once.
      await replica.service?.stop();
      await cluster.startReplica(replica);
      for (const lane of LANES) expect(await readLevel(target(), lane, 'TRIM')).toEqual({ remaining: 96, sold: 4, initial: 100 });
    } finally {
      await cluster.stop();
    }
  }, 90_000);

  test('a killed replica holding units: reclaimed; restarted, it sells again from a new term', async () => {
    const cluster = await startAllotments();
    try {
      const [seller, killed] = cluster.replicas as [Replica, Replica, Replica];
      const recorder = new HistoryRecorder({ requestTimeoutMs: 5000, adminToken: TEST_ADMIN_TOKEN });
      const STOCK = 300;
      expect((await recorder.put(targetOf(cluster, seller), 'KILL', STOCK)).status).toBe(201);
      for (const lane of LANES) for (let i = 0; i < 2; i++) expect((await recorder.buy(targetOf(cluster, killed), lane, 'KILL', 1, `k-${lane}-${i}`)).status).toBe(200);
      killed.service?.kill();
      killed.service = null;
      // Its unsold units come back once its lease expired: Peek shows exactly what the ledgers sold.
      await waitFor(async () => (await sampleFrom(seller, 'superstock_allotment_reclaims_total')) + (await sampleFrom(cluster.replicas[2] as Replica, 'superstock_allotment_reclaims_total')) >= 1, {
        timeoutMs: 20_000,
        intervalMs: 200,
        message: 'a live replica reclaims the killed one',
      });
      await convergeToLedger(cluster, 'KILL', STOCK);
      await cluster.startReplica(killed);
      for (const lane of LANES) expect((await recorder.buy(targetOf(cluster, killed), lane, 'KILL', 1, `k2-${lane}`)).status).toBe(200);
      await convergeToLedger(cluster, 'KILL', STOCK);
      const buys = await ledgerBuys(cluster.database);
      for (const lane of LANES) expect(buys.filter((b) => b.lane === lane && b.sku === 'KILL').reduce((sum, b) => sum + b.q, 0)).toBe(3);
    } finally {
      await cluster.stop();
    }
  }, 150_000);
});
