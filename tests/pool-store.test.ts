/**
 * Issue 12: the allotments store of record (`PoolStore` in src/cluster/allotments/pool-store.ts)
 * against the real MongoDB wire server — the one-round-trip grant (`takeIfAmple`) beside the
 * read-and-swap path it shortens. What matters: it grants only into an allotment that is open under
 * the caller's epoch and only while the pool holds the caller's bound (otherwise nothing changes
 * and the caller takes the long way), and, raced against the other paths, the document's
 * conservation law `initial == pool + settled + Σ granted` holds with every grant accounted for.
 * Budget: ~5 s.
 */
import { randomBytes } from 'node:crypto';
import { MongoClient, type Db } from 'mongodb';
import { PoolStore, hostField, type PoolDocument } from '../src/cluster/allotments/pool-store.js';

const TIMEOUT_MS = 5000;

const conserved = (doc: PoolDocument): boolean => doc.initial === doc.pool + doc.settled + Object.values(doc.allot).reduce((sum, a) => sum + a.granted, 0);

describe('the allotments pool store', () => {
  let client: MongoClient;
  let db: Db;
  let store: PoolStore;

  beforeAll(async () => {
    client = await new MongoClient(process.env.MONGO_URL as string).connect();
  });

  beforeEach(() => {
    db = client.db(`pool_store_${randomBytes(4).toString('hex')}`);
    store = new PoolStore(db, TIMEOUT_MS);
  });

  afterEach(async () => {
    await db.dropDatabase();
  });

  afterAll(async () => {
    await client?.close();
  });

  const read = async (): Promise<PoolDocument> => {
    const doc = await store.read('atomic', 'HOT');
    if (!doc) throw new Error('the SKU is gone');
    return doc;
  };

  test('one conditional update grants into an open allotment, and answers with the document as it was before', async () => {
    await store.create('atomic', 'HOT', 1000);
    // The first grant of a term opens the allotment (the long way: read, size, swap).
    expect(await store.take('atomic', 'HOT', 'a', 3, () => 10)).toMatchObject({ granted: 10 });
    const before = await read();

    const taken = await store.takeIfAmple('atomic', 'HOT', 'a', 3, 40, 240);

    expect(taken?.granted).toBe(40);
    expect(taken?.doc).toEqual(before);
    const after = await read();
    expect(after.pool).toBe(950);
    expect(after.allot[hostField('a')]).toEqual({ epoch: 3, granted: 50 });
    expect(after.v).toBe(before.v + 1); // the long way's compare-and-swap sees that it changed
    expect(conserved(after)).toBe(true);
  });

  test('nothing changes unless the allotment is open under that epoch and the pool holds the bound', async () => {
    await store.create('atomic', 'HOT', 1000);
    // No allotment yet: the first grant of a term goes the long way.
    expect(await store.takeIfAmple('atomic', 'HOT', 'a', 1, 10, 60)).toBeNull();
    await store.take('atomic', 'HOT', 'a', 1, () => 10);
    await store.take('atomic', 'HOT', 'b', 1, () => 10);
    // Another epoch's allotment (an earlier term, still to be closed; or a later one).
    expect(await store.takeIfAmple('atomic', 'HOT', 'a', 2, 10, 60)).toBeNull();
    // A pool below the caller's bound (the fair share would cut the chunk): decided on a fresh read instead.
    expect(await store.takeIfAmple('atomic', 'HOT', 'a', 1, 10, 981)).toBeNull();
    // An allotment closed (its holder fenced, its sales settled) cannot be reopened this way.
    expect(await store.close('atomic', 'HOT', 'b', 2, async () => 4)).toBe(6);
    expect(await store.takeIfAmple('atomic', 'HOT', 'b', 1, 10, 60)).toBeNull();
    expect(await store.take('atomic', 'HOT', 'b', 1, () => 10)).toBe('closed');
    const doc = await read();
    expect(doc.pool).toBe(986);
    expect(doc.settled).toBe(4);
    expect(doc.allot).toEqual({ [hostField('a')]: { epoch: 1, granted: 10 } });
    expect(conserved(doc)).toBe(true);
    // A SKU that does not exist.
    expect(await store.takeIfAmple('atomic', 'NONE', 'a', 1, 10, 60)).toBeNull();
  });

  test('raced against the read-and-swap grants and give-backs of three replicas, every unit is accounted for', async () => {
    const stock = 5000;
    await store.create('atomic', 'HOT', stock);
    const hosts = ['a', 'b', 'c'];
    for (const host of hosts) await store.take('atomic', 'HOT', host, 1, () => 1);
    const movedBy = new Map(hosts.map((h) => [h, 1]));
    await Promise.all(
      hosts.map(async (host, index) => {
        for (let round = 0; round < 30; round++) {
          const units = 5 + ((round + index) % 7);
          if (round % 3 === 2) {
            if (await store.giveBack('atomic', 'HOT', host, 1, 2)) movedBy.set(host, (movedBy.get(host) ?? 0) - 2);
            continue;
          }
          const taken = round % 3 === 0 ? await store.takeIfAmple('atomic', 'HOT', host, 1, units, 6 * units) : await store.take('atomic', 'HOT', host, 1, () => units);
          if (taken && taken !== 'closed') movedBy.set(host, (movedBy.get(host) ?? 0) + taken.granted);
        }
      }),
    );
    const doc = await read();
    expect(conserved(doc)).toBe(true);
    for (const host of hosts) expect(doc.allot[hostField(host)]?.granted).toBe(movedBy.get(host));
    expect(doc.pool).toBe(stock - [...movedBy.values()].reduce((a, b) => a + b, 0));
  });
});
