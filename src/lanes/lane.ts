/**
 * One small interface for every buy strategy. A lane owns its own counters per SKU, so the
 * strategies can be compared side by side without touching each other's stock, and each keeps
 * `remaining + sold == initial` at rest.
 */
import type { LaneName } from '../config.js';

/** `remaining` is the count right after this buy (sold) or as it stood when refused. */
export type BuyOutcome =
  | { readonly kind: 'sold'; readonly remaining: number }
  | { readonly kind: 'sold_out'; readonly remaining: number }
  | { readonly kind: 'unknown_sku' };

export interface StockLevel {
  readonly remaining: number;
  readonly sold: number;
  readonly initial: number;
}

export const UNKNOWN_SKU: BuyOutcome = Object.freeze({ kind: 'unknown_sku' });

export interface Lane {
  readonly name: LaneName;
  /**
   * Sell `quantity` units of `sku` if that many remain; never goes below zero. `key` is the
   * buyer's idempotency key, recorded with the sale where the lane keeps a durable record.
   */
  tryBuy(sku: string, quantity: number, key?: string | null): BuyOutcome | Promise<BuyOutcome>;
  /** Current counters, or null for an unknown SKU. */
  peek(sku: string): StockLevel | null | Promise<StockLevel | null>;
  /** Create `sku`, or reset it, to `stock` remaining and nothing sold. Returns true if created. */
  put(sku: string, stock: number): Promise<boolean>;
  /**
   * `put` for many SKUs in one round trip, in list order — or, with `keepExisting`, create only
   * those that do not exist yet (seeding). Lanes without it get one `put` per SKU.
   */
  putMany?(entries: ReadonlyArray<readonly [sku: string, stock: number]>, keepExisting: boolean): Promise<void>;
  /**
   * Add `quantity` to both remaining and initial; null for an unknown SKU. A lane with a durable
   * store (db, redis) records `key` in the same atomic step and applies a restock under a key it
   * has seen already nowhere again (answering the counts as they stand): exactly once per key.
   */
  restock(sku: string, quantity: number, key?: string | null): Promise<StockLevel | null>;
  /** Put every SKU back to remaining = initial, sold = 0. */
  resetAll(): Promise<void>;
  /** Throws DependencyUnavailableError when the lane cannot serve right now. */
  checkReady(): Promise<void>;
  close(): Promise<void>;
}
