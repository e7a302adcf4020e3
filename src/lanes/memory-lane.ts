/**
 * What the three shared-memory lanes have in common: SKU lookup in the shared table and the
 * admin operations, which run rarely and never on the buy path. Each subclass supplies only the
 * part the original compared — how one decrement is made safe — and how it serialises an admin
 * operation with its own buys.
 */
import { MAX_STOCK, type MemoryLaneName } from '../config.js';
import { StockLimitError } from '../errors.js';
import { INITIAL, REMAINING, STRIDE, type SharedStock } from '../memory/shared-stock.js';
import { UNKNOWN_SKU, type BuyOutcome, type Lane, type StockLevel } from './lane.js';
import { OP_RELEASE, OP_RESET, OP_RESTOCK, OP_SET, OP_UNDO, STOCK_LIMIT_REFUSED, type StockOp } from './stock-ops.js';

export abstract class MemoryLane implements Lane {
  protected readonly words: Int32Array;

  constructor(
    readonly name: MemoryLaneName,
    protected readonly stock: SharedStock,
  ) {
    this.words = stock.words(name);
  }

  tryBuy(sku: string, quantity: number): BuyOutcome | Promise<BuyOutcome> {
    const slot = this.stock.slotOf(sku);
    return slot < 0 ? UNKNOWN_SKU : this.buyAt(slot, quantity);
  }

  protected abstract buyAt(slot: number, quantity: number): BuyOutcome | Promise<BuyOutcome>;

  /** Run an admin operation on one SKU, serialised with this lane's buys. */
  protected abstract exclusive(slot: number, op: StockOp, arg: number): number | Promise<number>;

  peek(sku: string): StockLevel | null {
    const slot = this.stock.slotOf(sku);
    return slot < 0 ? null : this.levelAt(slot);
  }

  levelAt(slot: number): StockLevel {
    const base = slot * STRIDE;
    const initial = Atomics.load(this.words, base + INITIAL);
    const remaining = Atomics.load(this.words, base + REMAINING);
    return { remaining, sold: initial - remaining, initial };
  }

  async put(sku: string, stock: number): Promise<boolean> {
    // The guard of the Int32 words: the admin routes refuse first, with every lane unchanged.
    if (stock > MAX_STOCK) throw new StockLimitError({ sku, lane: this.name, limit: MAX_STOCK, wouldBe: stock });
    const { slot, created } = this.stock.ensure(sku, stock);
    if (!created) await this.exclusive(slot, OP_SET, stock);
    return created;
  }

  /** Create `sku` in every memory lane at once (they share one table); false if it existed. */
  createIfNew(sku: string, stock: number): boolean {
    return this.stock.ensure(sku, stock).created;
  }

  /** The same, for a name given as bytes (`bytes[start..end)`, a valid SKU): no string made. */
  createIfNewFromBytes(bytes: Uint8Array, start: number, end: number, stock: number): boolean {
    return this.stock.createFromBytes(bytes, start, end, stock);
  }

  async restock(sku: string, quantity: number): Promise<StockLevel | null> {
    const slot = this.stock.slotOf(sku);
    if (slot < 0) return null;
    if ((await this.exclusive(slot, OP_RESTOCK, quantity)) === STOCK_LIMIT_REFUSED) {
      const { initial } = this.levelAt(slot);
      throw new StockLimitError({ sku, lane: this.name, limit: MAX_STOCK, initial, quantity, wouldBe: initial + quantity });
    }
    return this.levelAt(slot);
  }

  /** Give back `quantity` units sold by a buy that could not be made durable. */
  async undo(sku: string, quantity: number): Promise<void> {
    const slot = this.stock.slotOf(sku);
    if (slot >= 0) await this.exclusive(slot, OP_UNDO, quantity);
  }

  /** Allotments mode: take up to `quantity` unsold units out of this replica's allotment; resolves with how many. */
  async release(sku: string, quantity: number): Promise<number> {
    const slot = this.stock.slotOf(sku);
    return slot < 0 ? 0 : this.exclusive(slot, OP_RELEASE, quantity);
  }

  async resetAll(): Promise<void> {
    const count = this.stock.count;
    for (let slot = 0; slot < count; slot++) await this.exclusive(slot, OP_RESET, 0);
  }

  async checkReady(): Promise<void> {}

  async close(): Promise<void> {}
}

/** Turn `applyStockOp`'s single-number answer into an outcome. */
export function outcomeOf(result: number): BuyOutcome {
  return result >= 0 ? { kind: 'sold', remaining: result } : { kind: 'sold_out', remaining: -1 - result };
}
