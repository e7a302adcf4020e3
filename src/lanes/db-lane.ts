/**
 * The `db` lane: the count lives in a MongoDB document per SKU and a buy is a conditional
 * update — `{_id: sku, stock: {$gte: q}}` with `$inc: {stock: -q, sold: q}` — which MongoDB
 * applies atomically to the single document, so concurrent buyers can never take it below zero.
 * By default concurrent buys of one SKU are combined into one such update (DB_LANE_MODE).
 * A buyer's idempotency key is pushed into the same document by the same update, so a retry
 * after any failure finds the first answer instead of buying again.
 *
 * Keys stay findable for their whole TTL, however many keyed sales follow: a document is bounded,
 * so the oldest keys move out of it into the `db_lane_keys` collection (one document per key,
 * expiring after IDEMPOTENCY_TTL_MS). Without transactions the move cannot be atomic with a sale,
 * so it is fenced by a version in the SKU's document: the mover writes the keys to the collection
 * first, then pulls them from the document and bumps `archived` in one update; a keyed sale looks
 * its keys up in the collection after learning `archived` and is conditioned on it being
 * unchanged. Either the sale's look-up saw the moved keys, or the move happened after it and the
 * sale's update matches nothing (and is retried with a fresh look-up). A SKU whose keys never
 * moved costs no look-up at all.
 */
import { MongoNetworkError, MongoServerError, MongoServerSelectionError, type Collection, type Db } from 'mongodb';
import { MAX_STOCK } from '../config.js';
import { DependencyUnavailableError, OutcomeUnknownError, ServiceError, StockLimitError } from '../errors.js';
import { bounded } from '../mongo.js';
import { SkuBatcher, type PendingBuy } from './db-batcher.js';
import { UNKNOWN_SKU, type BuyOutcome, type Lane, type StockLevel } from './lane.js';

/** `combined`: concurrent buys of one SKU share one update (db-batcher.ts). `single`: one each. */
export type DbLaneMode = 'combined' | 'single';

export interface DbStockDocument {
  _id: string;
  stock: number;
  sold: number;
  initial: number;
  /** Recent keyed sales (key, quantity, remaining after the sale); older ones are in `db_lane_keys`. */
  keys?: Array<{ k: string; q: number; r: number }>;
  /** How many times keys were moved out to `db_lane_keys` (absent: never). */
  archived?: number;
  /** The keys of the last RESTOCK_KEY_WINDOW keyed restocks, recorded by the restock's own update. */
  restocks?: string[];
}

/**
 * Keyed restocks remembered per SKU. Restocks are admin calls, made by people and scripts, not by
 * a crowd of buyers: a thousand restocks of one SKU within one key's retry window is far beyond
 * any sane use, and the document stays small.
 */
export const RESTOCK_KEY_WINDOW = 1000;

/**
 * The most keyed sales a SKU's document holds: a hard cap, so a document can never outgrow
 * MongoDB's limit. Keys move out long before: once a lane pushed a tenth of it since its last
 * move, all but the last twentieth go (a retry of a recent sale finds its key in the document,
 * with no look-up). Only if moving failed for this many keyed sales in a row would the oldest be
 * dropped.
 */
export const IDEMPOTENCY_WINDOW = 10_000;

export const DB_LANE_COLLECTION = 'db_lane_stock';
export const DB_LANE_KEYS_COLLECTION = 'db_lane_keys';

/** A moved key: one document each, expiring with the key's TTL. */
export interface DbKeyDocument {
  _id: string;
  q: number;
  r: number;
  at: Date;
}

/** SKUs cannot contain '/', so this is unique per SKU and key. */
const keyId = (sku: string, key: string): string => `${sku}/${key}`;

/** The filter that holds while no keys of the SKU moved since `version` was read (null: never). */
const unmovedSince = (version: number | null) => (version === null ? { archived: { $exists: false } } : { archived: version });

/** A bulk write (putMany) may take this many times DEPENDENCY_TIMEOUT_MS before it counts as failed. */
export const BULK_TIMEOUT_FACTOR = 10;

export class DbLane implements Lane {
  readonly name = 'db' as const;
  private readonly stock: Collection<DbStockDocument>;
  private readonly movedKeys: Collection<DbKeyDocument>;
  private readonly batcher: SkuBatcher<BuyOutcome> | null;
  /** Per SKU, the `archived` version last seen (null: keys never moved); absent: not read yet. */
  private readonly versions = new Map<string, number | null>();
  /** Per SKU, keyed sales this lane pushed since it last moved keys out. */
  private readonly pushed = new Map<string, number>();
  private readonly moving = new Set<string>();
  private ttlIndex: Promise<void> | null = null;
  private readonly keysKept: number;
  private readonly keysMovedAt: number;

  /**
   * @param idempotencyTtlMs how long a moved key is kept (a TTL index; MongoDB drops it after).
   * @param keyWindow the cap on keys in a SKU's document (IDEMPOTENCY_WINDOW; smaller in tests).
   */
  constructor(
    private readonly db: Db,
    private readonly timeoutMs: number,
    mode: DbLaneMode = 'combined',
    queueLimit = Number.POSITIVE_INFINITY,
    private readonly idempotencyTtlMs = 24 * 3600_000,
    private readonly keyWindow = IDEMPOTENCY_WINDOW,
  ) {
    this.keysKept = Math.max(1, Math.floor(keyWindow / 20));
    this.keysMovedAt = Math.max(1, Math.floor(keyWindow / 10));
    this.stock = db.collection<DbStockDocument>(DB_LANE_COLLECTION);
    this.movedKeys = db.collection<DbKeyDocument>(DB_LANE_KEYS_COLLECTION);
    this.batcher = mode === 'combined' ? new SkuBatcher((sku, group) => this.applyGroup(sku, group), queueLimit) : null;
  }

  async tryBuy(sku: string, quantity: number, key: string | null = null): Promise<BuyOutcome> {
    if (this.batcher) return this.batcher.submit(sku, quantity, key);
    return new Promise((resolve, reject) => void this.applyGroup(sku, [{ quantity, key, resolve, reject }]).catch(reject));
  }

  /**
   * Sell a group of buys of one SKU with as few conditional updates as possible: all of them in
   * one if the stock covers them; otherwise read the stock and retry with the buys that fit, in
   * arrival order (a buyer whose quantity no longer fits is refused, a smaller one after it may
   * still be served). Every buyer is answered only after MongoDB confirmed its share, with the
   * remaining count its own share left. Idempotency keys ride in the same update; a key that
   * already bought is answered from the document instead of buying again.
   */
  private async applyGroup(sku: string, group: PendingBuy<BuyOutcome>[]): Promise<void> {
    let candidates = withoutRepeatedKeys(group);
    while (candidates.length > 0) {
      let keyed = candidates.filter((b): b is PendingBuy<BuyOutcome> & { key: string } => b.key !== null);
      // Not read yet: assume no key ever moved; if one did, the update matches nothing, the read
      // below learns the version, and the loop looks the keys up. So the first buy sends no read.
      const version = this.versions.get(sku) ?? null;
      if (keyed.length > 0) {
        // Keys that moved out of the document: answered from the collection, never sold again.
        const answered = version === null ? null : await this.answerMovedKeys(sku, keyed);
        if (answered && answered.size > 0) {
          candidates = candidates.filter((b) => !answered.has(b));
          continue;
        }
      }
      keyed = candidates.filter((b): b is PendingBuy<BuyOutcome> & { key: string } => b.key !== null);
      const total = candidates.reduce((sum, b) => sum + b.quantity, 0);
      // The pre-image tells each buyer's remaining exactly (stock before − shares so far); some
      // wire servers read a post-image after other updates have landed (docs/mongo-wire-server.md).
      const before = await this.write(() =>
        this.stock.findOneAndUpdate(
          keyed.length === 0 ? { _id: sku, stock: { $gte: total } } : { _id: sku, stock: { $gte: total }, 'keys.k': { $nin: keyed.map((b) => b.key) }, ...unmovedSince(version) },
          keyed.length === 0
            ? { $inc: { stock: -total, sold: total } }
            : { $inc: { stock: -total, sold: total }, $push: { keys: { $each: keyed.map((b) => ({ k: b.key, q: b.quantity, r: -1 })), $slice: -this.keyWindow } } },
          { returnDocument: 'before', projection: { stock: 1 } },
        ),
      );
      if (before && keyed.length > 0) this.notePushed(sku, keyed.length);
      if (before) {
        let running = before.stock;
        const answers = candidates.map((b) => (running -= b.quantity));
        // Remaining is known only now: record it for replays (until then a replay reports the
        // current stock). Best effort: the sale is made, and its buyers must hear so.
        await Promise.all(
          keyed.map((b) => this.call(() => this.stock.updateOne({ _id: sku, 'keys.k': b.key }, { $set: { 'keys.$.r': answers[candidates.indexOf(b)] } })).catch(() => undefined)),
        );
        candidates.forEach((b, i) => b.resolve({ kind: 'sold', remaining: answers[i] as number }));
        return;
      }
      // Refused: unknown SKU, replayed keys, keys moved meanwhile, or not enough for everyone.
      // Read, answer, retry the rest.
      const doc = await this.call(() => this.stock.findOne({ _id: sku }));
      if (!doc) {
        for (const b of candidates) b.resolve(UNKNOWN_SKU);
        return;
      }
      const current = doc.archived ?? null;
      this.versions.set(sku, current);
      if (keyed.length > 0 && current !== version) continue; // keys moved out: look them up again
      let available = doc.stock;
      const fitting: PendingBuy<BuyOutcome>[] = [];
      for (const b of candidates) {
        const earlier = b.key === null ? undefined : doc.keys?.find((entry) => entry.k === b.key);
        if (earlier) {
          if (earlier.q !== b.quantity) b.reject(new ServiceError('idempotency_key_reused'));
          else b.resolve({ kind: 'sold', remaining: earlier.r >= 0 ? earlier.r : doc.stock });
        } else if (b.quantity <= available) {
          available -= b.quantity;
          fitting.push(b);
        } else {
          b.resolve({ kind: 'sold_out', remaining: available });
        }
      }
      candidates = fitting;
    }
  }

  /** Answer the buys whose key moved to the collection (a replay, or 422 for another quantity); returns those answered. */
  private async answerMovedKeys(sku: string, keyed: ReadonlyArray<PendingBuy<BuyOutcome> & { key: string }>): Promise<Set<PendingBuy<BuyOutcome>>> {
    const answered = new Set<PendingBuy<BuyOutcome>>();
    const moved = await this.call(() => this.movedKeys.find({ _id: { $in: keyed.map((b) => keyId(sku, b.key)) } }).toArray());
    if (moved.length === 0) return answered;
    const byId = new Map(moved.map((m) => [m._id, m]));
    let stockNow: number | undefined;
    for (const b of keyed) {
      const earlier = byId.get(keyId(sku, b.key));
      if (!earlier) continue;
      answered.add(b);
      if (earlier.q !== b.quantity) {
        b.reject(new ServiceError('idempotency_key_reused'));
        continue;
      }
      let remaining = earlier.r;
      // A sale moved out before its remaining was recorded reports the count as it stands (as in the document).
      if (remaining < 0) remaining = stockNow ??= (await this.call(() => this.stock.findOne({ _id: sku }, { projection: { stock: 1 } })))?.stock ?? 0;
      b.resolve({ kind: 'sold', remaining });
    }
    return answered;
  }

  private notePushed(sku: string, count: number): void {
    const pushed = (this.pushed.get(sku) ?? 0) + count;
    this.pushed.set(sku, pushed);
    if (pushed >= this.keysMovedAt && !this.moving.has(sku)) {
      this.pushed.set(sku, 0);
      void this.moveKeysOut(sku);
    }
  }

  /**
   * Move all but the last `keysKept` keys of `sku` into the keys collection: written there first,
   * then pulled from the document with `archived` bumped in one update, conditioned on the version
   * read (another mover's success makes this one a no-op). A failure leaves the keys where they
   * are and is tried again after the next `keysMovedAt` keyed sales.
   */
  private async moveKeysOut(sku: string): Promise<void> {
    this.moving.add(sku);
    try {
      this.ttlIndex ??= this.movedKeys
        .createIndex({ at: 1 }, { expireAfterSeconds: Math.ceil(this.idempotencyTtlMs / 1000) })
        .then(() => undefined)
        .catch(() => {
          this.ttlIndex = null; // created at the next move
        });
      const doc = await this.call(() => this.stock.findOne({ _id: sku }, { projection: { keys: 1, archived: 1 } }));
      const keys = doc?.keys ?? [];
      if (!doc || keys.length <= this.keysKept) return;
      const moving = keys.slice(0, keys.length - this.keysKept);
      const at = new Date();
      await bounded(this.timeoutMs * BULK_TIMEOUT_FACTOR, () =>
        this.movedKeys.bulkWrite(
          moving.map((entry) => ({ updateOne: { filter: { _id: keyId(sku, entry.k) }, update: { $setOnInsert: { q: entry.q, r: entry.r, at } }, upsert: true } })),
          { ordered: false },
        ),
      );
      await this.call(() => this.stock.updateOne({ _id: sku, ...unmovedSince(doc.archived ?? null) }, { $pull: { keys: { k: { $in: moving.map((entry) => entry.k) } } }, $inc: { archived: 1 } }));
    } catch {
      // Left in the document; tried again later.
    } finally {
      this.moving.delete(sku);
    }
  }

  async peek(sku: string): Promise<StockLevel | null> {
    const doc = await this.call(() => this.stock.findOne({ _id: sku }, { projection: { keys: 0 } }));
    return doc ? { remaining: doc.stock, sold: doc.sold, initial: doc.initial } : null;
  }

  async put(sku: string, stock: number): Promise<boolean> {
    if (stock > MAX_STOCK) throw new StockLimitError({ sku, lane: this.name, limit: MAX_STOCK, wouldBe: stock });
    const result = await this.write(() =>
      this.stock.updateOne({ _id: sku }, { $set: { stock, sold: 0, initial: stock, keys: [] } }, { upsert: true }),
    );
    return result.upsertedCount === 1;
  }

  async putMany(entries: ReadonlyArray<readonly [sku: string, stock: number]>, keepExisting: boolean): Promise<void> {
    if (entries.length === 0) return;
    // Thousands of upserts in one round trip: bounded like that many calls in flight, not like one.
    await bounded(this.timeoutMs * BULK_TIMEOUT_FACTOR, () =>
      this.stock.bulkWrite(
        entries.map(([sku, stock]) => ({
          updateOne: {
            filter: { _id: sku },
            update: keepExisting ? { $setOnInsert: { stock, sold: 0, initial: stock } } : { $set: { stock, sold: 0, initial: stock, keys: [] } },
            upsert: true,
          },
        })),
        { ordered: true },
      ),
    );
  }

  /** Create `sku` only if MongoDB does not have it yet (start-up seeding keeps existing counts). */
  async seed(sku: string, stock: number): Promise<boolean> {
    const result = await this.call(() =>
      this.stock.updateOne({ _id: sku }, { $setOnInsert: { stock, sold: 0, initial: stock } }, { upsert: true }),
    );
    return result.upsertedCount === 1;
  }

  async restock(sku: string, quantity: number, key: string | null = null): Promise<StockLevel | null> {
    // Conditional, so the limit holds even against a concurrent restock; with a key, the key is
    // pushed by the same update and a key already there matches nothing (applied once).
    const filter = key === null ? { _id: sku, initial: { $lte: MAX_STOCK - quantity } } : { _id: sku, initial: { $lte: MAX_STOCK - quantity }, restocks: { $ne: key } };
    const update =
      key === null ? { $inc: { stock: quantity, initial: quantity } } : { $inc: { stock: quantity, initial: quantity }, $push: { restocks: { $each: [key], $slice: -RESTOCK_KEY_WINDOW } } };
    const before = await this.write(() => this.stock.findOneAndUpdate(filter, update, { returnDocument: 'before', projection: { keys: 0, restocks: 0 } }));
    if (before) return { remaining: before.stock + quantity, sold: before.sold, initial: before.initial + quantity };
    const current = await this.call(() => this.stock.findOne({ _id: sku }, { projection: { keys: 0 } }));
    if (!current) return null;
    if (key !== null && current.restocks?.includes(key)) return { remaining: current.stock, sold: current.sold, initial: current.initial };
    throw new StockLimitError({ sku, lane: this.name, limit: MAX_STOCK, initial: current.initial, quantity, wouldBe: current.initial + quantity });
  }

  async resetAll(): Promise<void> {
    const docs = await this.call(() => this.stock.find({}, { projection: { initial: 1 } }).toArray());
    for (const doc of docs) {
      await this.write(() => this.stock.updateOne({ _id: doc._id }, { $set: { stock: doc.initial, sold: 0 } }));
    }
  }

  async checkReady(): Promise<void> {
    await this.call(() => this.db.command({ ping: 1 }));
  }

  async close(): Promise<void> {}

  private call<T>(operation: () => Promise<T>): Promise<T> {
    return bounded(this.timeoutMs, operation);
  }

  /**
   * A write (the selling update, or an admin change). Refused when it never left (no server to
   * send it to) or MongoDB answered with an error; otherwise — a timeout, a connection lost — it may have been applied, and the
   * callers are told the outcome is unknown (buyers' keys are in the document if it was).
   */
  private async write<T>(operation: () => Promise<T>): Promise<T> {
    try {
      // A little past the driver's own server-selection timeout (the same DEPENDENCY_TIMEOUT_MS),
      // so an update that never found a server fails as that, not as a timeout of unknown outcome.
      return await bounded(this.timeoutMs + SELECTION_MARGIN_MS, operation);
    } catch (error) {
      const cause = error instanceof DependencyUnavailableError ? error.cause : error;
      if (cause instanceof MongoServerSelectionError || cause instanceof MongoServerError || neverConnected(cause)) throw error;
      throw new OutcomeUnknownError('mongo', error instanceof Error ? error.message : String(error), false);
    }
  }
}

const SELECTION_MARGIN_MS = 250;

/** A connection that could not even be opened carried nothing. */
function neverConnected(error: unknown): boolean {
  if (!(error instanceof MongoNetworkError)) return false;
  const system = error.cause as NodeJS.ErrnoException | undefined;
  return system?.syscall === 'connect';
}

/**
 * A key twice in one group (a client retrying while its first request still waits) must buy
 * once: the repeat leaves the group and gets the first one's answer — or a 422 if it asks for a
 * different quantity.
 */
function withoutRepeatedKeys(group: PendingBuy<BuyOutcome>[]): PendingBuy<BuyOutcome>[] {
  const repeatsOf = new Map<string, { first: PendingBuy<BuyOutcome>; repeats: PendingBuy<BuyOutcome>[] }>();
  const unique: PendingBuy<BuyOutcome>[] = [];
  for (const buy of group) {
    const seen = buy.key === null ? undefined : repeatsOf.get(buy.key);
    if (!seen) {
      unique.push(buy);
      if (buy.key !== null) repeatsOf.set(buy.key, { first: buy, repeats: [] });
    } else if (seen.first.quantity !== buy.quantity) {
      buy.reject(new ServiceError('idempotency_key_reused'));
    } else {
      seen.repeats.push(buy);
    }
  }
  return unique.map((buy) => {
    const repeats = buy.key === null ? [] : (repeatsOf.get(buy.key)?.repeats ?? []);
    if (repeats.length === 0) return buy;
    return {
      ...buy,
      resolve: (outcome: BuyOutcome) => [buy, ...repeats].forEach((b) => b.resolve(outcome)),
      reject: (error: Error) => [buy, ...repeats].forEach((b) => b.reject(error)),
    };
  });
}
