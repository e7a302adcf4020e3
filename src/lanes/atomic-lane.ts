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
   * Admin work beside CAS buyers, who take no lock. Admin changes take turns among themselves
   * under the replica's admin lock (memory/admin-lock.ts), so this lane needs no mutex of its own.
   * Restock and undo are atomic adds. Set and reset write `remaining` in one atomic store — a
   * buyer's CAS either came before it (and is erased by it) or fails and re-reads the new count.
   * `sold` is not stored but derived as initial − remaining, so no buyer can leave it out of step.
   */
  protected exclusive(slot: number, op: StockOp, arg: number): number {
    const result = applyStockOp(this.words, slot * STRIDE, op, arg);
    this.stock.markDirty('atomic', slot);
    return result;
  }
}
