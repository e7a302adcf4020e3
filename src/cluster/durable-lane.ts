/**
 * Durability for an in-memory lane (DURABILITY=sync): the lane still admits or refuses a buy in
 * memory — that is what keeps it fast and exact — and the sale then joins a group commit to the
 * ledger in MongoDB before the buyer hears 200. If the commit fails, the units go back and the
 * buyer gets a 503. Admin changes are logged first and applied after, so a replay of the ledger
 * always rebuilds the lane a buyer saw.
 */
import { MAX_STOCK } from '../config.js';
import { OutcomeUnknownError, StockLimitError } from '../errors.js';
import type { BuyOutcome, Lane, StockLevel } from '../lanes/lane.js';
import type { MemoryLane } from '../lanes/memory-lane.js';
import type { LedgerWriter } from './ledger.js';

export class DurableMemoryLane implements Lane {
  readonly name: MemoryLane['name'];

  constructor(
    private readonly inner: MemoryLane,
    private readonly ledger: LedgerWriter,
  ) {
    this.name = inner.name;
  }

  async tryBuy(sku: string, quantity: number, key: string | null = null): Promise<BuyOutcome> {
    const outcome = await this.inner.tryBuy(sku, quantity);
    if (outcome.kind !== 'sold') return outcome;
    try {
      await this.ledger.append({ op: 'buy', lane: this.name, sku, q: quantity, rem: outcome.remaining, ...(key === null ? {} : { key }) });
    } catch (error) {
      // An unknown outcome is settled (and the units given back, if need be) in the background.
      if (!(error instanceof OutcomeUnknownError)) await this.inner.undo(sku, quantity);
      throw error;
    }
    return outcome;
  }

  peek(sku: string): StockLevel | null {
    return this.inner.peek(sku);
  }

  async put(sku: string, stock: number): Promise<boolean> {
    // Refused before it is logged: the ledger holds only changes the lane could make.
    if (stock > MAX_STOCK) throw new StockLimitError({ sku, lane: this.name, limit: MAX_STOCK, wouldBe: stock });
    await this.ledger.append({ op: 'put', lane: this.name, sku, stock });
    return this.inner.put(sku, stock);
  }

  async restock(sku: string, quantity: number): Promise<StockLevel | null> {
    const level = this.inner.peek(sku);
    if (level === null) return null;
    if (level.initial + quantity > MAX_STOCK) {
      throw new StockLimitError({ sku, lane: this.name, limit: MAX_STOCK, initial: level.initial, quantity, wouldBe: level.initial + quantity });
    }
    await this.ledger.append({ op: 'restock', lane: this.name, sku, q: quantity });
    return this.inner.restock(sku, quantity);
  }

  async resetAll(): Promise<void> {
    await this.ledger.append({ op: 'reset', lane: this.name });
    await this.inner.resetAll();
  }

  async undo(sku: string, quantity: number): Promise<void> {
    await this.inner.undo(sku, quantity);
  }

  async checkReady(): Promise<void> {}

  async close(): Promise<void> {}
}
