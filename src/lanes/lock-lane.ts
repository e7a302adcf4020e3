/**
 * The `lock` lane: a mutex word per SKU in shared memory. A buyer takes the mutex
 * (compareExchange; Atomics.wait to sleep when it is contended, Atomics.notify to wake the next),
 * checks and decrements, and releases it. The critical section is a few instructions and is
 * never held across an `await`, so a sleeping thread is woken within microseconds.
 */
import { STRIDE, lockWord, unlockWord } from '../memory/shared-stock.js';
import type { BuyOutcome } from './lane.js';
import { MemoryLane, outcomeOf } from './memory-lane.js';
import { OP_BUY, applyStockOp, type StockOp } from './stock-ops.js';

export class LockLane extends MemoryLane {
  protected buyAt(slot: number, quantity: number): BuyOutcome {
    return outcomeOf(this.exclusive(slot, OP_BUY, quantity));
  }

  protected exclusive(slot: number, op: StockOp, arg: number): number {
    const mutexes = this.stock.mutexes;
    lockWord(mutexes, slot);
    try {
      return applyStockOp(this.words, slot * STRIDE, op, arg);
    } finally {
      unlockWord(mutexes, slot);
      this.stock.markDirty('lock', slot);
    }
  }
}
