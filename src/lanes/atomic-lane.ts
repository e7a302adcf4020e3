/**
 * The `atomic` lane: a lock-free compare-and-swap loop on the shared counter. A buyer reads the
 * count, and swaps in count − quantity only if nobody changed it meanwhile; on a lost race it
 * reads again. It can never go below zero because the check and the swap are one atomic step.
 */
import { REMAINING, STRIDE } from '../memory/shared-stock.js';
import type { BuyOutcome } from './lane.js';
import { MemoryLane } from './memory-lane.js';
import { applyStockOp, type StockOp } from './stock-ops.js';

export class AtomicLane extends MemoryLane {
  protected buyAt(slot: number, quantity: number): BuyOutcome {
    const w = this.words;
    const at = slot * STRIDE + REMAINING;
    let current = Atomics.load(w, at);
    for (;;) {
      if (current < quantity) return { kind: 'sold_out', remaining: current };
      const seen = Atomics.compareExchange(w, at, current, current - quantity);
      if (seen === current) break;
      current = seen;
    }
    this.stock.markDirty('atomic', slot);
    return { kind: 'sold', remaining: current - quantity };
  }

  /**
   * Restock is an atomic add, safe beside CAS buyers. Setting or resetting a SKU while buys are
   * in flight on this lane is not atomic as a whole (a buy may land just after): admin resets are
   * meant for between sales.
   */
  protected exclusive(slot: number, op: StockOp, arg: number): number {
    const result = applyStockOp(this.words, slot * STRIDE, op, arg);
    this.stock.markDirty('atomic', slot);
    return result;
  }
}
