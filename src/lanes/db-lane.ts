/**
 * The `db` lane: the count lives in a MongoDB document per SKU and every buy is one conditional
 * update — `{_id: sku, stock: {$gte: q}}` with `$inc: {stock: -q, sold: q}` — which MongoDB
 * applies atomically to the single document, so concurrent buyers can never take it below zero.
 * A buyer's idempotency key is pushed into the same document by the same update, so a retry
 * after any failure finds the first answer instead of buying again.
 */
import type { Collection, Db } from 'mongodb';
import { ServiceError } from '../errors.js';
import { bounded } from '../mongo.js';
import { UNKNOWN_SKU, type BuyOutcome, type Lane, type StockLevel } from './lane.js';

export interface DbStockDocument {
  _id: string;
  stock: number;
  sold: number;
  initial: number;
  /** The last IDEMPOTENCY_WINDOW keyed sales: key, quantity, remaining after the sale. */
  keys?: Array<{ k: string; q: number; r: number }>;
}

/**
 * Keyed sales remembered per SKU, inside the SKU's own document, so that the sale and the record
 * of its key are one atomic update and a retry after any crash finds it. Bounded because a
 * document is; at thousands of keyed sales a second that still covers any sane retry.
 */
export const IDEMPOTENCY_WINDOW = 10_000;

export const DB_LANE_COLLECTION = 'db_lane_stock';

export class DbLane implements Lane {
  readonly name = 'db' as const;
  private readonly stock: Collection<DbStockDocument>;

  constructor(
    private readonly db: Db,
    private readonly timeoutMs: number,
  ) {
    this.stock = db.collection<DbStockDocument>(DB_LANE_COLLECTION);
  }

  async tryBuy(sku: string, quantity: number, key: string | null = null): Promise<BuyOutcome> {
    // The pre-image tells this buyer's remaining exactly (stock before − quantity); some wire
    // servers read a post-image after other updates have landed (docs/mongo-wire-server.md).
    const before = await this.call(() =>
      key === null
        ? this.stock.findOneAndUpdate({ _id: sku, stock: { $gte: quantity } }, { $inc: { stock: -quantity, sold: quantity } }, { returnDocument: 'before', projection: { stock: 1 } })
        : this.stock.findOneAndUpdate(
            { _id: sku, stock: { $gte: quantity }, 'keys.k': { $ne: key } },
            { $inc: { stock: -quantity, sold: quantity }, $push: { keys: { $each: [{ k: key, q: quantity, r: -1 }], $slice: -IDEMPOTENCY_WINDOW } } },
            { returnDocument: 'before', projection: { stock: 1 } },
          ),
    );
    if (before) {
      const remaining = before.stock - quantity;
      // The remaining is known only now; record it for replays (a replay before this lands says -1 → current stock).
      if (key !== null) await this.call(() => this.stock.updateOne({ _id: sku, 'keys.k': key }, { $set: { 'keys.$.r': remaining } }));
      return { kind: 'sold', remaining };
    }
    // Refused: sold out, unknown, or this key already bought (the slow path).
    const doc = await this.call(() => this.stock.findOne({ _id: sku }));
    if (!doc) return UNKNOWN_SKU;
    const earlier = key === null ? undefined : doc.keys?.find((entry) => entry.k === key);
    if (earlier) {
      if (earlier.q !== quantity) throw new ServiceError('idempotency_key_reused');
      return { kind: 'sold', remaining: earlier.r >= 0 ? earlier.r : doc.stock };
    }
    return { kind: 'sold_out', remaining: doc.stock };
  }

  async peek(sku: string): Promise<StockLevel | null> {
    const doc = await this.call(() => this.stock.findOne({ _id: sku }, { projection: { keys: 0 } }));
    return doc ? { remaining: doc.stock, sold: doc.sold, initial: doc.initial } : null;
  }

  async put(sku: string, stock: number): Promise<boolean> {
    const result = await this.call(() =>
      this.stock.updateOne({ _id: sku }, { $set: { stock, sold: 0, initial: stock, keys: [] } }, { upsert: true }),
    );
    return result.upsertedCount === 1;
  }

  /** Create `sku` only if MongoDB does not have it yet (start-up seeding keeps existing counts). */
  async seed(sku: string, stock: number): Promise<boolean> {
    const result = await this.call(() =>
      this.stock.updateOne({ _id: sku }, { $setOnInsert: { stock, sold: 0, initial: stock } }, { upsert: true }),
    );
    return result.upsertedCount === 1;
  }

  async restock(sku: string, quantity: number): Promise<StockLevel | null> {
    const before = await this.call(() =>
      this.stock.findOneAndUpdate({ _id: sku }, { $inc: { stock: quantity, initial: quantity } }, { returnDocument: 'before' }),
    );
    return before ? { remaining: before.stock + quantity, sold: before.sold, initial: before.initial + quantity } : null;
  }

  async resetAll(): Promise<void> {
    const docs = await this.call(() => this.stock.find({}, { projection: { initial: 1 } }).toArray());
    for (const doc of docs) {
      await this.call(() => this.stock.updateOne({ _id: doc._id }, { $set: { stock: doc.initial, sold: 0 } }));
    }
  }

  async checkReady(): Promise<void> {
    await this.call(() => this.db.command({ ping: 1 }));
  }

  async close(): Promise<void> {}

  private call<T>(operation: () => Promise<T>): Promise<T> {
    return bounded(this.timeoutMs, operation);
  }
}
