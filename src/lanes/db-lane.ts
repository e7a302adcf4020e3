/**
 * The `db` lane: the count lives in a MongoDB document per SKU and every buy is one conditional
 * update — `{_id: sku, stock: {$gte: q}}` with `$inc: {stock: -q, sold: q}` — which MongoDB
 * applies atomically to the single document, so concurrent buyers can never take it below zero.
 */
import type { Collection, Db } from 'mongodb';
import { bounded } from '../mongo.js';
import { UNKNOWN_SKU, type BuyOutcome, type Lane, type StockLevel } from './lane.js';

export interface DbStockDocument {
  _id: string;
  stock: number;
  sold: number;
  initial: number;
}

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

  async tryBuy(sku: string, quantity: number): Promise<BuyOutcome> {
    // The pre-image tells this buyer's remaining exactly (stock before − quantity); some wire
    // servers read a post-image after other updates have landed (docs/mongo-wire-server.md).
    const before = await this.call(() =>
      this.stock.findOneAndUpdate({ _id: sku, stock: { $gte: quantity } }, { $inc: { stock: -quantity, sold: quantity } }, { returnDocument: 'before' }),
    );
    if (before) return { kind: 'sold', remaining: before.stock - quantity };
    // Refused: tell sold out from unknown (the slow path, taken once stock is gone).
    const level = await this.peek(sku);
    return level ? { kind: 'sold_out', remaining: level.remaining } : UNKNOWN_SKU;
  }

  async peek(sku: string): Promise<StockLevel | null> {
    const doc = await this.call(() => this.stock.findOne({ _id: sku }));
    return doc ? { remaining: doc.stock, sold: doc.sold, initial: doc.initial } : null;
  }

  async put(sku: string, stock: number): Promise<boolean> {
    const result = await this.call(() =>
      this.stock.updateOne({ _id: sku }, { $set: { stock, sold: 0, initial: stock } }, { upsert: true }),
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
