/**
 * Issue 12: how often an allotments replica publishes its levels (src/cluster/allotments/
 * allotment-controller.ts, `publishDue`), watched on the real Redis channel of a real two-replica
 * cluster. While a SKU's pool is ample, a selling replica publishes that SKU's new sales at most
 * every AMPLE_PUBLISH_MS (they were sent every SYNC_INTERVAL_MS sweep, the largest cost of a
 * replica's main thread under load) — and what matters beside the rate: the figures still arrive,
 * and once the sales stop, the other replica's global Peek shows exactly what was sold.
 * An upper bound on a count of messages only (a slow machine sends fewer, never more).
 * In the same sale, how often the seller takes units from an ample pool (`takeAmple`): AMPLE_CHUNKS
 * chunks per grant, counted by the pool document's version once the sell rate is known — a chunk
 * is sized by the rate, so the count per second does not depend on the machine's speed.
 * Budget: ~20-40 s (one cluster of two replicas).
 */
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { AMPLE_CHUNKS, AMPLE_PUBLISH_MS } from '../src/cluster/allotments/allotment-controller.js';
import { FULL_EVERY_MS } from '../src/cluster/allotments/levels.js';
import { HistoryRecorder, readLevel } from './checker/history.js';
import { startMongo, startRedis, stopAll, type Dependency } from './harness/deps.js';
import { waitFor } from './harness/wait.js';
import { TestCluster, type Replica } from './support/cluster.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

afterAll(stopAll);

let mongo: Dependency;
let redis: Dependency;

beforeAll(async () => {
  mongo = await startMongo();
  redis = await startRedis();
});

interface LevelsMessage {
  t: 'levels';
  host: string;
  full: boolean;
  levels: Array<[number, string, number]>;
}

const SELLING_MS = 3000;
/** When the sell rate is known and grants are rate-sized (the first ones are MIN_CHUNK units). */
const STEADY_FROM_MS = 1000;
const CHUNK_MS = 150;

/** The pool document's version: every change to it (a grant, a give-back, an admin set) adds one. */
async function poolVersion(database: string, id: string): Promise<number> {
  const client = new MongoClient(mongo.url);
  try {
    const doc = await client.db(database).collection<{ _id: string; v: number }>('allotments').findOne({ _id: id });
    return doc?.v ?? NaN;
  } finally {
    await client.close();
  }
}
const BUYERS = 8;

test('while the pool is ample, a selling replica publishes a SKU’s sales at most every AMPLE_PUBLISH_MS and takes AMPLE_CHUNKS chunks per grant, and Peek elsewhere still ends exact', async () => {
  await redis.command('FLUSHALL');
  const cluster = await TestCluster.start(2, { CLUSTER_MODE: 'allotments', MONGO_URL: mongo.url, REDIS_URL: redis.url, WORKERS: '1', ALLOTMENT_CHUNK_MS: String(CHUNK_MS) }, () => ({}), 'ready', 60_000);
  const listener = new Redis(redis.url);
  try {
    const [seller, other] = cluster.replicas as [Replica, Replica];
    const recorder = new HistoryRecorder({ requestTimeoutMs: 5000, adminToken: TEST_ADMIN_TOKEN });
    const STOCK = 1_000_000;
    expect((await recorder.put({ id: seller.id, url: cluster.url(seller) }, 'AMPLE', STOCK)).status).toBe(201);

    // Every level message of the seller that carries AMPLE, as it arrives; the cluster's channel is named after its database.
    const heard: Array<{ full: boolean; sold: number }> = [];
    listener.on('message', (_channel: string, text: string) => {
      const message = JSON.parse(text) as LevelsMessage | { t: 'release' };
      if (message.t !== 'levels' || message.host !== seller.id) return;
      for (const [lane, sku, sold] of message.levels) if (lane === 0 && sku === 'AMPLE') heard.push({ full: message.full, sold });
    });
    await listener.subscribe(`superstock:${cluster.database}:allotments`);

    let sold = 0;
    const started = performance.now();
    // The pool's version from STEADY_FROM_MS into the sale until the sales stop (read again below).
    const steadyGrants = (async () => {
      await new Promise((r) => setTimeout(r, STEADY_FROM_MS));
      const from = await poolVersion(cluster.database, 'atomic/AMPLE');
      const fromAt = performance.now();
      while (performance.now() - started < SELLING_MS) await new Promise((r) => setTimeout(r, 10));
      return { grants: (await poolVersion(cluster.database, 'atomic/AMPLE')) - from, windowMs: performance.now() - fromAt };
    })();
    await Promise.all(
      Array.from({ length: BUYERS }, async () => {
        while (performance.now() - started < SELLING_MS) {
          const res = await fetch(`${cluster.url(seller)}/v2/lanes/atomic/skus/AMPLE/buy`, { method: 'POST', signal: AbortSignal.timeout(5000) });
          await res.arrayBuffer();
          if (res.status === 200) sold++;
        }
      }),
    );
    const sellingMs = performance.now() - started;
    expect(sold).toBeGreaterThan(BUYERS); // it did sell throughout
    const { grants, windowMs } = await steadyGrants;
    // Grants while the pool is ample: AMPLE_CHUNKS chunks each, so about one per AMPLE_CHUNKS ×
    // ALLOTMENT_CHUNK_MS of sales, whatever the sell rate (a chunk is sized by it); one chunk per
    // grant made about four times as many. Counted after the sell rate is known (the first chunks
    // are MIN_CHUNK-sized), with slack for a rate that moves on a busy machine.
    expect(grants).toBeGreaterThan(0);
    expect(grants).toBeLessThanOrEqual(Math.ceil((1.5 * windowMs) / (AMPLE_CHUNKS * CHUNK_MS)) + 2);

    // Once the sales stop, the other replica's global Peek counts exactly what was sold (the last
    // figures go out within AMPLE_PUBLISH_MS, and again in every full round).
    await waitFor(
      async () => {
        const level = await readLevel({ id: other.id, url: cluster.url(other) }, 'atomic', 'AMPLE');
        return level !== null && level.sold === sold && level.remaining === STOCK - sold;
      },
      { timeoutMs: 10_000, intervalMs: 50, message: `the other replica's Peek shows the ${sold} units sold` },
    );
    expect(heard.at(-1)?.sold).toBe(sold);

    // The rate: the sales went out as they changed (delta messages), but not every sweep. Before,
    // a selling replica sent one every SYNC_INTERVAL_MS (20 ms): about 150 in these 3 s.
    const deltas = heard.filter((h) => !h.full).length;
    expect(deltas).toBeGreaterThan(0);
    expect(deltas).toBeLessThanOrEqual(Math.ceil(sellingMs / AMPLE_PUBLISH_MS) + 2);
    // Full rounds (everything, the replica's sign of life) keep their own period.
    expect(heard.filter((h) => h.full).length).toBeLessThanOrEqual(Math.ceil((performance.now() - started) / FULL_EVERY_MS) + 2);
  } finally {
    listener.disconnect();
    await cluster.stop();
  }
}, 120_000);
