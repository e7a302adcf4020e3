/**
 * Issue 13: the ledger's batch inserts sent as bare `insert` commands on a socket of their own
 * (`DirectInserts`, src/cluster/ledger/direct-inserts.ts), against the real MongoDB wire server.
 * What must hold is what held through the driver: the batch document lands as the driver would
 * have written it; a duplicate `_id` (a successor's tombstone) is told apart and makes the batch
 * fenced; pipelined inserts are each answered with their own outcome; and a link that goes
 * silent or is cut fails every insert still out on it within the bound — an outcome the group
 * commit then settles with a tombstone, never a 200 — after which the next insert connects afresh.
 * Budget: ~5 s.
 */
import { randomBytes } from 'node:crypto';
import { MongoClient, type Db } from 'mongodb';
import { DependencyUnavailableError, OutcomeUnknownError } from '../src/errors.js';
import { DirectInserts, directInsertTarget, insertCommand } from '../src/cluster/ledger/direct-inserts.js';
import { Fence, FencedError, GroupCommit, PRIMARY_LEDGER, batchId, replicaStream, type BatchDocument, type LedgerEntry } from '../src/cluster/ledger/ledger.js';
import { DEFAULT_WRITE_CONCERN } from '../src/mongo.js';
import { startTcpProxy } from './harness/tcp-proxy.js';
import { waitFor } from './harness/wait.js';

const TIMEOUT_MS = 2000;
const NOT_DURING_THE_TEST = 600_000;
const mongoPort = () => Number(new URL(process.env.MONGO_URL as string).port || 27017);

describe('which MONGO_URL may take direct inserts', () => {
  test.each([
    ['mongodb://127.0.0.1:27017/', { host: '127.0.0.1', port: 27017 }],
    ['mongodb://mongo', { host: 'mongo', port: 27017 }],
    ['mongodb://superstock-mongodb:27017/superstock', { host: 'superstock-mongodb', port: 27017 }],
    ['mongodb://[::1]:4000/', { host: '::1', port: 4000 }],
  ])('%s: one host, nothing else → direct', (url, target) => {
    expect(directInsertTarget(url)).toEqual(target);
  });

  test.each([
    'mongodb://user:secret@127.0.0.1:27017/',
    'mongodb://a:27017,b:27017/',
    'mongodb+srv://cluster.example.com/',
    'mongodb://127.0.0.1:27017/?tls=true',
    'mongodb://127.0.0.1:27017/?replicaSet=rs0',
    'mongodb://127.0.0.1:99999/',
  ])('%s: credentials, several hosts, SRV or options → the driver', (url) => {
    expect(directInsertTarget(url)).toBeNull();
  });
});

test('the command is the driver’s insertOne, with the configured write concern', () => {
  const document = { _id: '1:1', epoch: 1, seq: 1 };
  expect(insertCommand('db', 'ledger', document, DEFAULT_WRITE_CONCERN)).toEqual({ insert: 'ledger', documents: [document], ordered: true, writeConcern: { w: 'majority', j: true }, $db: 'db' });
  expect(insertCommand('db', 'ledger', document, { w: 1, journal: false }).writeConcern).toEqual({ w: 1, j: false });
});

describe('direct ledger inserts against the wire server', () => {
  let client: MongoClient;
  let db: Db;
  const opened: DirectInserts[] = [];
  const direct = (port = mongoPort(), timeoutMs = TIMEOUT_MS): DirectInserts => {
    const inserts = new DirectInserts({ host: '127.0.0.1', port }, DEFAULT_WRITE_CONCERN, timeoutMs);
    opened.push(inserts);
    return inserts;
  };

  beforeAll(async () => {
    client = await new MongoClient(process.env.MONGO_URL as string).connect();
  });

  beforeEach(() => {
    db = client.db(`direct_inserts_${randomBytes(4).toString('hex')}`);
  });

  afterEach(async () => {
    for (const inserts of opened.splice(0)) inserts.close();
    await db.dropDatabase();
  });

  afterAll(async () => {
    await client?.close();
  });

  const ledger = () => db.collection<BatchDocument>('ledger');

  test('a batch lands exactly as through the driver; a taken number is fenced, and so is a sealed one', async () => {
    const entries: LedgerEntry[] = [
      { op: 'buy', lane: 'atomic', sku: 'HOT', q: 3, rem: 97 },
      { op: 'buy', lane: 'lock', sku: 'HOT', q: 1, rem: 9, key: 'k-1' },
      { op: 'put', lane: 'signal', sku: 'NEW', stock: 5 },
    ];
    const viaDriver = new Fence(db, TIMEOUT_MS);
    const viaDirect = new Fence(db, TIMEOUT_MS, PRIMARY_LEDGER, direct());
    const epoch = await viaDriver.beginTerm('me');
    const first = (await viaDriver.reserve(epoch, 3)) as number;
    expect(await viaDriver.write(epoch, first, entries)).toBe('written');
    expect(await viaDirect.write(epoch, first + 1, entries)).toBe('written');
    const [driverDoc, directDoc] = await ledger().find({}).sort({ seq: 1 }).toArray();
    expect(directDoc?.at).toBeInstanceOf(Date);
    const { _id: _a, seq: _s, at: _t, ...driverRest } = driverDoc as BatchDocument;
    const { _id: _b, seq: _u, at: _v, ...directRest } = directDoc as BatchDocument;
    expect(directRest).toEqual(driverRest);
    expect(directDoc).toMatchObject({ _id: batchId(epoch, first + 1), epoch, seq: first + 1, entries });
    // The number is taken: the insert is refused, and the batch counts as fenced, not written.
    expect(await viaDirect.write(epoch, first, entries)).toBe('fenced');
    // A successor seals the third number before the old primary's insert arrives: fenced too.
    const successor = new Fence(db, TIMEOUT_MS);
    await successor.beginTerm('successor');
    await successor.seal(epoch + 1);
    expect(await viaDirect.write(epoch, first + 2, entries)).toBe('fenced');
    expect((await ledger().findOne({ _id: batchId(epoch, first + 2) }))?.tombstone).toBe(true);
  });

  test('a replica’s stream: the batch carries its stream and goes to the allotment ledger', async () => {
    const stream = replicaStream('replica-a');
    const fence = new Fence(db, TIMEOUT_MS, stream, direct());
    const epoch = await fence.beginTerm('replica-a');
    const seq = (await fence.reserve(epoch)) as number;
    expect(await fence.write(epoch, seq, [{ op: 'buy', lane: 'atomic', sku: 'HOT', q: 1, rem: 1 }])).toBe('written');
    expect(await db.collection<BatchDocument>(stream.collection).findOne({ _id: `replica-a/${batchId(epoch, seq)}` })).toMatchObject({ stream: 'replica-a', epoch, seq });
  });

  test('many inserts out at once on the one socket: each gets its own answer', async () => {
    const inserts = direct();
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, (_, i) => inserts.insert(db.databaseName, 'ledger', { _id: `1:${i % 150}`, epoch: 1, seq: i % 150 })),
    );
    expect(outcomes.filter((o) => o === 'inserted')).toHaveLength(150);
    expect(outcomes.slice(150).every((o) => o === 'duplicate')).toBe(true);
    expect(await ledger().countDocuments()).toBe(150);
  });

  test('a silent link: every insert out fails within the bound; after healing, the next insert connects afresh', async () => {
    const proxy = await startTcpProxy(mongoPort());
    try {
      const inserts = direct(proxy.port, 300);
      expect(await inserts.insert(db.databaseName, 'ledger', { _id: 'before' })).toBe('inserted');
      proxy.blackhole();
      const started = Date.now();
      const out = [1, 2, 3].map((i) => inserts.insert(db.databaseName, 'ledger', { _id: `silent-${i}` }));
      for (const pending of out) await expect(pending).rejects.toBeInstanceOf(DependencyUnavailableError);
      expect(Date.now() - started).toBeLessThan(2000);
      proxy.heal();
      expect(await inserts.insert(db.databaseName, 'ledger', { _id: 'after' })).toBe('inserted');
    } finally {
      await proxy.close();
    }
  });

  test('a link cut under a pipelined group commit: the buyers hear 504, the batch is settled by tombstone, and later batches go on', async () => {
    const proxy = await startTcpProxy(mongoPort());
    try {
      const inserts = direct(proxy.port, 300);
      // Open the socket first, so that the cut finds it open, as under load.
      expect(await inserts.insert(db.databaseName, 'warm_up', { _id: 'w' })).toBe('inserted');
      const fence = new Fence(db, TIMEOUT_MS, PRIMARY_LEDGER, inserts);
      const epoch = await fence.beginTerm('me');
      const settled: Array<{ sales: number; written: Promise<boolean> }> = [];
      const writer = new GroupCommit(fence, () => epoch, (_entries, written, sales) => settled.push({ sales, written }), { releaseAfterMs: NOT_DURING_THE_TEST });
      proxy.blackhole();
      const cut = [writer.appendSale('atomic', 'HOT', 1, 9, null), writer.appendSale('atomic', 'HOT', 1, 8, null)];
      for (const pending of cut) await expect(pending).rejects.toBeInstanceOf(OutcomeUnknownError);
      await waitFor(() => settled.length === 1, { timeoutMs: 5000, message: 'the batch handed to settlement' });
      expect(settled[0]?.sales).toBe(2);
      // Nothing reached the server: settlement (through the driver) tombstones the number.
      await expect(settled[0]?.written).resolves.toBe(false);
      proxy.heal();
      await writer.appendSale('atomic', 'HOT', 1, 7, null);
      const log = await ledger().find({}).sort({ seq: 1 }).toArray();
      expect(log.map((b) => [b.seq, b.tombstone === true])).toEqual([
        [1, true],
        [2, false],
      ]);
    } finally {
      await proxy.close();
    }
  });

  test('fenced while batches are out: none of the old epoch’s batches is acknowledged after the seal', async () => {
    const fence = new Fence(db, TIMEOUT_MS, PRIMARY_LEDGER, direct());
    const epoch = await fence.beginTerm('old');
    const writer = new GroupCommit(fence, () => epoch, () => undefined, { releaseAfterMs: NOT_DURING_THE_TEST });
    await writer.appendSale('atomic', 'HOT', 1, 9, null);
    const successor = new Fence(db, TIMEOUT_MS);
    await successor.beginTerm('new');
    await successor.seal(epoch + 1);
    // The old primary's next batch: its reservation no longer matches, or its number is a tombstone.
    await expect(writer.appendSale('atomic', 'HOT', 1, 8, null)).rejects.toBeInstanceOf(FencedError);
    const written = (await ledger().find({ epoch, tombstone: { $exists: false } }).toArray()).flatMap((b) => b.entries ?? []);
    expect(written).toEqual([{ op: 'buy', lane: 'atomic', sku: 'HOT', q: 1, rem: 9 }]);
  });
});
