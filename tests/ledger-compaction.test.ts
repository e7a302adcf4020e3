/**
 * Issue 10, item 6: the ledger does not only grow, and a takeover's work is bounded by what
 * changed since the last snapshot. A primary snapshots what it replayed as soon as it leads and
 * keeps folding new batches in; the next primary starts from that snapshot and replays only the
 * batches after it, and rebuilds exactly the same levels. Batches folded into a snapshot and older
 * than the idempotency TTL are dropped.
 *
 * A fold reads the ledger by `_id` only: the wire server the tests, `make run` and the bench use
 * ignores secondary indexes, and a fold that queried `epoch`/`seq` scanned the whole ledger once
 * per page of 500 while holding the collection's lock — the collapse of a long `make bench`
 * (bench/ANALYSIS.md).
 * Budget: ~25 s (a real service process started three times on one database; a fold of 1,310 batches).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { MongoClient, type CommandStartedEvent, type Document } from 'mongodb';
import { MEMORY_LANES } from '../src/config.js';
import { Fence, batchId } from '../src/cluster/ledger/ledger.js';
import { Compactor, LedgerReplay } from '../src/cluster/ledger/rebuild.js';
import { createLogger } from '../src/logger.js';
import { startService, waitFor, type ServiceHandle } from './harness/service.js';
import { buy, peek, putSku, type LevelBody } from './support/http.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

const SALES = 40;

describe('snapshots bound a takeover', () => {
  const database = `compact_${randomBytes(4).toString('hex')}`;
  const env = { MONGO_DB: database, ADMIN_TOKEN: TEST_ADMIN_TOKEN, DURABILITY: 'sync', ELECTION: 'none', LOG_LEVEL: 'info', IDEMPOTENCY_TTL_MS: '1000' };
  let service: ServiceHandle | null = null;
  let client: MongoClient;

  beforeAll(async () => {
    client = await new MongoClient(process.env.MONGO_URL as string).connect();
  });

  afterAll(async () => {
    await service?.stop();
    await client?.close();
  });

  /** How many batches the takeover of this process replayed (from its lifecycle log line). */
  async function replayedBatches(handle: ServiceHandle): Promise<number> {
    let count = -1;
    await waitFor(
      () => {
        const line = handle.output().split('\n').find((l) => l.includes('rebuilt the in-memory lanes from the ledger'));
        if (line) count = (JSON.parse(line) as { batches: number }).batches;
        return line !== undefined;
      },
      { timeoutMs: 5000, message: 'the rebuild was logged' },
    );
    return count;
  }

  async function levels(handle: ServiceHandle): Promise<Record<string, LevelBody>> {
    const out: Record<string, LevelBody> = {};
    for (const lane of MEMORY_LANES) out[lane] = (await peek(handle.url, lane, 'SNAP')).body;
    return out;
  }

  const head = () => client.db(database).collection<{ _id: string; epoch: number; seq: number }>('ledger_snapshots').findOne({ _id: 'head' });
  const batchCount = () => client.db(database).collection('ledger').countDocuments({ tombstone: { $exists: false } });

  test('the next takeover replays only what came after the snapshot, and rebuilds the same levels', async () => {
    service = await startService(env);
    expect((await putSku(service.url, TEST_ADMIN_TOKEN, 'SNAP', 1000)).status).toBe(201);
    for (let i = 0; i < SALES; i++) expect((await buy(service.url, MEMORY_LANES[i % 3] as string, 'SNAP', 1, randomUUID())).status).toBe(200);
    const live = await levels(service);
    const written = await batchCount();
    expect(written).toBeGreaterThanOrEqual(SALES);
    await service.stop();
    const last = await client.db(database).collection<{ epoch: number; seq: number }>('ledger').find({ tombstone: { $exists: false } }).sort({ epoch: -1, seq: -1 }).limit(1).next();

    // The second primary replays the first one's batches, snapshots them, and drops the folded
    // ones older than the TTL (1 s here).
    service = await startService(env);
    expect(await replayedBatches(service)).toBeGreaterThanOrEqual(SALES);
    expect(await levels(service)).toEqual(live);
    await waitFor(
      async () => {
        const at = await head();
        return at?.epoch === last?.epoch && at?.seq === last?.seq;
      },
      { timeoutMs: 10_000, message: 'a snapshot at the takeover' },
    );
    await new Promise((r) => setTimeout(r, 1100)); // let the folded batches pass the 1 s TTL…
    await service.stop();

    // …so the third takeover finds them gone from the ledger, and still rebuilds the same levels
    // from the snapshot, replaying only the few batches written after it.
    service = await startService(env);
    expect(await replayedBatches(service)).toBeLessThan(5);
    expect(await levels(service)).toEqual(live);
    await waitFor(async () => (await batchCount()) < written, { timeoutMs: 10_000, message: 'folded batches past the TTL dropped' });
    // Selling goes on from there.
    expect((await buy(service.url, 'lock', 'SNAP', 1)).status).toBe(200);
  });
});

describe('a fold reads the ledger by _id', () => {
  const HOUR = 3_600_000;
  let client: MongoClient;
  const commands: CommandStartedEvent[] = [];

  beforeAll(async () => {
    client = await new MongoClient(process.env.MONGO_URL as string, { monitorCommands: true }).connect();
    client.on('commandStarted', (event) => commands.push(event));
  });

  afterAll(async () => {
    await client?.close();
  });

  /** The commands on the `ledger` collection issued while `run` ran. */
  async function ledgerCommands(run: () => Promise<unknown>): Promise<Array<{ name: string; filter: Document }>> {
    commands.length = 0;
    await run();
    return commands
      .filter((c) => (c.command as Document)[c.commandName] === 'ledger')
      .map((c) => ({ name: c.commandName, filter: (c.commandName === 'delete' ? (c.command.deletes as Document[])[0]?.q : c.command.filter) as Document }));
  }

  test('its cost is the batches since the last fold, not the ledger; it folds exactly what a full replay does', async () => {
    const db = client.db(`fold_${randomBytes(4).toString('hex')}`);
    const fence = new Fence(db, 5000);
    const epoch = await fence.beginTerm('me');
    const write = async (first: number, last: number) => {
      for (let seq = first; seq <= last; seq += 50) {
        const writes = [];
        for (let s = seq; s < Math.min(last + 1, seq + 50); s++) writes.push(fence.write(epoch, s, [{ op: 'buy', lane: MEMORY_LANES[s % 3] as (typeof MEMORY_LANES)[number], sku: 'F', q: 1 + (s % 4), rem: 0 }]));
        expect(await Promise.all(writes)).toEqual(writes.map(() => 'written'));
      }
    };
    // 1,310 numbers: many pages of either read (100 `_id`s each), a run of tombstones inside,
    // and one number (1,306) still open, so the fold stops below it.
    expect(await fence.reserve(epoch, 1310)).toBe(1);
    expect(await fence.write(epoch, 1, MEMORY_LANES.map((lane) => ({ op: 'put', lane, sku: 'F', stock: 1e6 })))).toBe('written');
    await write(2, 699);
    await fence.releaseUnused(epoch, 700, 705);
    await write(706, 1305);
    await write(1307, 1310);

    const replay = new LedgerReplay();
    const compactor = new Compactor(fence, replay, epoch, HOUR, HOUR, createLogger('silent', {}));
    const first = await ledgerCommands(() => compactor.compactOnce());
    expect(replay.position).toEqual({ epoch, seq: 1305 });
    // The same levels as the replay a takeover does (the {epoch, seq} query, every batch).
    const full = new LedgerReplay();
    await full.catchUp(fence, { epoch, seq: 1305 });
    expect(replay.toSnapshot()).toEqual(full.toSnapshot());
    expect(replay.levels.get('lock')?.get('F')?.sold).toBeGreaterThan(500);
    // Every read of the fold names its batches by _id; the only other query is the first fold's drop.
    const reads = first.filter((c) => c.name !== 'delete');
    expect(reads.length).toBeGreaterThan(0);
    for (const { filter } of reads) expect(Object.keys(filter)).toEqual(['_id']);
    expect(first.filter((c) => c.name === 'delete')).toHaveLength(1);

    // The open number lands: the next fold reads only from there on, and drops nothing (at most
    // once per the TTL, up to an hour).
    await write(1306, 1306);
    const next = await ledgerCommands(() => compactor.compactOnce());
    expect(replay.position).toEqual({ epoch, seq: 1310 });
    expect(next.map((c) => c.name)).toEqual(['find', 'find']);
    for (const { filter } of next) expect(Object.keys(filter)).toEqual(['_id']);
    const ids = next.flatMap(({ filter }) => (filter._id as { $in: string[] }).$in);
    expect(ids).toContain(batchId(epoch, 1306));
    expect(ids).not.toContain(batchId(epoch, 1305));
    await db.dropDatabase();
  });
});
