/**
 * The db lane in both modes, against the real MongoDB wire server: combined (concurrent buys of
 * one SKU share one conditional update) and single (one update per buy). Same guarantees:
 * exact, never below zero, every buyer answered with its own remaining; plus the combined mode's
 * partial-fill rule and its all-or-nothing failure.
 */
import { randomBytes } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { DbLane, type DbLaneMode } from '../src/lanes/db-lane.js';
import type { BuyOutcome } from '../src/lanes/lane.js';
import { DependencyUnavailableError } from '../src/errors.js';
import { startMongo, stopAll } from './harness/deps.js';

afterAll(stopAll);

let client: MongoClient;

beforeAll(async () => {
  client = await new MongoClient(process.env.MONGO_URL as string).connect();
});

afterAll(async () => {
  await client?.close();
});

function lane(mode: DbLaneMode, mongo: MongoClient = client): DbLane {
  return new DbLane(mongo.db(`batcher_${randomBytes(4).toString('hex')}`), 1000, mode);
}

describe.each(['combined', 'single'] as const)('db lane, %s mode', (mode) => {
  test('250 concurrent buyers of one SKU, stock 600: exactly 600 sold, each remaining distinct, never below zero', async () => {
    const db = lane(mode);
    await db.put('HOT', 600);
    const outcomes: BuyOutcome[] = [];
    await Promise.all(
      Array.from({ length: 250 }, async () => {
        for (;;) {
          const outcome = await db.tryBuy('HOT', 1);
          outcomes.push(outcome);
          if (outcome.kind !== 'sold') return;
        }
      }),
    );
    const sold = outcomes.filter((o): o is Extract<BuyOutcome, { kind: 'sold' }> => o.kind === 'sold');
    expect(sold.length).toBe(600);
    expect(new Set(sold.map((o) => o.remaining)).size).toBe(600);
    expect(Math.min(...sold.map((o) => o.remaining))).toBe(0);
    expect(outcomes.filter((o) => o.kind === 'sold_out')).toHaveLength(250);
    expect(await db.peek('HOT')).toEqual({ remaining: 0, sold: 600, initial: 600 });
  });

  test('quantities 1-5 from 250 buyers: units sold + remaining == initial, never below zero', async () => {
    const db = lane(mode);
    await db.put('QTY', 1000);
    let units = 0;
    await Promise.all(
      Array.from({ length: 250 }, async (_, i) => {
        let quantity = 1 + (i % 5);
        for (;;) {
          const outcome = await db.tryBuy('QTY', quantity);
          if (outcome.kind === 'sold') {
            expect(outcome.remaining).toBeGreaterThanOrEqual(0);
            units += quantity;
            continue;
          }
          if (outcome.kind !== 'sold_out' || outcome.remaining === 0) return;
          quantity = outcome.remaining;
        }
      }),
    );
    expect(units).toBe(1000);
    expect(await db.peek('QTY')).toEqual({ remaining: 0, sold: 1000, initial: 1000 });
  });

  test('idempotency keys inside a batch: a repeated key is answered from the document, never sold twice', async () => {
    const db = lane(mode);
    await db.put('KEYED', 100);
    const answers = await Promise.all([db.tryBuy('KEYED', 2, 'a'), db.tryBuy('KEYED', 3, 'b'), db.tryBuy('KEYED', 2, 'a'), db.tryBuy('KEYED', 3, 'b')]);
    expect(answers.every((a) => a.kind === 'sold')).toBe(true);
    expect(await db.peek('KEYED')).toMatchObject({ remaining: 95, sold: 5 });
    const again = await db.tryBuy('KEYED', 2, 'a');
    expect(again).toEqual(answers[0]);
  });
});

describe('db lane, combined mode: batches', () => {
  test('fills what fits in arrival order: a buyer that does not fit is refused with the remaining, a smaller later one is served', async () => {
    const db = lane('combined');
    await db.put('FIT', 10);
    // The first buy goes out alone; the next three queue behind it and go as one batch.
    const first = db.tryBuy('FIT', 1);
    const batch = [db.tryBuy('FIT', 5), db.tryBuy('FIT', 6), db.tryBuy('FIT', 3)];
    expect(await first).toEqual({ kind: 'sold', remaining: 9 });
    expect(await Promise.all(batch)).toEqual([
      { kind: 'sold', remaining: 4 },
      { kind: 'sold_out', remaining: 4 },
      { kind: 'sold', remaining: 1 },
    ]);
    expect(await db.peek('FIT')).toEqual({ remaining: 1, sold: 9, initial: 10 });
  });

  test('a MongoDB error fails every buyer of the batch with 503 and sells nothing', async () => {
    const name = `batcher_${randomBytes(4).toString('hex')}`;
    const db = new DbLane(client.db(name), 1000, 'combined');
    await db.put('BROKEN', 50);
    // A non-numeric `sold` makes MongoDB refuse the whole $inc: the update fails as one.
    const docs = client.db(name).collection<{ _id: string; sold: unknown }>('db_lane_stock');
    await docs.updateOne({ _id: 'BROKEN' }, { $set: { sold: 'corrupt' } });
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => db.tryBuy('BROKEN', 1)));
    expect(results.map((r) => r.status === 'rejected' && r.reason instanceof DependencyUnavailableError)).toEqual(Array(20).fill(true));
    expect((await docs.findOne({ _id: 'BROKEN' }))?.sold).toBe('corrupt');
    expect((await db.peek('BROKEN'))?.remaining).toBe(50);
  });

  test('MongoDB down: every buyer of the batch gets a fast 503', async () => {
    const mongo = await startMongo();
    const own = await new MongoClient(mongo.url, { serverSelectionTimeoutMS: 1000 }).connect();
    try {
      const db = lane('combined', own);
      await db.put('DOWN', 50);
      await mongo.stop();
      const started = Date.now();
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => db.tryBuy('DOWN', 1)));
      expect(results.map((r) => r.status === 'rejected' && r.reason instanceof DependencyUnavailableError)).toEqual(Array(20).fill(true));
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await own.close();
    }
  });
});
