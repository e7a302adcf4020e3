/**
 * Issue 13: the pipelined group commit (`GroupCommit` in src/cluster/ledger/ledger.ts) against the
 * real MongoDB wire server. Several batches are written at once, yet acknowledged in the order they
 * were cut: a later batch is never acknowledged while an earlier one can still fail. Batch numbers
 * are reserved ahead, so the fence's guarantees are checked again with numbers taken before a
 * successor's seal: every batch acknowledged is in the log the successor replays, and nothing
 * written after the seal is acknowledged.
 *
 * The fences used here are real `Fence`s on real connections; the subclasses only hold a chosen
 * batch's insert back (or send it over a cut link), to put the pipeline in the state each test
 * needs, and count what went out. Two tests check where a batch is cut under a flood (TurnEnd):
 * when the admission gate ends the turn, or once it is full, never only at the check phase.
 * Budget: ~10 s.
 */
import { randomBytes } from 'node:crypto';
import { MongoClient, type Db } from 'mongodb';
import { OutcomeUnknownError } from '../src/errors.js';
import { ALLOTMENT_RESERVE_AHEAD, Fence, FencedError, GroupCommit, batchId, type BatchDocument, type LedgerEntry } from '../src/cluster/ledger/ledger.js';
import { TurnEnd } from '../src/turn-end.js';
import { startTcpProxy, type TcpProxy } from './harness/tcp-proxy.js';
import { waitFor } from './harness/wait.js';

const TIMEOUT_MS = 2000;
/** Unused numbers are released after this long idle: not before the test has dropped its database. */
const NOT_DURING_THE_TEST = 600_000;

/** A real fence that can hold chosen batches' inserts back, and counts reservations and inserts at once. */
class ObservedFence extends Fence {
  reservations = 0;
  /** Batch inserts begun so far (a held one counts from when it began waiting). */
  writesBegun = 0;
  private readonly held = new Map<number, { release: () => void; released: Promise<void>; reached: Promise<void>; reach: () => void }>();

  /** The insert of batch `seq` waits until `release(seq)`; `reached(seq)` resolves once it is waiting. */
  hold(seq: number): void {
    let release = () => undefined as void;
    let reach = () => undefined as void;
    const released = new Promise<void>((r) => (release = r));
    const reached = new Promise<void>((r) => (reach = r));
    this.held.set(seq, { release, released, reached, reach });
  }

  reached(seq: number): Promise<void> {
    return this.held.get(seq)?.reached ?? Promise.resolve();
  }

  release(seq: number): void {
    this.held.get(seq)?.release();
  }

  override async reserve(epoch: number, count = 1): Promise<number | null> {
    this.reservations++;
    return super.reserve(epoch, count);
  }

  override async write(epoch: number, seq: number, entries: LedgerEntry[]): Promise<'written' | 'fenced'> {
    this.writesBegun++;
    const hold = this.held.get(seq);
    if (hold) {
      hold.reach();
      await hold.released;
    }
    return this.insert(epoch, seq, entries);
  }

  protected insert(epoch: number, seq: number, entries: LedgerEntry[]): Promise<'written' | 'fenced'> {
    return super.write(epoch, seq, entries);
  }
}

/** Like ObservedFence, but the inserts of `cutSeqs` go out over a link that is cut: no answer, a timeout. */
class PartlyCutFence extends ObservedFence {
  constructor(
    db: Db,
    private readonly overCutLink: Fence,
    private readonly cutSeqs: ReadonlySet<number>,
  ) {
    super(db, TIMEOUT_MS);
  }

  protected override insert(epoch: number, seq: number, entries: LedgerEntry[]): Promise<'written' | 'fenced'> {
    return this.cutSeqs.has(seq) ? this.overCutLink.write(epoch, seq, entries) : super.insert(epoch, seq, entries);
  }
}

/** What became of each append, in the order the outcomes arrived. */
class Outcomes {
  readonly order: string[] = [];
  readonly errors = new Map<string, Error>();

  track(name: string, pending: Promise<void>): void {
    pending.then(
      () => this.order.push(`${name} ok`),
      (error: unknown) => {
        this.order.push(`${name} failed`);
        this.errors.set(name, error instanceof Error ? error : new Error(String(error)));
      },
    );
  }

  has(name: string): boolean {
    return this.order.some((o) => o.startsWith(`${name} `));
  }
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('the pipelined group commit', () => {
  let client: MongoClient;
  let db: Db;

  beforeAll(async () => {
    client = await new MongoClient(process.env.MONGO_URL as string).connect();
  });

  beforeEach(() => {
    db = client.db(`group_commit_${randomBytes(4).toString('hex')}`);
  });

  afterEach(async () => {
    await db.dropDatabase();
  });

  afterAll(async () => {
    await client?.close();
  });

  const batches = () => db.collection<BatchDocument>('ledger').find({}).sort({ epoch: 1, seq: 1 }).toArray();
  /** The highest batch number reserved so far (the fence's counter). */
  const reservedUpTo = async () => (await db.collection<{ _id: string; seq: number }>('fence').findOne({ _id: 'fence' }))?.seq;
  const batchPresent = async (epoch: number, seq: number) => (await db.collection<BatchDocument>('ledger').findOne({ _id: batchId(epoch, seq) })) !== null;

  test('several batches are out at once, each one insert; all are acknowledged in order; unkeyed sales of a SKU share an entry', async () => {
    const fence = new ObservedFence(db, TIMEOUT_MS);
    const epoch = await fence.beginTerm('me');
    const writer = new GroupCommit(fence, () => epoch, () => undefined, { depth: 4, releaseAfterMs: NOT_DURING_THE_TEST });
    const outcomes = new Outcomes();
    // Batch 1 is held, so batches 2-4 are cut while it is out.
    fence.hold(1);
    for (let batch = 1; batch <= 4; batch++) {
      for (let sale = 0; sale < 5; sale++) outcomes.track(`batch ${batch}`, writer.appendSale('atomic', 'HOT', 1, 1000 - sale, null));
      outcomes.track(`batch ${batch}`, writer.appendSale('lock', 'HOT', 2, 50, `key-${batch}`));
      await (batch === 1 ? fence.reached(1) : nextTurn());
    }
    await waitFor(async () => (await batches()).length === 3, { timeoutMs: 5000, message: 'batches 2-4 written while batch 1 is held' });
    expect(outcomes.order).toEqual([]); // written, yet none acknowledged before batch 1
    // Four batches out at once: batch 1 still unanswered when the other three were sent. (Counted
    // here, not as inserts overlapping in time: batch 2's may finish before batch 4's begins.)
    const outWhileBatch1Held = fence.writesBegun;
    fence.release(1);
    await waitFor(() => outcomes.order.length === 24, { timeoutMs: 5000, message: 'every append answered' });

    expect(outcomes.order).toEqual([1, 2, 3, 4].flatMap((b) => Array<string>(6).fill(`batch ${b} ok`)));
    expect(outWhileBatch1Held).toBe(4);
    // One number for batch 1 (alone, as under light load), then 16 in one round trip for the batches
    // queued behind it: batches 2-4 cost their insert alone.
    expect(fence.reservations).toBe(2);
    const written = await batches();
    expect(written.map((b) => b.seq)).toEqual([1, 2, 3, 4]);
    for (const batch of written) {
      expect(batch.entries).toEqual([
        { op: 'buy', lane: 'atomic', sku: 'HOT', q: 5, rem: 996 },
        { op: 'buy', lane: 'lock', sku: 'HOT', q: 2, rem: 50, key: `key-${batch.seq}` },
      ]);
    }
  });

  test('batch N fails while N+1 is in flight: N+1 is written but acknowledged only after N has failed', async () => {
    const fence = new ObservedFence(db, TIMEOUT_MS);
    const epoch = await fence.beginTerm('me');
    const observed: Array<[string, number]> = [];
    const writer = new GroupCommit(fence, () => epoch, () => undefined, { depth: 4, releaseAfterMs: NOT_DURING_THE_TEST, observeBatch: (outcome, sales) => observed.push([outcome, sales]) });
    const outcomes = new Outcomes();
    // Batch 1's number is already taken (as a successor's seal would take it): its insert must fail.
    await db.collection<BatchDocument>('ledger').insertOne({ _id: batchId(epoch, 1), epoch, seq: 1, tombstone: true });
    fence.hold(1);
    outcomes.track('N', writer.appendSale('atomic', 'HOT', 1, 10, null));
    await fence.reached(1);
    outcomes.track('N+1', writer.appendSale('atomic', 'HOT', 1, 9, null));
    await waitFor(() => batchPresent(epoch, 2), { timeoutMs: 5000, message: 'batch N+1 written' });
    await nextTurn();
    expect(outcomes.order).toEqual([]); // N can still fail: N+1 waits

    fence.release(1);
    await waitFor(() => outcomes.order.length === 2, { timeoutMs: 5000, message: 'both answered' });
    expect(outcomes.order).toEqual(['N failed', 'N+1 ok']);
    expect(outcomes.errors.get('N')).toBeInstanceOf(FencedError); // a 503: nothing of it was written
    // The metrics hear each batch as its outcome comes, N+1 first (it was written before N failed).
    expect(observed).toEqual([
      ['written', 1],
      ['failed', 1],
    ]);
    const ledger = await batches();
    expect(ledger.map((b) => [b.seq, b.tombstone === true])).toEqual([
      [1, true],
      [2, false],
    ]);
  });

  test('batch N of unknown outcome while N+1 is in flight: N answers 504 and goes to settlement first, then N+1 is acknowledged', async () => {
    const proxy: TcpProxy = await startTcpProxy(Number(new URL(process.env.MONGO_URL as string).port));
    const cutClient = await new MongoClient(`mongodb://127.0.0.1:${proxy.port}/`, { serverSelectionTimeoutMS: 1000, connectTimeoutMS: 500, directConnection: true }).connect();
    try {
      // Its connection is open before the cut: the insert leaves, and no answer comes.
      await cutClient.db(db.databaseName).command({ ping: 1 });
      proxy.cut();
      const fence = new PartlyCutFence(db, new Fence(cutClient.db(db.databaseName), 300), new Set([1]));
      const epoch = await fence.beginTerm('me');
      const settlements: Array<{ sales: number; entries: readonly LedgerEntry[]; written: Promise<boolean> }> = [];
      const outcomes = new Outcomes();
      const observed: Array<[string, number, number]> = [];
      const writer = new GroupCommit(
        fence,
        () => epoch,
        (entries, written, sales) => {
          outcomes.order.push('N handed to settlement');
          settlements.push({ entries, written, sales });
        },
        { releaseAfterMs: NOT_DURING_THE_TEST, observeBatch: (outcome, sales, seconds) => observed.push([outcome, sales, seconds]) },
      );
      fence.hold(1);
      outcomes.track('N', writer.appendSale('signal', 'HOT', 1, 10, null));
      outcomes.track('N', writer.appendSale('signal', 'HOT', 1, 9, null));
      await fence.reached(1);
      outcomes.track('N+1', writer.appendSale('signal', 'HOT', 1, 8, null));
      await waitFor(() => batchPresent(epoch, 2), { timeoutMs: 5000, message: 'batch N+1 written' });
      await nextTurn();
      expect(outcomes.order).toEqual([]);

      fence.release(1); // now its insert goes out over the cut link, and times out
      await waitFor(() => outcomes.order.length === 4, { timeoutMs: 5000, message: 'every append answered' });
      expect(outcomes.order).toEqual(['N handed to settlement', 'N failed', 'N failed', 'N+1 ok']);
      expect(outcomes.errors.get('N')).toBeInstanceOf(OutcomeUnknownError);
      expect(settlements).toHaveLength(1);
      expect(settlements[0]?.sales).toBe(2);
      expect(settlements[0]?.entries).toEqual([{ op: 'buy', lane: 'signal', sku: 'HOT', q: 2, rem: 9 }]);
      // The metrics hear N+1 written first, then N unknown, whose commit lasted its insert's 300 ms bound.
      expect(observed.map(([outcome, sales]) => [outcome, sales])).toEqual([
        ['written', 1],
        ['unknown', 2],
      ]);
      expect(observed[1]?.[2]).toBeGreaterThanOrEqual(0.3);
      // The insert never reached the server: settlement tombstones its number and says so.
      await expect(settlements[0]?.written).resolves.toBe(false);
      expect((await batches()).map((b) => [b.seq, b.tombstone === true])).toEqual([
        [1, true],
        [2, false],
      ]);
    } finally {
      await cutClient.close(true);
      await proxy.close();
    }
  });

  test('fence lost mid-pipeline: what was acknowledged is in the successor’s log; numbers reserved before the seal cannot land after it', async () => {
    const fence = new ObservedFence(db, TIMEOUT_MS);
    const epoch = await fence.beginTerm('old primary');
    const writer = new GroupCommit(fence, () => epoch, () => undefined, { depth: 4, releaseAfterMs: NOT_DURING_THE_TEST });
    const outcomes = new Outcomes();
    outcomes.track('batch 1', writer.appendSale('atomic', 'HOT', 1, 99, null));
    await waitFor(() => outcomes.has('batch 1'), { timeoutMs: 5000, message: 'batch 1 acknowledged' });
    fence.hold(2);
    outcomes.track('batch 2', writer.appendSale('atomic', 'HOT', 1, 98, null));
    await fence.reached(2);
    outcomes.track('batch 3', writer.appendSale('atomic', 'HOT', 1, 97, null));
    await waitFor(() => batchPresent(epoch, 3), { timeoutMs: 5000, message: 'batch 3 written while 2 is held' });

    // A successor takes over and seals: batch 2 reserved one number alone, batch 3 (queued behind it)
    // took 3-18 in one reservation; 2 and 4-18 are unused.
    const successor = new Fence(db, TIMEOUT_MS);
    const next = await successor.beginTerm('new primary');
    await successor.seal(next);
    const replayed: number[] = [];
    for await (const batch of successor.replay()) replayed.push(batch.seq);

    fence.release(2);
    await waitFor(() => outcomes.order.length === 3, { timeoutMs: 5000, message: 'batches 2 and 3 answered' });
    // A later sale takes the next reserved number (4): it meets the seal's tombstone.
    outcomes.track('batch 4', writer.appendSale('atomic', 'HOT', 1, 96, null));
    await waitFor(() => outcomes.has('batch 4'), { timeoutMs: 5000, message: 'batch 4 answered' });
    // And once the reserved numbers run out, the reservation itself is refused.
    for (let seq = 5; seq <= 19; seq++) {
      outcomes.track(`batch ${seq}`, writer.appendSale('atomic', 'HOT', 1, 100 - seq, null));
      await waitFor(() => outcomes.has(`batch ${seq}`), { timeoutMs: 5000, intervalMs: 5, message: `batch ${seq} answered` });
    }

    expect(outcomes.order.slice(0, 4)).toEqual(['batch 1 ok', 'batch 2 failed', 'batch 3 ok', 'batch 4 failed']);
    expect(outcomes.order.filter((o) => o.endsWith(' ok'))).toEqual(['batch 1 ok', 'batch 3 ok']);
    for (const [, error] of outcomes.errors) expect(error).toBeInstanceOf(FencedError);
    // Exactly the acknowledged batches are in the log the successor replayed.
    expect(replayed).toEqual([1, 3]);
    const oldTerm = (await batches()).filter((b) => b.epoch === epoch);
    expect(oldTerm.filter((b) => !b.tombstone).map((b) => b.seq)).toEqual([1, 3]);
    expect(oldTerm).toHaveLength(18); // every reserved number is written or tombstoned
  });

  test('after an admin change, a sale never takes a number reserved before it: the log keeps memory’s order', async () => {
    const fence = new ObservedFence(db, TIMEOUT_MS);
    const epoch = await fence.beginTerm('me');
    let adminChanges = 0;
    const sales = new GroupCommit(fence, () => epoch, () => undefined, { depth: 4, releaseAfterMs: NOT_DURING_THE_TEST, adminChanges: () => adminChanges });
    const admin = new GroupCommit(fence, () => epoch, () => undefined, { depth: 1, reserveAhead: 1, releaseAfterMs: NOT_DURING_THE_TEST });
    // Two sales batches out at once: the second reserves 2-17 and leaves 3-17 unused.
    fence.hold(1);
    const first = sales.appendSale('atomic', 'HOT', 1, 10, null);
    await fence.reached(1);
    const second = sales.appendSale('atomic', 'HOT', 1, 9, null);
    await waitFor(() => batchPresent(epoch, 2), { timeoutMs: 5000, message: 'batch 2 written' });
    fence.release(1);
    await Promise.all([first, second]);

    // An admin change (what DurableMemoryAdmin does behind its barrier): its batch takes 18.
    await admin.append({ op: 'put', lane: 'atomic', sku: 'HOT', stock: 100 });
    adminChanges++;
    // A sale made after it must land after it, not under 3.
    await sales.appendSale('atomic', 'HOT', 1, 99, null);

    const ledger = await batches();
    const written = ledger.filter((b) => !b.tombstone).map((b) => [b.seq, b.entries?.[0]?.op]);
    expect(written).toEqual([
      [1, 'buy'],
      [2, 'buy'],
      [18, 'put'],
      [19, 'buy'],
    ]);
    // The numbers given up are closed (tombstoned), so the compactor folds past them.
    await waitFor(async () => (await fence.closedUpTo(epoch, 0)) === 19, { timeoutMs: 5000, message: 'numbers 3-17 tombstoned' });
  });

  test('numbers reserved and left unused are tombstoned once the writer idles, so the compactor can fold past them', async () => {
    const fence = new ObservedFence(db, TIMEOUT_MS);
    const epoch = await fence.beginTerm('me');
    const writer = new GroupCommit(fence, () => epoch, () => undefined, { depth: 4, releaseAfterMs: 50 });
    // Two batches out at once: the second reserves 16 numbers (2-17) and uses one.
    fence.hold(1);
    const first = writer.appendSale('atomic', 'HOT', 1, 10, null);
    await fence.reached(1);
    const second = writer.appendSale('atomic', 'HOT', 1, 9, null);
    await waitFor(() => batchPresent(epoch, 2), { timeoutMs: 5000, message: 'batch 2 written' });
    fence.release(1);
    await Promise.all([first, second]);
    await waitFor(async () => (await fence.closedUpTo(epoch, 0)) === 17, { timeoutMs: 5000, message: 'numbers 3-17 closed' });
    const ledger = await batches();
    expect(ledger.filter((b) => !b.tombstone).map((b) => b.seq)).toEqual([1, 2]);
    expect(ledger.filter((b) => b.tombstone).map((b) => b.seq)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]);
    // The next batch reserves afresh and carries on.
    await writer.appendSale('atomic', 'HOT', 1, 8, null);
    expect(await batchPresent(epoch, 18)).toBe(true);
  });
  // Under a flood the check phase, where a turn's batch is normally cut, can be a second or more
  // away: libuv keeps polling while epoll hands it 1,024 ready sockets at a time, and a worker
  // thread answered ~49,000 refusals before its admitted sales' batch left (bench/FLOOD-ANALYSIS.md).
  // Each step below runs in one synchronous stretch, as inside one such poll phase: no check phase
  // can come between, so what left, left without it.
  test('a flood: the batch leaves when the admission gate ends the turn, and a full batch leaves at once — neither waits for the check phase', async () => {
    const fence = new ObservedFence(db, TIMEOUT_MS);
    const epoch = await fence.beginTerm('me');
    const turnEnd = new TurnEnd();
    const limit = 3;
    const writer = new GroupCommit(fence, () => epoch, () => undefined, { depth: 4, limit, turnEnd, releaseAfterMs: NOT_DURING_THE_TEST });
    const outcomes = new Outcomes();

    outcomes.track('alone', writer.appendSale('atomic', 'HOT', 1, 999, null));
    expect(fence.reservations).toBe(0); // gathering until the turn ends
    turnEnd.flushNow(); // what the admission gate does when it refuses a request
    expect(fence.reservations).toBe(1); // the batch left: its number is being reserved
    expect(turnEnd.saturated).toBe(true);

    // `limit` sales fill a batch: it leaves without anyone ending the turn, so the next sale finds
    // room. Left waiting for the check phase, it would have the queue refuse every buy until then.
    for (let sale = 0; sale < limit; sale++) {
      expect(writer.hasRoom()).toBe(true);
      outcomes.track('full', writer.appendSale('atomic', 'HOT', 1, 998 - sale, null));
    }
    expect(writer.hasRoom()).toBe(true);

    await waitFor(() => outcomes.order.length === 1 + limit, { timeoutMs: 5000, message: 'every sale answered' });
    expect(outcomes.order).toEqual(['alone ok', ...Array<string>(limit).fill('full ok')]);
    // While the thread is saturated even a lone batch reserves numbers ahead: one round trip to the
    // fence served both batches (a lone batch otherwise reserves just its own, and the next one
    // another range).
    expect(fence.reservations).toBe(1);
    expect(await reservedUpTo()).toBe(16);
    // Two batches, as the gate and the limit cut them: not one batch cut at the check phase.
    expect((await batches()).map((b) => b.entries)).toEqual([
      [{ op: 'buy', lane: 'atomic', sku: 'HOT', q: 1, rem: 999 }],
      [{ op: 'buy', lane: 'atomic', sku: 'HOT', q: limit, rem: 998 - limit + 1 }],
    ]);
  });

  test('nobody ends the turn: the batch leaves at the check phase, with every sale of the turn in it, its number reserved alone', async () => {
    const fence = new ObservedFence(db, TIMEOUT_MS);
    const epoch = await fence.beginTerm('me');
    const turnEnd = new TurnEnd();
    const writer = new GroupCommit(fence, () => epoch, () => undefined, { depth: 4, limit: 100, turnEnd, releaseAfterMs: NOT_DURING_THE_TEST });
    const outcomes = new Outcomes();
    for (let sale = 0; sale < 10; sale++) outcomes.track('turn', writer.appendSale('atomic', 'HOT', 1, 999 - sale, null));
    expect(fence.reservations).toBe(0);
    await nextTurn();
    expect(fence.reservations).toBe(1);
    expect(turnEnd.saturated).toBe(false);
    await waitFor(() => outcomes.order.length === 10, { timeoutMs: 5000, message: 'every sale answered' });
    expect((await batches()).map((b) => b.entries)).toEqual([[{ op: 'buy', lane: 'atomic', sku: 'HOT', q: 10, rem: 990 }]]);
    expect(await reservedUpTo()).toBe(1);
  });

  test('reserveAheadAlone (allotments mode): lone batches reserve ALLOTMENT_RESERVE_AHEAD numbers per round trip, and a number reserved ahead cannot land after a successor’s seal', async () => {
    const fence = new ObservedFence(db, TIMEOUT_MS);
    const epoch = await fence.beginTerm('replica a');
    // As an allotments replica's worker builds its writer (src/worker/worker-main.ts).
    const writer = new GroupCommit(fence, () => epoch, () => undefined, { depth: 4, reserveAheadAlone: true, reserveAhead: ALLOTMENT_RESERVE_AHEAD, releaseAfterMs: NOT_DURING_THE_TEST });
    // Ten lone batches, one after another (each acknowledged before the next is appended).
    for (let sale = 1; sale <= 10; sale++) await writer.appendSale('atomic', 'HOT', 1, 100 - sale, null);
    expect(fence.writesBegun).toBe(10);
    expect(ALLOTMENT_RESERVE_AHEAD).toBeGreaterThan(10);
    expect(fence.reservations).toBe(1); // numbers 1-ALLOTMENT_RESERVE_AHEAD in one round trip, where the default takes ten

    // A successor fences and seals the stream (what the reclaimer does to a paused replica).
    const successor = new Fence(db, TIMEOUT_MS);
    const next = await successor.beginTerm('reclaimer');
    await successor.seal(next);
    const replayed: number[] = [];
    for await (const batch of successor.replay()) replayed.push(batch.seq);

    // The old writer still holds 11-ALLOTMENT_RESERVE_AHEAD: its next sale takes 11 and meets the seal's tombstone.
    const late = writer.appendSale('atomic', 'HOT', 1, 90, null);
    await expect(late).rejects.toBeInstanceOf(FencedError);
    expect(fence.reservations).toBe(1); // it was refused by the tombstone, not by a reservation
    expect(replayed).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const oldTerm = (await batches()).filter((b) => b.epoch === epoch);
    expect(oldTerm.filter((b) => !b.tombstone).map((b) => b.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(oldTerm).toHaveLength(ALLOTMENT_RESERVE_AHEAD); // every reserved number is written or tombstoned
  });
  test('reserveAheadWhileBusy (the primary’s sales writers): lone batches cut back to back reserve 16 numbers per round trip, and a number reserved ahead cannot land after a successor’s seal', async () => {
    const fence = new ObservedFence(db, TIMEOUT_MS);
    const epoch = await fence.beginTerm('old primary');
    // Busy = cut within releaseAfterMs of the batch before: here every batch after the first.
    const writer = new GroupCommit(fence, () => epoch, () => undefined, { depth: 4, reserveAheadWhileBusy: true, releaseAfterMs: NOT_DURING_THE_TEST });
    for (let sale = 1; sale <= 10; sale++) await writer.appendSale('atomic', 'HOT', 1, 100 - sale, null);
    expect(fence.writesBegun).toBe(10);
    // The first batch (after no other) reserved its own number; the next nine took 2-17 in one round trip.
    expect(fence.reservations).toBe(2);

    const successor = new Fence(db, TIMEOUT_MS);
    const next = await successor.beginTerm('new primary');
    await successor.seal(next);
    const replayed: number[] = [];
    for await (const batch of successor.replay()) replayed.push(batch.seq);

    // The old writer still holds 11-17: its next sale takes 11 and meets the seal's tombstone.
    await expect(writer.appendSale('atomic', 'HOT', 1, 90, null)).rejects.toBeInstanceOf(FencedError);
    expect(fence.reservations).toBe(2);
    expect(replayed).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const oldTerm = (await batches()).filter((b) => b.epoch === epoch);
    expect(oldTerm.filter((b) => !b.tombstone).map((b) => b.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(oldTerm).toHaveLength(17); // every reserved number is written or tombstoned
  });

  test('reserveAheadWhileBusy: a lone batch after a quiet spell reserves its own number, so a writer fenced meanwhile is refused by the reservation', async () => {
    const QUIET_MS = 50;
    const fence = new ObservedFence(db, TIMEOUT_MS);
    const epoch = await fence.beginTerm('old primary');
    const writer = new GroupCommit(fence, () => epoch, () => undefined, { depth: 4, reserveAheadWhileBusy: true, releaseAfterMs: QUIET_MS });
    const quietSpell = async () => {
      const from = performance.now();
      await waitFor(() => performance.now() - from > QUIET_MS, { timeoutMs: 5000, intervalMs: 10, message: 'a quiet spell' });
    };
    await writer.appendSale('atomic', 'HOT', 1, 99, null);
    await quietSpell();
    await writer.appendSale('atomic', 'HOT', 1, 98, null);
    expect(fence.reservations).toBe(2); // one number each, as by default
    expect((await batches()).map((b) => [b.seq, b.tombstone ?? false])).toEqual([
      [1, false],
      [2, false],
    ]);

    // Another writer raises the epoch (no seal yet): after a quiet spell the old writer's next
    // batch asks the fence for its number, and the fence refuses it — nothing is written.
    await new Fence(db, TIMEOUT_MS).beginTerm('contender');
    await quietSpell();
    await expect(writer.appendSale('atomic', 'HOT', 1, 97, null)).rejects.toBeInstanceOf(FencedError);
    expect(fence.reservations).toBe(3);
    expect(fence.writesBegun).toBe(2);
  });
});
