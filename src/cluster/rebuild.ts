/**
 * How a new primary rebuilds its in-memory lanes before it sells anything: replay the ledger in
 * (epoch, seq) order. The replay is pure (entries in, levels and idempotency answers out), so it
 * is tested on its own; `rebuildFromLedger` then writes the result into the shared table.
 */
import { MEMORY_LANES, type MemoryLaneName } from '../config.js';
import { buyFingerprint, soldBody, type StoredResponse } from '../idempotency.js';
import { INITIAL, REMAINING, STRIDE, type SharedStock } from '../memory/shared-stock.js';
import type { Fence, LedgerEntry } from './ledger.js';

export interface Level {
  remaining: number;
  sold: number;
  initial: number;
}

export interface ReplayedAnswer {
  readonly key: string;
  readonly fingerprint: string;
  readonly response: StoredResponse;
}

export class LedgerReplay {
  /** lane → sku → level */
  readonly levels = new Map<MemoryLaneName, Map<string, Level>>(MEMORY_LANES.map((lane) => [lane, new Map()]));
  readonly answers: ReplayedAnswer[] = [];

  apply(entry: LedgerEntry): void {
    const skus = this.levels.get(entry.lane);
    if (!skus) return;
    switch (entry.op) {
      case 'seed':
        if (!skus.has(entry.sku)) skus.set(entry.sku, { remaining: entry.stock, sold: 0, initial: entry.stock });
        break;
      case 'put':
        skus.set(entry.sku, { remaining: entry.stock, sold: 0, initial: entry.stock });
        break;
      case 'restock': {
        const level = skus.get(entry.sku);
        if (level) {
          level.remaining += entry.q;
          level.initial += entry.q;
        }
        break;
      }
      case 'reset':
        for (const level of skus.values()) {
          level.remaining = level.initial;
          level.sold = 0;
        }
        break;
      case 'buy': {
        const level = skus.get(entry.sku);
        if (level) {
          level.remaining -= entry.q;
          level.sold += entry.q;
        }
        if (entry.key !== undefined) {
          this.answers.push({
            key: entry.key,
            fingerprint: buyFingerprint(entry.lane, entry.sku, entry.q),
            response: { status: 200, body: soldBody(entry.lane, entry.sku, entry.q, entry.rem) },
          });
        }
        break;
      }
    }
  }
}

/** Replay the whole ledger into the shared table; returns the replay (for its answers). */
export async function rebuildFromLedger(fence: Fence, stock: SharedStock): Promise<LedgerReplay> {
  const replay = new LedgerReplay();
  for await (const batch of fence.replay()) for (const entry of batch.entries ?? []) replay.apply(entry);
  for (const [lane, skus] of replay.levels) {
    const words = stock.words(lane);
    for (const [sku, level] of skus) {
      const { slot } = stock.ensure(sku, level.initial);
      const base = slot * STRIDE;
      // The table keeps no `sold`: it is initial − remaining, which the replay keeps equal.
      Atomics.store(words, base + REMAINING, level.remaining);
      Atomics.store(words, base + INITIAL, level.initial);
      stock.markDirty(lane, slot);
    }
  }
  return replay;
}
