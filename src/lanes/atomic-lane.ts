/**
 * The `atomic` lane: a lock-free compare-and-swap loop on the shared counter. A buyer reads the
 * count, and swaps in count − quantity only if nobody changed it meanwhile; on a lost race it
 * reads again. It can never go below zero because the check and the swap are one atomic step.
 */
import { INITIAL, MUTEX, REMAINING, SOLD, STRIDE, lockWord, unlockWord } from '../memory/shared-stock.js';
import type { BuyOutcome } from './lane.js';
import { MemoryLane } from './memory-lane.js';
import { OP_RESET, OP_SET, applyStockOp, type StockOp } from './stock-ops.js';

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
    Atomics.add(w, slot * STRIDE + SOLD, quantity);
    this.stock.markDirty('atomic', slot);
    return { kind: 'sold', remaining: current - quantity };
  }

  /**
   * Admin work beside CAS buyers, who take no lock. Admin operations serialise among themselves on
   * the SKU's mutex word. Restock and undo are atomic adds. Set and reset swap `remaining` in one
   * atomic exchange — a buyer's CAS either came before it (and is erased by it) or fails and
   * re-reads the new count — and then take from `sold` exactly what had been sold before the swap
   * (initial − remaining as swapped out), so a buyer whose `sold` add lands after the swap still
   * leaves remaining + sold == initial at rest.
   */
  protected exclusive(slot: number, op: StockOp, arg: number): number {
    const w = this.words;
    const base = slot * STRIDE;
    lockWord(w, base + MUTEX);
    try {
      if (op !== OP_SET && op !== OP_RESET) return applyStockOp(w, base, op, arg);
      const initialBefore = Atomics.load(w, base + INITIAL);
      const target = op === OP_SET ? arg : initialBefore;
      const swappedOut = Atomics.exchange(w, base + REMAINING, target);
      Atomics.sub(w, base + SOLD, initialBefore - swappedOut);
      Atomics.store(w, base + INITIAL, target);
      return target;
    } finally {
      unlockWord(w, base + MUTEX);
      this.stock.markDirty('atomic', slot);
    }
  }
}
