/**
 * The store of record of allotments mode: one MongoDB document per in-memory lane and SKU holding
 * the unallocated pool and one allotment per replica that holds units of it.
 *
 *   { _id: "atomic/NVDA", lane, sku, pool, initial, settled, v,
 *     allot: { "<host>": { epoch, granted } }, closed: { "<host>": epoch }, restocks: [key, …] }
 *
 * `initial` is what PUT and restock put on sale; `granted` is what a replica's allotment (under
 * one epoch of its ledger stream) has been handed, sold units included; `settled` is what closed
 * allotments sold. At every moment `initial == pool + settled + Σ granted`, and what a replica has
 * sold is in its own ledger stream. Every change is one compare-and-swap on the document's
 * version `v` (read, compute, `updateOne({_id, v}, …, $inc v)`): plain single-document updates
 * that mongo-java-server, FerretDB and MongoDB all apply atomically, so no transaction is needed
 * and no update form beyond $set/$unset/$inc on dotted paths. A keyed restock records its key in
 * `restocks` in the same swap, so a retry with the key (on any replica, whatever cut the first one
 * off) finds it done and adds nothing: exactly once, as on the other lanes. Only a restock reads
 * that list; the hot reads (grants, give-backs, Peek) leave it out.
 */
import { MongoServerError, type Collection, type Db } from 'mongodb';
import { MAX_STOCK, type MemoryLaneName } from '../../config.js';
import { OutcomeUnknownError, StockLimitError } from '../../errors.js';
import { RESTOCK_KEY_WINDOW } from '../../lanes/db-lane.js';
import { bounded } from '../../mongo.js';

export interface Allotment {
  readonly epoch: number;
  readonly granted: number;
}

export interface PoolDocument {
  _id: string;
  lane: MemoryLaneName;
  sku: string;
  pool: number;
  initial: number;
  settled: number;
  v: number;
  allot: Record<string, Allotment>;
  /**
   * Per host, the highest epoch whose allotment was closed. A replica fenced off may still try to
   * take a chunk under that epoch before it notices; refusing it here keeps a closed allotment
   * from being opened again (its sales would be settled twice).
   */
  closed?: Record<string, number>;
  /** The keys of the last RESTOCK_KEY_WINDOW keyed restocks (read by restocks only). */
  restocks?: string[];
}

const DUPLICATE_KEY = 11000;
/** Compare-and-swap attempts before a change gives up (each loss means someone else's change landed). */
const MAX_ATTEMPTS = 50;

/** Host ids become field names: dots and a leading `$` are not allowed there. */
export function hostField(host: string): string {
  return encodeURIComponent(host).replace(/\./g, '%2E');
}

export function hostOfField(field: string): string {
  return decodeURIComponent(field);
}

export const poolId = (lane: MemoryLaneName, sku: string): string => `${lane}/${sku}`;

export class ContendedError extends Error {
  constructor(id: string) {
    super(`the allotment document ${id} kept changing under ${MAX_ATTEMPTS} attempts`);
    this.name = 'ContendedError';
  }
}

export class PoolStore {
  private readonly docs: Collection<PoolDocument>;

  constructor(
    db: Db,
    private readonly timeoutMs: number,
  ) {
    this.docs = db.collection<PoolDocument>('allotments');
  }

  read(lane: MemoryLaneName, sku: string, withRestockKeys = false): Promise<PoolDocument | null> {
    return bounded(this.timeoutMs, () => this.docs.findOne({ _id: poolId(lane, sku) }, withRestockKeys ? {} : { projection: { restocks: 0 } }));
  }

  /** The documents in which `host` holds an allotment (reclaims). */
  heldBy(host: string): Promise<PoolDocument[]> {
    return bounded(this.timeoutMs, () => this.docs.find({ [`allot.${hostField(host)}`]: { $exists: true } }).toArray());
  }

  /** Every document of `lane` (admin reset), or every document. */
  list(lane?: MemoryLaneName): Promise<PoolDocument[]> {
    return bounded(this.timeoutMs, () => this.docs.find(lane ? { lane } : {}).toArray());
  }

  /** Create the SKU with `stock` in the pool unless it exists; true if created. */
  async create(lane: MemoryLaneName, sku: string, stock: number): Promise<boolean> {
    try {
      await bounded(this.timeoutMs, () => this.docs.insertOne({ _id: poolId(lane, sku), lane, sku, pool: stock, initial: stock, settled: 0, v: 0, allot: {} }));
      return true;
    } catch (error) {
      const cause = error instanceof Error && error.cause instanceof MongoServerError ? error.cause : error;
      if (cause instanceof MongoServerError && cause.code === DUPLICATE_KEY) return false;
      throw error;
    }
  }

  /**
   * Read, compute, swap on the version read; again while someone else's change lands between.
   * `change` returns the update to make (without the version) or null to leave the document as it is.
   */
  async change<T>(
    lane: MemoryLaneName,
    sku: string,
    change: (doc: PoolDocument | null) => { update: Record<string, Record<string, unknown>>; result: T } | { result: T },
    withRestockKeys = false,
  ): Promise<T> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const doc = await this.read(lane, sku, withRestockKeys);
      const decided = change(doc);
      if (!('update' in decided) || doc === null) return decided.result;
      const update = { ...decided.update, $inc: { ...(decided.update.$inc ?? {}), v: 1 } };
      const swapped = await this.swap(() => this.docs.updateOne({ _id: doc._id, v: doc.v }, update));
      if (swapped.matchedCount === 1) return decided.result;
    }
    throw new ContendedError(poolId(lane, sku));
  }

  /**
   * Hand up to `want` units of the pool to `host`'s allotment under `epoch` (fill what fits when
   * the pool runs low). Resolves with the units granted (0: the pool is empty, or an allotment of
   * an earlier epoch is still to be closed) and the document as it was read; null for no such SKU.
   */
  take(lane: MemoryLaneName, sku: string, host: string, epoch: number, want: (doc: PoolDocument) => number): Promise<{ granted: number; doc: PoolDocument } | 'closed' | null> {
    const field = hostField(host);
    return this.change<{ granted: number; doc: PoolDocument } | 'closed' | null>(lane, sku, (doc) => {
      if (doc === null) return { result: null };
      if ((doc.closed?.[field] ?? 0) >= epoch) return { result: 'closed' as const };
      const mine = doc.allot[field];
      const units = Math.min(want(doc), doc.pool);
      if (units <= 0 || (mine !== undefined && mine.epoch !== epoch)) return { result: { granted: 0, doc } };
      return {
        update: { $set: { [`allot.${field}`]: { epoch, granted: (mine?.granted ?? 0) + units } }, $inc: { pool: -units } },
        result: { granted: units, doc },
      };
    });
  }

  /**
   * The common grant in one round trip instead of a read and a swap: `units` more for `host`'s
   * allotment under `epoch`, if that allotment is open (it exists under this epoch: a closed one is
   * removed in the same update that records it closed) and the pool holds at least `poolAtLeast`
   * (the caller's fair-share bound, so a chunk still shrinks as the pool runs low). Resolves as
   * `take` does, with the document as it was before the update; null when a condition does not
   * hold (nothing changed: take the long way, which decides on a fresh read).
   */
  async takeIfAmple(lane: MemoryLaneName, sku: string, host: string, epoch: number, units: number, poolAtLeast: number): Promise<{ granted: number; doc: PoolDocument } | null> {
    const field = hostField(host);
    let before: PoolDocument | null;
    try {
      // The pre-image, not the post-image (as Fence.reserve: mongo-java-server reads the post-image
      // after releasing the document).
      before = await bounded(this.timeoutMs, () =>
        this.docs.findOneAndUpdate(
          { _id: poolId(lane, sku), [`allot.${field}.epoch`]: epoch, pool: { $gte: Math.max(units, poolAtLeast) } },
          { $inc: { pool: -units, [`allot.${field}.granted`]: units, v: 1 } },
          { returnDocument: 'before' },
        ),
      );
    } catch (error) {
      throw new OutcomeUnknownError('mongo', `an allotment update got no answer (${error instanceof Error ? error.message : String(error)})`, false);
    }
    return before && { granted: units, doc: before };
  }

  /** Give `units` unsold units of `host`'s allotment back to the pool; false if that allotment is gone (fenced and closed). */
  giveBack(lane: MemoryLaneName, sku: string, host: string, epoch: number, units: number): Promise<boolean> {
    const field = hostField(host);
    return this.change(lane, sku, (doc) => {
      const mine = doc?.allot[field];
      if (!mine || mine.epoch !== epoch || mine.granted < units) return { result: false };
      return { update: { $set: { [`allot.${field}.granted`]: mine.granted - units }, $inc: { pool: units } }, result: true };
    });
  }

  /**
   * Close `host`'s allotment of an epoch that is fenced and sealed: what it sold (`soldOf`, from its
   * ledger) is settled, the rest goes back to the pool. Only allotments below `below` are closed.
   * Resolves with the units returned to the pool.
   */
  close(lane: MemoryLaneName, sku: string, host: string, below: number, soldOf: (epoch: number) => Promise<number>): Promise<number> {
    const field = hostField(host);
    return (async () => {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const doc = await this.read(lane, sku);
        const held = doc?.allot[field];
        if (!doc || !held || held.epoch >= below) return 0;
        const sold = Math.min(await soldOf(held.epoch), held.granted);
        const closedEpoch = Math.max(held.epoch, doc.closed?.[field] ?? 0);
        const swapped = await this.swap(() =>
          this.docs.updateOne({ _id: doc._id, v: doc.v }, { $unset: { [`allot.${field}`]: '' }, $set: { [`closed.${field}`]: closedEpoch }, $inc: { pool: held.granted - sold, settled: sold, v: 1 } }),
        );
        if (swapped.matchedCount === 1) return held.granted - sold;
      }
      throw new ContendedError(poolId(lane, sku));
    })();
  }

  /**
   * One compare-and-swap. An update that failed after it was sent (a timeout, a connection lost)
   * may have landed: that is an unknown outcome (504 to an admin call; the controller reconciles
   * its own grants and give-backs), not "nothing changed".
   */
  private async swap(update: () => Promise<{ matchedCount: number }>): Promise<{ matchedCount: number }> {
    try {
      return await bounded(this.timeoutMs, update);
    } catch (error) {
      throw new OutcomeUnknownError('mongo', `an allotment update got no answer (${error instanceof Error ? error.message : String(error)})`, false);
    }
  }

  /**
   * Add `quantity` to the pool and to what is on sale; null for no such SKU. With a key already
   * recorded, nothing is added and the document is returned as it is.
   */
  restock(lane: MemoryLaneName, sku: string, quantity: number, key: string | null = null): Promise<PoolDocument | null> {
    return this.change(
      lane,
      sku,
      (doc) => {
        if (doc === null) return { result: null };
        if (key !== null && doc.restocks?.includes(key)) return { result: doc };
        if (doc.initial + quantity > MAX_STOCK) throw new StockLimitError({ sku, lane, limit: MAX_STOCK, initial: doc.initial, quantity, wouldBe: doc.initial + quantity });
        const added = { $inc: { pool: quantity, initial: quantity } };
        const update = key === null ? added : { ...added, $set: { restocks: [...(doc.restocks ?? []), key].slice(-RESTOCK_KEY_WINDOW) } };
        return { update, result: { ...doc, pool: doc.pool + quantity, initial: doc.initial + quantity } };
      },
      key !== null,
    );
  }

  /**
   * Set what is on sale to `stock`, nothing sold — once every allotment that was handed out
   * before is closed. Allotments `fresh` accepts (taken under an epoch that began after the
   * caller fenced their holder) are kept and count against the new stock; if they hold more than
   * `stock`, nothing changes and the caller fences them too. Resolves true when set.
   */
  setStock(lane: MemoryLaneName, sku: string, stock: number | 'initial', fresh: (host: string, allotment: Allotment) => boolean): Promise<boolean> {
    return this.change(lane, sku, (doc) => {
      if (doc === null) return { result: false };
      const target = stock === 'initial' ? doc.initial : stock;
      let kept = 0;
      for (const [field, allotment] of Object.entries(doc.allot)) {
        if (!fresh(hostOfField(field), allotment)) return { result: false };
        kept += allotment.granted;
      }
      if (kept > target) return { result: false };
      return { update: { $set: { pool: target - kept, initial: target, settled: 0 } }, result: true };
    });
  }
}
