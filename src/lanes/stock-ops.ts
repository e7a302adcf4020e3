/**
 * The operations on one SKU's counters, as numbers so they can cross threads without allocation
 * (the signal lane posts them to its owner). `applyStockOp` assumes its caller has exclusive
 * access to the counters among admin changes: under the lock lane's mutex, on the signal lane's
 * single owner, or (the atomic lane) under the replica's admin lock. Beside the atomic lane's
 * lock-free buyers every write of `remaining` here is one atomic step — RESTOCK and UNDO add, SET
 * and RESET store — so a buyer's compare-and-swap either lands before it or re-reads after it;
 * `sold` is never stored (initial − remaining), so it cannot drift from the two.
 */
import { MAX_STOCK } from '../config.js';
import { INITIAL, REMAINING } from '../memory/shared-stock.js';

export const OP_BUY = 0;
export const OP_SET = 1;
export const OP_RESTOCK = 2;
export const OP_RESET = 3;
/** Give back a sale that could not be made durable. */
export const OP_UNDO = 4;
/**
 * Allotments mode: take up to `arg` unsold units out of this replica's allotment (to hand them back
 * to the pool); returns how many were taken. A compare-and-swap on `remaining`, so it is one
 * atomic step beside the atomic lane's lock-free buyers too; `initial` (units granted) drops by
 * the same amount, so sold = initial − remaining is unchanged.
 */
export const OP_RELEASE = 5;
export type StockOp = typeof OP_BUY | typeof OP_SET | typeof OP_RESTOCK | typeof OP_RESET | typeof OP_UNDO | typeof OP_RELEASE;

/**
 * SET or RESTOCK refused because the counts would pass MAX_STOCK (and could wrap the Int32 words).
 * After a successful SET or RESTOCK remaining is never negative, so the answer is unambiguous.
 */
export const STOCK_LIMIT_REFUSED = -1;

/**
 * Apply `op` with argument `arg` (quantity or stock). Returns the remaining stock afterwards;
 * a refused buy returns `-1 - remaining`, so one number carries both answers.
 */
export function applyStockOp(w: Int32Array, base: number, op: StockOp, arg: number): number {
  const remaining = Atomics.load(w, base + REMAINING);
  switch (op) {
    case OP_BUY:
      if (remaining < arg) return -1 - remaining;
      Atomics.store(w, base + REMAINING, remaining - arg);
      return remaining - arg;
    case OP_SET:
      if (arg > MAX_STOCK) return STOCK_LIMIT_REFUSED;
      Atomics.store(w, base + INITIAL, arg);
      Atomics.store(w, base + REMAINING, arg);
      return arg;
    case OP_RESTOCK:
      if (arg > MAX_STOCK - Atomics.load(w, base + INITIAL)) return STOCK_LIMIT_REFUSED;
      Atomics.add(w, base + INITIAL, arg);
      return Atomics.add(w, base + REMAINING, arg) + arg;
    case OP_UNDO:
      return Atomics.add(w, base + REMAINING, arg) + arg;
    case OP_RELEASE: {
      let current = remaining;
      for (;;) {
        const take = Math.min(current, arg);
        if (take <= 0) return 0;
        const seen = Atomics.compareExchange(w, base + REMAINING, current, current - take);
        if (seen === current) {
          Atomics.sub(w, base + INITIAL, take);
          return take;
        }
        current = seen;
      }
    }
    case OP_RESET: {
      const initial = Atomics.load(w, base + INITIAL);
      Atomics.store(w, base + REMAINING, initial);
      return initial;
    }
  }
}
