/**
 * What a worker thread asks the main thread in allotments mode, and the answers. Buys never cross
 * threads while the replica's allotment has units: only a buy that finds it empty asks for more
 * (`replenish`), and Peek and the admin calls, which act on the pool in MongoDB, are answered by
 * the main thread, which holds the term, the pool's bookkeeping and the peers' levels. Errors
 * travel as catalogue codes, so the worker answers them exactly as if they were its own.
 */
import type { MemoryLaneName } from '../../config.js';
import type { ErrorCode } from '../../errors.js';
import type { StockLevel } from '../../lanes/lane.js';

export type AllotmentRequest =
  | { readonly op: 'replenish'; readonly lane: MemoryLaneName; readonly sku: string; readonly quantity: number }
  | { readonly op: 'peek'; readonly lane: MemoryLaneName; readonly sku: string }
  | { readonly op: 'put'; readonly lane: MemoryLaneName; readonly sku: string; readonly stock: number }
  | { readonly op: 'restock'; readonly lane: MemoryLaneName; readonly sku: string; readonly quantity: number; readonly key: string | null }
  | { readonly op: 'reset'; readonly lane: MemoryLaneName };

export type AllotmentAnswer =
  /** This replica's allotment now holds at least the quantity asked for: buy again. */
  | { readonly kind: 'granted' }
  /** Pool empty and every other holder's fresh level says it cannot make up the quantity. */
  | { readonly kind: 'sold_out'; readonly remaining: number }
  | { readonly kind: 'unknown_sku' }
  | { readonly kind: 'level'; readonly level: StockLevel | null }
  | { readonly kind: 'created'; readonly created: boolean }
  | { readonly kind: 'done' }
  | { readonly kind: 'error'; readonly code: ErrorCode; readonly message: string; readonly details?: Readonly<Record<string, unknown>> };
