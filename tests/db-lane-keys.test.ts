/**
 * The db lane finds a buyer's idempotency key for its whole TTL, however many keyed sales follow
 * (issue 10, item 1, left open at stop 8: the SKU's document kept only its last 10,000 keyed sales,
 * and a retry of an older key sold again). Here more keyed sales than that old window go to one
 * SKU, then the first keys are retried: each must be answered as the sale it was, and nothing
 * sold twice. The lane itself over the real MongoDB wire server (the HTTP path is the same code),
 * with its document window at 400 keys instead of 10,000 so that 2.5 times the window churns in
 * seconds: on this shared machine the wire server took about 50 keyed sales a second, so churning
 * past 10,000 would take minutes. (The old code with its window set to 400 fails this test: the
 * first key sells again.) Budget: ~30 s.
 */
import { randomBytes } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { DB_LANE_COLLECTION, DbLane, type DbStockDocument } from '../src/lanes/db-lane.js';
import { ServiceError } from '../src/errors.js';

const WINDOW = 400;
const SALES = Math.round(WINDOW * 2.5);
const CONCURRENCY = 32;

let client: MongoClient;

beforeAll(async () => {
  client = new MongoClient(process.env.MONGO_URL as string);
  await client.connect();
});

afterAll(async () => {
  await client.close();
});

test(`${SALES} keyed sales of one SKU, then its first keys retried: answered as sold, never sold again`, async () => {
  const db = client.db(`dbkeys_${randomBytes(4).toString('hex')}`);
  const lane = new DbLane(db, 5000, 'combined', Number.POSITIVE_INFINITY, 3600_000, WINDOW);
  await lane.put('HOT', 1_000_000);
  const remainingOf = new Map<string, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < SALES) {
        const key = `k${next++}`;
        const outcome = await lane.tryBuy('HOT', 1, key);
        if (outcome.kind !== 'sold') throw new Error(`${key}: ${outcome.kind}`);
        remainingOf.set(key, outcome.remaining);
      }
    }),
  );
  expect(await lane.peek('HOT')).toEqual({ remaining: 1_000_000 - SALES, sold: SALES, initial: 1_000_000 });

  for (const key of ['k0', 'k1', 'k2', `k${SALES - WINDOW - 1}`, `k${SALES >> 1}`, `k${SALES - 1}`]) {
    expect({ key, outcome: await lane.tryBuy('HOT', 1, key) }).toEqual({ key, outcome: { kind: 'sold', remaining: remainingOf.get(key) } });
  }
  // The same key for another quantity is refused, from the moved keys too.
  await expect(lane.tryBuy('HOT', 2, 'k3')).rejects.toEqual(new ServiceError('idempotency_key_reused'));
  expect(await lane.peek('HOT')).toEqual({ remaining: 1_000_000 - SALES, sold: SALES, initial: 1_000_000 });
  // The document stays small: most keys live in the keys collection.
  const doc = await db.collection<DbStockDocument>(DB_LANE_COLLECTION).findOne({ _id: 'HOT' });
  expect(doc?.keys?.length ?? 0).toBeLessThan(WINDOW);
}, 120_000);
