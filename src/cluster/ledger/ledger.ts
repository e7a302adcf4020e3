/**
 * The durable record of every sale made by an in-memory lane, and the fence that keeps a deposed
 * primary from adding to it.
 *
 * MongoDB gives single-document atomicity and unique `_id`s — no transactions on a plain server,
 * and none on FerretDB — so the fence is built from those two alone:
 *
 * - The `fence` document holds the current epoch and a batch counter. A primary reserves batch
 *   numbers with a conditional `$inc` on `{epoch: itsEpoch}` (one, or a range while batches queue:
 *   see `GroupCommit`), then inserts each batch with `_id: "epoch:seq"`. A new term replaces the
 *   epoch (compare-and-swap), so reservations by the old epoch stop matching at once.
 * - A batch reserved before the swap may still be in flight, or not yet sent. The new primary
 *   *seals* every reservation of the old epoch: for each number that has no batch yet, it inserts a tombstone
 *   under that `_id`. A late insert then fails on the duplicate key and is never acknowledged;
 *   an insert that won the race is in the log before the rebuild reads it. No clocks involved.
 * - An insert whose outcome is unknown (timeout, connection lost) is settled the same way: the
 *   writer tries to insert the tombstone itself; a duplicate key means the batch is there.
 *
 * Admin operations on the in-memory lanes go through the same log, so replaying it in
 * (epoch, seq) order rebuilds every in-memory lane exactly.
 *
 * Snapshots keep a takeover's work bounded: a snapshot holds every lane's levels as a replay up
 * to one (epoch, seq) position computes them, and a new primary replays only the batches after
 * it (through the {epoch, seq} index, in pages, yielding between them). The leader compacts
 * while it leads (`Compactor`): it folds batches into a new snapshot up to the highest position
 * with no reservation still open below it, and drops batches older than both the snapshot and
 * the idempotency TTL.
 *
 * The ledger is also the durable record of idempotency keys: a keyed sale's key sits in its batch,
 * and an index on `entries.key` lets a primary find it again when memory has forgotten it
 * (`LedgerKeyLookup`), for as long as the batch exists, whatever happened in between.
 */
import { MongoBulkWriteError, MongoServerError, type Collection, type Db } from 'mongodb';
import { MEMORY_LANES, type MemoryLaneName } from '../../config.js';
import { DependencyUnavailableError, OutcomeUnknownError, ServiceError } from '../../errors.js';
import { bounded } from '../../mongo.js';
import { buyFingerprint, fingerprintIsLedgered, soldBody, type DurableAnswer, type DurableAnswers } from '../../idempotency.js';
import type { EpochStore } from '../election/elector.js';
import type { LedgerInserts } from './direct-inserts.js';
import { TurnEnd } from '../../turn-end.js';
import type { LedgerBatchOutcome } from '../../metrics.js';

/** One change to one in-memory lane; replaying them in log order rebuilds the lane. */
export type LedgerEntry =
  | { readonly op: 'buy'; readonly lane: MemoryLaneName; readonly sku: string; readonly q: number; readonly rem: number; readonly key?: string }
  | { readonly op: 'seed' | 'put'; readonly lane: MemoryLaneName; readonly sku: string; readonly stock: number }
  | { readonly op: 'restock'; readonly lane: MemoryLaneName; readonly sku: string; readonly q: number; readonly key?: string }
  | { readonly op: 'reset'; readonly lane: MemoryLaneName };

interface FenceDocument {
  /** 'fence' for the primary's ledger; `stream:<host>` for one replica's stream (allotments mode). */
  _id: string;
  epoch: number;
  seq: number;
  holder: string;
  /** Reservations of earlier epochs not yet sealed: [{epoch, seq}] with seq the highest reserved. */
  sealing: Array<{ epoch: number; seq: number }>;
  /** Allotments mode: raised by the stream's holder every retry period (its lease, observed by the others). */
  beat?: number;
}

export interface BatchDocument {
  _id: string;
  /** Allotments mode: the replica whose stream the batch belongs to. */
  stream?: string;
  epoch: number;
  seq: number;
  tombstone?: true;
  entries?: LedgerEntry[];
  /** When it was written (wall clock): old batches are dropped once folded into a snapshot and past the idempotency TTL. */
  at?: Date;
}

/** One lane's levels at a ledger position: [sku, remaining, sold, initial]. */
export interface SnapshotDocument {
  _id: string;
  epoch: number;
  seq: number;
  levels: Array<[string, number, number, number]>;
}

/** A position in the ledger: every batch at or before it is in the snapshot. */
export interface LedgerPosition {
  readonly epoch: number;
  readonly seq: number;
}

export const LEDGER_START: LedgerPosition = { epoch: 0, seq: 0 };

const SNAPSHOT_HEAD = 'head';
const snapshotId = (lane: MemoryLaneName, at: LedgerPosition): string => `${lane}@${at.epoch}:${at.seq}`;

const DUPLICATE_KEY = 11000;

/**
 * `_id`s per read of a known range (`Fence.closedUpTo`, `Fence.range`). Small on purpose:
 * mongo-java-server checks each document it finds against the whole `$in` list, so a page costs
 * the square of its size (10,000 batches read in pages of 1,000: 6.3 s; of 500: 2.7 s; of 100:
 * 0.5 s), and it holds the collection's lock for a page at a time.
 */
const ID_PAGE = 100;

/**
 * How often a ledger's batches past the idempotency TTL (`ttlMs`) are dropped (`Fence.dropFolded`):
 * at most hourly. The drop's query is not one the `_id` index answers, so on a server without
 * secondary indexes (mongo-java-server) it scans the ledger holding its lock (a racing insert waited
 * 1.9 s at 10^5 batches): run often, that grows with the ledger. A batch outlives the TTL by at most
 * this much (keys last longer, never less).
 */
export function dropInterval(ttlMs: number): number {
  return Math.min(ttlMs, 3_600_000);
}

/** This replica's epoch is no longer current: it must not acknowledge anything. */
export class FencedError extends ServiceError {
  constructor(epoch: number) {
    super('dependency_unavailable', `epoch ${epoch} was fenced off by a newer primary`, { dependency: 'mongo', reason: 'fenced' });
    this.name = 'FencedError';
  }
}

/** A duplicate `_id`, thrown by the driver or wrapped by `bounded`. */
function isDuplicateKey(error: unknown): boolean {
  const cause = error instanceof DependencyUnavailableError ? error.cause : error;
  return cause instanceof MongoServerError && cause.code === DUPLICATE_KEY;
}

/** The driver's bounded `insertOne` as a `LedgerInserts`, for a Fence given no direct channel (the collection is `batches`). */
function driverInserts(batches: Collection<BatchDocument>, timeoutMs: number): LedgerInserts {
  return {
    async insert(_database, _collection, document) {
      try {
        await bounded(timeoutMs, () => batches.insertOne(document as BatchDocument));
        return 'inserted';
      } catch (error) {
        if (isDuplicateKey(error)) return 'duplicate';
        throw error;
      }
    },
  };
}

function unavailable(error: unknown): DependencyUnavailableError {
  return new DependencyUnavailableError('mongo', error instanceof Error ? error.message : String(error));
}

export const batchId = (epoch: number, seq: number): string => `${epoch}:${seq}`;

/**
 * Which log a Fence guards. The primary's (`PRIMARY_LEDGER`) is the one `fence` document and the
 * `ledger` collection, as it always was. In allotments mode each replica has a stream of its own
 * (`replicaStream(host)`): a fence document `stream:<host>` with its own epoch, and batches in
 * `allotment_ledger` named `<host>/<epoch>:<seq>` — the same reserve / insert / seal technique,
 * one fence per replica, so fencing one replica's epoch touches no other's.
 */
export interface LedgerStream {
  readonly fenceId: string;
  readonly collection: string;
  /** null: the primary's ledger (batch ids and queries exactly as before streams existed). */
  readonly host: string | null;
}

export const PRIMARY_LEDGER: LedgerStream = { fenceId: 'fence', collection: 'ledger', host: null };
export const ALLOTMENT_LEDGER_COLLECTION = 'allotment_ledger';
export const replicaStream = (host: string): LedgerStream => ({ fenceId: `stream:${host}`, collection: ALLOTMENT_LEDGER_COLLECTION, host });

export class Fence implements EpochStore {
  private readonly fence: Collection<FenceDocument>;
  private readonly batches: Collection<BatchDocument>;
  private readonly snapshots: Collection<SnapshotDocument>;

  private readonly fenceId: string;
  /** Added to every batch query: empty for the primary's ledger, `{stream}` for a replica's. */
  private readonly mine: { stream?: string };

  private readonly databaseName: string;
  /** What carries `write`'s insert: `DirectInserts` when given, the driver's bounded `insertOne` otherwise. */
  private readonly inserts: LedgerInserts;

  /**
   * @param timeoutMs bound on the hot-path calls (reserve, write), after which they count as failed.
   * @param inserts what carries `write`'s insert when given (`DirectInserts`); otherwise the driver.
   */
  constructor(
    db: Db,
    private readonly timeoutMs: number,
    private readonly stream: LedgerStream = PRIMARY_LEDGER,
    inserts: LedgerInserts | null = null,
  ) {
    this.databaseName = db.databaseName;
    this.fence = db.collection<FenceDocument>('fence');
    this.batches = db.collection<BatchDocument>(stream.collection);
    this.inserts = inserts ?? driverInserts(this.batches, timeoutMs);
    this.snapshots = db.collection<SnapshotDocument>('ledger_snapshots');
    this.fenceId = stream.fenceId;
    this.mine = stream.host === null ? {} : { stream: stream.host };
  }

  private batchId(epoch: number, seq: number): string {
    return this.stream.host === null ? batchId(epoch, seq) : `${this.stream.host}/${batchId(epoch, seq)}`;
  }

  /**
   * Allotments mode: the holder's heartbeat (its lease). False when `epoch` is no longer the
   * stream's: another replica fenced it off, and this replica must stop and start a new term.
   */
  async beat(epoch: number): Promise<boolean> {
    const result = await bounded(this.timeoutMs, () => this.fence.updateOne({ _id: this.fenceId, epoch }, { $inc: { beat: 1 } }));
    return result.matchedCount === 1;
  }

  /**
   * The stream's fence as it stands: epoch, heartbeat, holder, and the earlier epochs not yet
   * sealed (null before its first term).
   */
  async state(): Promise<{ epoch: number; beat: number; holder: string; unsealed: number[] } | null> {
    const doc = await bounded(this.timeoutMs, () => this.fence.findOne({ _id: this.fenceId }));
    return doc && { epoch: doc.epoch, beat: doc.beat ?? 0, holder: doc.holder, unsealed: doc.sealing.map((s) => s.epoch) };
  }

  /**
   * Fence another replica's stream: raise its epoch from `epoch` — only if it still stands there
   * and, when `beat` is given, its holder has not beaten since (it is alive after all). Resolves
   * with the new epoch, or null when the stream moved on. The caller then seals it (`seal`).
   */
  async takeOver(epoch: number, beat: number | null, holder: string): Promise<number | null> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const current = await bounded(this.timeoutMs, () => this.fence.findOne({ _id: this.fenceId }));
      if (!current || current.epoch !== epoch || (beat !== null && (current.beat ?? 0) !== beat)) return null;
      const sealing = current.seq > 0 ? [...current.sealing, { epoch: current.epoch, seq: current.seq }] : current.sealing;
      const swapped = await bounded(this.timeoutMs, () =>
        this.fence.updateOne({ _id: this.fenceId, epoch, seq: current.seq, ...(current.beat === undefined ? { beat: { $exists: false } } : { beat: current.beat }) }, { $set: { epoch: epoch + 1, seq: 0, holder, sealing, beat: current.beat ?? 0 } }),
      );
      if (swapped.matchedCount === 1) return epoch + 1;
      // A reservation of the old epoch raced the swap: read again.
    }
    return null;
  }

  /** The buys recorded in this stream under `epoch` (after `seal`, final), summed per lane and SKU. */
  async soldIn(epoch: number): Promise<Map<string, number>> {
    const sold = new Map<string, number>();
    for (const batch of await this.batches.find({ ...this.mine, epoch, tombstone: { $exists: false } }, { projection: { entries: 1 } }).toArray()) {
      for (const entry of batch.entries ?? []) {
        if (entry.op === 'buy') sold.set(`${entry.lane}/${entry.sku}`, (sold.get(`${entry.lane}/${entry.sku}`) ?? 0) + entry.q);
      }
    }
    return sold;
  }

  /** The indexes a primary relies on: replay order, and keys for idempotency look-ups. Idempotent. */
  async ensureIndexes(): Promise<void> {
    await this.batches.createIndex(this.stream.host === null ? { epoch: 1, seq: 1 } : { stream: 1, epoch: 1, seq: 1 });
    await this.batches.createIndex({ 'entries.key': 1 });
  }

  /** The keyed entries recorded under any of `keys` (tombstones hold no entries). */
  async findKeyed(keys: readonly string[]): Promise<Map<string, LedgerEntry>> {
    const wanted = new Set(keys);
    const found = new Map<string, LedgerEntry>();
    const batches = await bounded(this.timeoutMs, () => this.batches.find({ 'entries.key': { $in: [...wanted] } }, { projection: { entries: 1 } }).toArray());
    for (const batch of batches) {
      for (const entry of batch.entries ?? []) {
        if ('key' in entry && entry.key !== undefined && wanted.has(entry.key)) found.set(entry.key, entry);
      }
    }
    return found;
  }

  /**
   * A new term: swap in epoch + 1, handing the old epoch's reservations over to be sealed. Every
   * call is bounded, as are the takeover's other small calls (the seal's, the snapshot head): a
   * connection that goes silent mid-takeover fails the attempt, which is retried. The long reads
   * (a replay page, a snapshot, a term's batch numbers) are not: a fixed bound made a 3M-sale
   * replay on a loaded machine give up and start over for minutes; a silent connection under
   * them is interrupted by the driver once its monitor's heartbeat times out (src/mongo.ts keeps
   * the monitor from wedging).
   */
  async beginTerm(holder: string): Promise<number> {
    for (;;) {
      const current = await bounded(this.timeoutMs, () => this.fence.findOne({ _id: this.fenceId }));
      if (!current) {
        try {
          await bounded(this.timeoutMs, () => this.fence.insertOne({ _id: this.fenceId, epoch: 1, seq: 0, holder, sealing: [] }));
          return 1;
        } catch (error) {
          if (isDuplicateKey(error)) continue;
          throw error;
        }
      }
      const sealing = current.seq > 0 ? [...current.sealing, { epoch: current.epoch, seq: current.seq }] : current.sealing;
      const swapped = await bounded(this.timeoutMs, () => this.fence.updateOne(
        { _id: this.fenceId, epoch: current.epoch, seq: current.seq },
        { $set: { epoch: current.epoch + 1, seq: 0, holder, sealing } },
      ));
      if (swapped.matchedCount === 1) return current.epoch + 1;
      // Lost a race with a reservation or another contender: read again.
    }
  }

  /** The epoch the fence holds now: a leader whose own epoch is lower has been fenced off. */
  async currentEpoch(): Promise<number> {
    const current = await bounded(this.timeoutMs, () => this.fence.findOne({ _id: this.fenceId }, { projection: { epoch: 1 } }));
    return current?.epoch ?? 0;
  }

  /** Tombstone every reserved-but-missing batch of earlier epochs. Only the current epoch may. */
  async seal(epoch: number): Promise<void> {
    const current = await bounded(this.timeoutMs, () => this.fence.findOne({ _id: this.fenceId }));
    if (!current || current.epoch !== epoch) throw new FencedError(epoch);
    for (const { epoch: old, seq: highest } of current.sealing) {
      const present = new Set((await this.batches.find({ ...this.mine, epoch: old }, { projection: { seq: 1 } }).toArray()).map((b) => b.seq));
      for (let seq = 1; seq <= highest; seq++) {
        if (!present.has(seq)) await this.insertTombstone(old, seq);
      }
    }
    await bounded(this.timeoutMs, () => this.fence.updateOne({ _id: this.fenceId, epoch }, { $set: { sealing: [] } }));
  }

  /**
   * Reserve the next `count` batch numbers of `epoch` in one conditional update: resolves the first
   * of them (the rest follow it), or null when the epoch is fenced off. Every number reserved is
   * covered by the fence's `seq`, so a successor's `seal` tombstones any of them left unused.
   */
  async reserve(epoch: number, count = 1): Promise<number | null> {
    // A reservation that times out may still have counted: the gap it leaves is harmless.
    // The pre-image, not the post-image: mongo-java-server reads the post-image after releasing
    // the document, so two reservations could see the same number (docs/mongo-wire-server.md).
    const before = await bounded(this.timeoutMs, () => this.fence.findOneAndUpdate({ _id: this.fenceId, epoch }, { $inc: { seq: count } }, { returnDocument: 'before' }));
    return before ? before.seq + 1 : null;
  }

  /**
   * Close reserved numbers a writer will not use (`first`..`last` of `epoch`) with tombstones in
   * one round trip, so the compactor's fold is not held back by them. A number already taken (a
   * successor sealed it) is left as it is.
   */
  async releaseUnused(epoch: number, first: number, last: number): Promise<void> {
    const tombstones: BatchDocument[] = [];
    for (let seq = first; seq <= last; seq++) tombstones.push({ _id: this.batchId(epoch, seq), ...this.mine, epoch, seq, tombstone: true });
    try {
      await bounded(this.timeoutMs, () => this.batches.insertMany(tombstones, { ordered: false }));
    } catch (error) {
      const cause = error instanceof DependencyUnavailableError ? error.cause : error;
      if (cause instanceof MongoBulkWriteError && [cause.writeErrors].flat().every((e) => e.code === DUPLICATE_KEY)) return;
      throw error;
    }
  }

  /** Insert a reserved batch. Resolves 'written' or 'fenced'; throws when the outcome is unknown. */
  async write(epoch: number, seq: number, entries: LedgerEntry[]): Promise<'written' | 'fenced'> {
    // A duplicate `_id` is the seal's tombstone (fenced); any other failure is an unknown outcome.
    const document: BatchDocument = { _id: this.batchId(epoch, seq), ...this.mine, epoch, seq, entries, at: new Date() };
    return (await this.inserts.insert(this.databaseName, this.stream.collection, document)) === 'inserted' ? 'written' : 'fenced';
  }

  /** Settle a batch whose insert had an unknown outcome: 'absent' (now tombstoned) or 'present'. */
  async settle(epoch: number, seq: number): Promise<'absent' | 'present'> {
    return (await this.insertTombstone(epoch, seq)) ? 'absent' : 'present';
  }

  /**
   * The batches after `from`, in log order (tombstones left out), a page at a time through the
   * {epoch, seq} index: the server sorts, and never the whole ledger at once.
   */
  async *replay(from: LedgerPosition = LEDGER_START, pageSize = 500): AsyncGenerator<BatchDocument> {
    let after = from;
    for (;;) {
      const page = await this.batches
        .find({ ...this.mine, $or: [{ epoch: after.epoch, seq: { $gt: after.seq } }, { epoch: { $gt: after.epoch } }] })
        .sort({ epoch: 1, seq: 1 })
        .limit(pageSize)
        .toArray();
      for (const batch of page) if (!batch.tombstone) yield batch;
      const last = page[page.length - 1];
      if (!last || page.length < pageSize) return;
      after = { epoch: last.epoch, seq: last.seq };
    }
  }

  /** The latest snapshot's position and levels per lane, or null when none was taken yet. */
  async latestSnapshot(): Promise<{ position: LedgerPosition; lanes: Map<MemoryLaneName, SnapshotDocument['levels']> } | null> {
    const head = await bounded(this.timeoutMs, () => this.snapshots.findOne({ _id: SNAPSHOT_HEAD }));
    if (!head) return null;
    const position = { epoch: head.epoch, seq: head.seq };
    const lanes = new Map<MemoryLaneName, SnapshotDocument['levels']>();
    for (const doc of await this.snapshots.find({ _id: { $in: MEMORY_LANES.map((lane) => snapshotId(lane, position)) } }).toArray()) {
      lanes.set(doc._id.slice(0, doc._id.indexOf('@')) as MemoryLaneName, doc.levels);
    }
    return { position, lanes };
  }

  /**
   * Store `lanes` as the snapshot at `position`: each lane's document under a name of its own,
   * then the head that points at them (one atomic update), then the old ones go — so a crash at
   * any point leaves the head on a complete snapshot.
   */
  async writeSnapshot(position: LedgerPosition, lanes: ReadonlyMap<MemoryLaneName, SnapshotDocument['levels']>): Promise<void> {
    for (const [lane, levels] of lanes) {
      const _id = snapshotId(lane, position);
      await this.snapshots.replaceOne({ _id }, { epoch: position.epoch, seq: position.seq, levels }, { upsert: true });
    }
    await this.snapshots.replaceOne({ _id: SNAPSHOT_HEAD }, { epoch: position.epoch, seq: position.seq, levels: [] }, { upsert: true });
    await this.snapshots.deleteMany({ _id: { $nin: [SNAPSHOT_HEAD, ...MEMORY_LANES.map((lane) => snapshotId(lane, position))] } });
  }

  /**
   * The highest seq of `epoch` with every seq up to it present (written or tombstoned), read a page
   * of `_id`s at a time from `from` on: its cost is what was written since, not the ledger's size.
   */
  async closedUpTo(epoch: number, from: number, pageSize = ID_PAGE): Promise<number> {
    let closed = from;
    for (;;) {
      const first = closed + 1;
      const present = new Set((await this.batchesNumbered(epoch, first, first + pageSize - 1, { seq: 1 })).map((b) => b.seq));
      while (present.has(closed + 1)) closed++;
      if (closed < first + pageSize - 1) return closed;
    }
  }

  /**
   * The batches of `epoch` numbered `from`+1 to `to`, in order (tombstones left out), a page of
   * `_id`s at a time. For a range `closedUpTo` vouched for (every number present), which is what
   * the compactor folds: looked up by `_id`, its cost is the range's, not the ledger's.
   */
  async *range(epoch: number, from: number, to: number, pageSize = ID_PAGE): AsyncGenerator<BatchDocument> {
    for (let first = from + 1; first <= to; first += pageSize) {
      const page = await this.batchesNumbered(epoch, first, Math.min(to, first + pageSize - 1));
      page.sort((a, b) => a.seq - b.seq);
      for (const batch of page) if (!batch.tombstone) yield batch;
    }
  }

  /**
   * The batches (in no order) whose `_id`s are `first`..`last` of `epoch`. Reads of a known range go by `_id` because the `_id` index is
   * the one every MongoDB has: mongo-java-server (the tests', `make run`'s and the bench's server)
   * accepts a secondary index but ignores it, so a query on `epoch`/`seq` scans the whole
   * collection and sorts what matches — holding the collection's lock, so the sales' inserts wait
   * behind it. Folding ten seconds of batches that way, in pages of 500, took seconds per fold
   * once the ledger held some 10^5 batches, and grew with it (bench/ANALYSIS.md).
   */
  private batchesNumbered(epoch: number, first: number, last: number, projection?: { seq: 1 }): Promise<BatchDocument[]> {
    const ids: string[] = [];
    for (let seq = first; seq <= last; seq++) ids.push(this.batchId(epoch, seq));
    return this.batches.find({ _id: { $in: ids } }, projection ? { projection } : {}).toArray();
  }

  /**
   * Drop batches at or below `upTo` written before `before` (their keys are past the idempotency
   * TTL) that nothing will read again: on a primary's ledger, those folded into the snapshot at
   * `upTo`; on a replica's stream (allotments mode), those of epochs whose allotments are closed
   * (`upTo` is the open epoch at seq 0: its numbers start at 1). Tombstones stay: they are what
   * refuses a deposed writer's late insert under their `_id`, however late it comes.
   */
  async dropFolded(upTo: LedgerPosition, before: Date): Promise<number> {
    const result = await this.batches.deleteMany({
      ...this.mine,
      $or: [{ epoch: { $lt: upTo.epoch } }, { epoch: upTo.epoch, seq: { $lte: upTo.seq } }],
      at: { $lt: before },
    });
    return result.deletedCount;
  }

  /**
   * True when a tombstone holds `_id` epoch:seq now (this insert's, or an earlier one's — a retry
   * of a tombstone insert that timed out after it landed meets its own tombstone), false when the
   * batch itself is there.
   */
  private async insertTombstone(epoch: number, seq: number): Promise<boolean> {
    try {
      await bounded(this.timeoutMs, () => this.batches.insertOne({ _id: this.batchId(epoch, seq), ...this.mine, epoch, seq, tombstone: true }));
      return true;
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
      const holder = await bounded(this.timeoutMs, () => this.batches.findOne({ _id: this.batchId(epoch, seq) }, { projection: { tombstone: 1 } }));
      return holder?.tombstone === true;
    }
  }
}

export interface LedgerWriter {
  /** False while the writer has as many entries waiting as it takes: refuse before deciding anything. */
  hasRoom(): boolean;
  /**
   * Resolves once the sale is durable under the current epoch; rejects if it is not (503, or 504
   * while its batch is settled). Unkeyed sales of one lane and SKU share one entry per batch.
   */
  appendSale(lane: MemoryLaneName, sku: string, q: number, rem: number, key: string | null): Promise<void>;
  /** Resolves once `entry` is durable under the current epoch; rejects if it is not (503). */
  append(entry: LedgerEntry): Promise<void>;
  /** The same for several entries that must land together: they go into one batch, all or none. */
  appendAll(entries: readonly LedgerEntry[]): Promise<void>;
}

/** Told about a batch whose fate is being settled in the background (its buyers already got a 504). */
export type UnknownOutcomeHandler = (entries: readonly LedgerEntry[], written: Promise<boolean>, sales: number) => void;

/** An unkeyed sale entry that later sales of the same lane and SKU in the same batch add to. */
interface MergedSale {
  readonly op: 'buy';
  readonly lane: MemoryLaneName;
  readonly sku: string;
  q: number;
  rem: number;
}

type BatchOutcome = { readonly kind: 'written' } | { readonly kind: 'failed'; readonly error: Error } | { readonly kind: 'unknown'; readonly error: Error; readonly written: Promise<boolean> };

/**
 * One ledger batch: the entries of the sales and changes gathered while it was open, and the one
 * promise every one of them waits on (a sale adds a number to an entry, not an object of its own).
 */
class Batch {
  readonly entries: LedgerEntry[] = [];
  /** How many sales (buys) the batch carries: merged entries count every sale in them. */
  sales = 0;
  /** How many appends wait on it (what the queue limit counts). */
  waiting = 0;
  outcome: BatchOutcome | null = null;
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private rejectDone!: (error: Error) => void;
  /** lane → sku → the entry unkeyed sales add to; cleared by any other entry, so log order holds. */
  private readonly merged = new Map<MemoryLaneName, Map<string, MergedSale>>();

  constructor() {
    this.done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // Each append awaits `done`; this keeps a batch nobody waits on (all appends gone) from
    // counting as an unhandled rejection.
    this.done.catch(() => undefined);
  }

  addSale(lane: MemoryLaneName, sku: string, q: number, rem: number, key: string | null): void {
    this.waiting++;
    this.sales++;
    if (key !== null) {
      this.add({ op: 'buy', lane, sku, q, rem, key });
      return;
    }
    let skus = this.merged.get(lane);
    if (!skus) {
      skus = new Map();
      this.merged.set(lane, skus);
    }
    const entry = skus.get(sku);
    if (entry) {
      entry.q += q;
      entry.rem = Math.min(entry.rem, rem);
      return;
    }
    const fresh: MergedSale = { op: 'buy', lane, sku, q, rem };
    skus.set(sku, fresh);
    this.entries.push(fresh);
  }

  addEntries(entries: readonly LedgerEntry[]): void {
    this.waiting++;
    for (const entry of entries) {
      if (entry.op === 'buy') this.sales++;
      this.add(entry);
    }
  }

  /** Deliver the outcome to every append waiting on this batch. */
  finish(): void {
    const outcome = this.outcome;
    if (outcome === null) throw new Error('a batch was finished before its outcome was known');
    if (outcome.kind === 'written') this.resolveDone();
    else this.rejectDone(outcome.error);
  }

  private add(entry: LedgerEntry): void {
    // A keyed sale or an admin change ends the runs that unkeyed sales merge into: entries stay in
    // the order memory saw them (sales commute with one another, not with a PUT or a reset).
    if (this.merged.size > 0) this.merged.clear();
    this.entries.push(entry);
  }
}

/** Reserved batch numbers not used yet: `next`..`last` of `epoch`, reserved after `adminChanges` admin changes. */
interface ReservedRange {
  readonly epoch: number;
  next: number;
  readonly last: number;
  readonly adminChanges: number;
}

/**
 * Batch numbers an allotments replica's sales writer reserves per round trip to its fence (with
 * `reserveAheadAlone`). A reservation is a driver round trip on the worker (~0.35 ms of its CPU on
 * the 2-core machine): at 16 a replica made ~5 per 1,000 buys in the cluster bench, at 64 about
 * one (bench/CLUSTER-ANALYSIS.md). What more numbers cost: those left unused are tombstoned when
 * the writer idles (one `insertMany`) or by a successor's seal (after a crash or a fence), and a
 * fenced replica could insert more of them before that seal — which its lease already forbids
 * (its gate closes before anyone may fence it) and the seal refuses or counts either way.
 */
export const ALLOTMENT_RESERVE_AHEAD = 64;

export interface GroupCommitOptions {
  /** The most sales/appends that may wait for the next batch (backpressure: beyond it, 503 overloaded). */
  readonly limit?: number;
  /** Batches written at once; the next one fills meanwhile. */
  readonly depth?: number;
  /** Batch numbers reserved per round trip to the fence. */
  readonly reserveAhead?: number;
  /** How long the writer stays idle before it closes the numbers it reserved and did not use. */
  readonly releaseAfterMs?: number;
  /**
   * The count of admin changes made (`ClusterState.adminChanges`). Numbers reserved before an admin
   * change are not used after it: the admin's batch took a number above them, and a sale memory
   * made after the change must come after it in the log too (a PUT or reset replayed after a sale
   * would undo it). They are tombstoned instead.
   */
  readonly adminChanges?: () => number;
  /**
   * Reserve `reserveAhead` numbers even for a batch that is alone. By default such a batch
   * reserves its own number, which doubles as a check that the epoch is still current before the
   * insert. A writer whose term is guarded by a lease does not need that check (allotments mode:
   * its gate closes before anyone may fence it, and a successor's seal tombstones the numbers
   * reserved ahead, so a late insert either lands before the seal and is counted, or is refused),
   * and at the few batches in flight of a replica sharing the load with others, this halves the
   * round trips per batch.
   */
  readonly reserveAheadAlone?: boolean;
  /**
   * The thread's end of turn, where the filling batch is cut: shared with the admission gate,
   * which ends the turn early when it refuses (a worker under a flood; see TurnEnd). By default
   * a TurnEnd of the writer's own: the check phase.
   */
  readonly turnEnd?: TurnEnd;
  /**
   * Reserve `reserveAhead` numbers for a batch that is alone too, but only while the writer is
   * busy: when the batch before it was cut less than `releaseAfterMs` earlier. A lone batch after a
   * quieter spell still reserves its own number, so under light load the reservation stays the check
   * that the epoch is current, exactly as by default; under sustained load (a primary's workers at
   * 64 connections: 1.1–1.4 batches in flight, most of them alone) a batch costs one round trip
   * instead of two, and the numbers it reserved ahead are covered by a successor's seal like those
   * reserved while batches queue. The primary's sales writers use it.
   */
  readonly reserveAheadWhileBusy?: boolean;
  /**
   * Told once per batch, when its outcome is known: how it ended, how many sales it carried, and
   * the seconds from its cut to then (the reservation, if one was needed, and the insert's round
   * trip) — what a durable buy waits for beyond the sale itself. The workers' metrics.
   */
  readonly observeBatch?: BatchObserver;
}

/** See `GroupCommitOptions.observeBatch`. */
export type BatchObserver = (outcome: LedgerBatchOutcome, sales: number, seconds: number) => void;

/**
 * Group commit for one thread, pipelined. Sales of an event-loop turn join one batch (a turn the
 * admission gate ends early when it refuses, see `TurnEnd`; a batch holding `limit` sales goes at
 * once); up to `depth` batches are written at once, and while they are out the next one fills. A batch costs
 * one MongoDB round trip: its number comes from a range reserved ahead (`reserveAhead` numbers
 * per conditional update on the fence, see `Fence.reserve`), and its insert carries every sale.
 *
 * Batches are acknowledged in the order they were cut, whatever order MongoDB answers in: a batch
 * written early waits until every earlier batch is settled (written, failed, or of unknown outcome
 * and handed to `onUnknown`). So when a buyer hears 200, no sale decided before its own in this
 * thread can still fail and give its units back afterwards.
 *
 * The fence holds as before: every number used was reserved under the writer's epoch, so a
 * successor's `seal` covers it — an insert either lands before the seal reads (and is replayed) or
 * meets the tombstone and fails as fenced. Numbers a term reserved and never used are sealed the
 * same way; numbers left unused while the writer idles are tombstoned by the writer itself after
 * `releaseAfterMs`, so the compactor can fold past them.
 */
export class GroupCommit implements LedgerWriter {
  private filling: Batch | null = null;
  /** Batches cut and not yet acknowledged, oldest first. */
  private readonly inFlight: Batch[] = [];
  private flushScheduled = false;
  private reserved: ReservedRange | null = null;
  private reserving: Promise<void> | null = null;
  /** Unused numbers whose release failed (MongoDB away): tried again when next idle. */
  private unreleased: ReservedRange[] = [];
  private releaseTimer: NodeJS.Timeout | null = null;
  private readonly limit: number;
  private readonly depth: number;
  private readonly reserveAhead: number;
  private readonly releaseAfterMs: number;
  private readonly adminChanges: () => number;
  private readonly reserveAheadAlone: boolean;
  private readonly turnEnd: TurnEnd;
  private readonly reserveAheadWhileBusy: boolean;
  /** When the last batch was cut (performance.now()), and how long after the one before it. */
  private lastCutAt = Number.NEGATIVE_INFINITY;
  private lastCutGapMs = Number.POSITIVE_INFINITY;
  private readonly observeBatch: BatchObserver | undefined;

  constructor(
    private readonly fence: Fence,
    private readonly epoch: () => number,
    private readonly onUnknown: UnknownOutcomeHandler,
    options: GroupCommitOptions = {},
  ) {
    this.limit = options.limit ?? Number.POSITIVE_INFINITY;
    this.depth = options.depth ?? 4;
    this.reserveAhead = options.reserveAhead ?? 16;
    this.releaseAfterMs = options.releaseAfterMs ?? 1000;
    this.adminChanges = options.adminChanges ?? (() => 0);
    this.reserveAheadAlone = options.reserveAheadAlone ?? false;
    this.turnEnd = options.turnEnd ?? new TurnEnd();
    this.reserveAheadWhileBusy = options.reserveAheadWhileBusy ?? false;
    this.observeBatch = options.observeBatch;
  }

  hasRoom(): boolean {
    return this.filling === null || this.filling.waiting < this.limit;
  }

  appendSale(lane: MemoryLaneName, sku: string, q: number, rem: number, key: string | null): Promise<void> {
    const batch = this.batchToFill();
    batch.addSale(lane, sku, q, rem, key);
    this.cutIfFull(batch);
    return batch.done;
  }

  append(entry: LedgerEntry): Promise<void> {
    return this.appendAll([entry]);
  }

  appendAll(entries: readonly LedgerEntry[]): Promise<void> {
    const batch = this.batchToFill();
    batch.addEntries(entries);
    this.cutIfFull(batch);
    return batch.done;
  }

  private batchToFill(): Batch {
    if (this.filling) return this.filling;
    const batch = new Batch();
    this.filling = batch;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // After this turn's I/O callbacks: every request parsed in the same turn joins the batch
      // (or sooner, when the admission gate refuses: see TurnEnd).
      this.turnEnd.schedule(this.endOfTurn);
    }
    return batch;
  }

  private readonly endOfTurn = (): void => {
    this.flushScheduled = false;
    this.cutIfRoom();
  };

  /** A batch as full as `limit` lets it be cannot grow by waiting for the turn's end: it goes now. */
  private cutIfFull(batch: Batch): void {
    if (batch.waiting >= this.limit) this.cutIfRoom();
  }

  /** Send the filling batch when fewer than `depth` are out; otherwise it keeps filling. */
  private cutIfRoom(): void {
    const batch = this.filling;
    if (batch === null || this.inFlight.length >= this.depth) return;
    this.filling = null;
    this.inFlight.push(batch);
    const now = performance.now();
    this.lastCutGapMs = now - this.lastCutAt;
    this.lastCutAt = now;
    if (this.releaseTimer) {
      clearTimeout(this.releaseTimer);
      this.releaseTimer = null;
    }
    void this.write(batch, now);
  }

  private async write(batch: Batch, cutAt: number): Promise<void> {
    const outcome = await this.outcomeOf(batch);
    batch.outcome = outcome;
    this.observeBatch?.(outcome.kind, batch.sales, (performance.now() - cutAt) / 1000);
    this.acknowledgeInOrder();
  }

  /** Number the batch and insert it: written, failed (nothing written), or unknown (settled in the background). */
  private async outcomeOf(batch: Batch): Promise<BatchOutcome> {
    let number: { epoch: number; seq: number | null };
    try {
      number = await this.nextNumber();
    } catch (error) {
      return { kind: 'failed', error: unavailable(error) }; // nothing written
    }
    const { epoch, seq } = number;
    if (seq === null) return { kind: 'failed', error: new FencedError(epoch) };
    try {
      const outcome = await this.fence.write(epoch, seq, batch.entries);
      return outcome === 'written' ? { kind: 'written' } : { kind: 'failed', error: new FencedError(epoch) };
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      return { kind: 'unknown', error: new OutcomeUnknownError('mongo', reason, true), written: this.settleUntilKnown(epoch, seq) };
    }
  }

  /** The next reserved number of the current epoch, reserving a range when none is left; seq null: fenced off. */
  private async nextNumber(): Promise<{ epoch: number; seq: number | null }> {
    for (;;) {
      const epoch = this.epoch();
      const range = this.reserved;
      if (range !== null && range.next <= range.last) {
        if (range.epoch === epoch && range.adminChanges === this.adminChanges()) return { epoch, seq: range.next++ };
        // Numbers of an earlier term are dropped (the next term's seal tombstones them); numbers
        // reserved before an admin change are closed now, so that nothing sold after the change
        // lands in the log before it.
        this.reserved = null;
        if (range.epoch === epoch) this.release(range);
      }
      // One number when this batch is the only one out (light load: as before, the reservation is
      // also the check that the epoch is still current); a range while batches queue behind it,
      // while the thread is saturated (the admission gate refuses: batches follow one another, and
      // a flooded thread pays each round trip behind a sweep of ready sockets), while the writer is
      // busy (`reserveAheadWhileBusy`: this batch was cut soon after the one before; read here
      // before the first await, so it is this batch's gap), or always where a lease guards the term
      // (`reserveAheadAlone`). Numbers reserved ahead are covered by a successor's seal like any
      // other, and released when the writer idles.
      const ahead = this.reserveAheadAlone || this.inFlight.length > 1 || this.turnEnd.saturated || (this.reserveAheadWhileBusy && this.lastCutGapMs < this.releaseAfterMs);
      this.reserving ??= this.reserveRange(epoch, ahead ? this.reserveAhead : 1).finally(() => {
        this.reserving = null;
      });
      await this.reserving;
      const after = this.reserved;
      if (after === null || after.epoch !== epoch) return { epoch, seq: null };
    }
  }

  private async reserveRange(epoch: number, count: number): Promise<void> {
    // Read before the reservation leaves: an admin change made while it is out may have taken a
    // number above or below this range, so the range counts as reserved before that change.
    const adminChanges = this.adminChanges();
    const first = await this.fence.reserve(epoch, count);
    this.reserved = first === null ? null : { epoch, next: first, last: first + count - 1, adminChanges };
  }

  /** Tombstone unused numbers in the background; on failure they are tried again when the writer next idles. */
  private release(range: ReservedRange): void {
    this.fence.releaseUnused(range.epoch, range.next, range.last).catch(() => {
      this.unreleased.push(range);
      if (this.inFlight.length === 0 && this.filling === null) this.releaseWhenIdle();
    });
  }

  /** Deliver the outcomes of the oldest batches that have one, stopping at the first still out. */
  private acknowledgeInOrder(): void {
    while (this.inFlight.length > 0) {
      const oldest = this.inFlight[0];
      if (oldest === undefined || oldest.outcome === null) break;
      this.inFlight.shift();
      oldest.finish();
      if (oldest.outcome.kind === 'unknown') this.onUnknown(oldest.entries, oldest.outcome.written, oldest.sales);
    }
    this.cutIfRoom();
    if (this.inFlight.length === 0 && this.filling === null) this.releaseWhenIdle();
  }

  /**
   * After `releaseAfterMs` with nothing to write, tombstone the numbers reserved and not used (and
   * any whose release failed before: they are tried again at the next idle moment, or sealed by
   * the next term).
   */
  private releaseWhenIdle(): void {
    const range = this.reserved;
    const unused = range !== null && range.next <= range.last;
    if ((!unused && this.unreleased.length === 0) || this.releaseTimer !== null) return;
    this.releaseTimer = setTimeout(() => {
      this.releaseTimer = null;
      if (this.inFlight.length > 0 || this.filling !== null || this.reserving !== null) return;
      const ranges = this.unreleased;
      this.unreleased = [];
      if (this.reserved !== null && this.reserved.next <= this.reserved.last) ranges.push(this.reserved);
      this.reserved = null;
      for (const range of ranges) this.release(range);
    }, this.releaseAfterMs);
    this.releaseTimer.unref();
  }

  private async settleUntilKnown(epoch: number, seq: number): Promise<boolean> {
    for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
      try {
        return (await this.fence.settle(epoch, seq)) === 'present';
      } catch {
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }
}

/** The answer a keyed ledger entry stands for, byte for byte as the route sent it. */
export function answerOfEntry(entry: LedgerEntry): DurableAnswer | null {
  if (entry.op !== 'buy') return null;
  return { fingerprint: buyFingerprint(entry.lane, entry.sku, entry.q), response: { status: 200, body: soldBody(entry.lane, entry.sku, entry.q, entry.rem) } };
}

/** Keys looked up at once, at most, in one query. */
const LOOKUP_BATCH = 256;

/**
 * Idempotency answers of the in-memory lanes, read back from the ledger's key index when memory
 * no longer holds them. One query at a time, like a group commit: keys asked for while a query is
 * out wait and go together in the next one, so a burst of new keys (the common case: nothing
 * found) costs a few indexed reads, not one per key, and the look-ups can never crowd out the
 * lease renewals that share MongoDB with them.
 */
export class LedgerKeyLookup implements DurableAnswers {
  private pending = new Map<string, Array<{ resolve: (answer: DurableAnswer | null) => void; reject: (error: Error) => void }>>();
  private scheduled = false;
  private querying = false;

  constructor(private readonly fence: Fence) {}

  covers(fingerprint: string): boolean {
    return fingerprintIsLedgered(fingerprint);
  }

  find(key: string): Promise<DurableAnswer | null> {
    return new Promise((resolve, reject) => {
      const waiting = this.pending.get(key);
      if (waiting) waiting.push({ resolve, reject });
      else this.pending.set(key, [{ resolve, reject }]);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.querying || this.pending.size === 0) return;
    this.scheduled = true;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    this.querying = true;
    try {
      await this.lookUp();
    } finally {
      this.querying = false;
      this.schedule();
    }
  }

  private async lookUp(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    const keys = [...batch.keys()];
    for (let from = 0; from < keys.length; from += LOOKUP_BATCH) {
      const slice = keys.slice(from, from + LOOKUP_BATCH);
      try {
        const found = await this.fence.findKeyed(slice);
        for (const key of slice) {
          const entry = found.get(key);
          const answer = entry === undefined ? null : answerOfEntry(entry);
          for (const waiter of batch.get(key) ?? []) waiter.resolve(answer);
        }
      } catch (error) {
        const failure = error instanceof Error ? error : new Error(String(error));
        for (const key of slice) for (const waiter of batch.get(key) ?? []) waiter.reject(failure);
      }
    }
  }
}
