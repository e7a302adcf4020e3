/**
 * How a new primary rebuilds its in-memory lanes before it sells anything: replay the ledger in
 * (epoch, seq) order. The replay is pure (entries in, levels out), so it is tested on its own;
 * `rebuildFromLedger` then writes the result into the shared table. Idempotency answers are not
 * loaded here: they stay in the ledger and are looked up by key when a retry asks
 * (`LedgerKeyLookup`), so a takeover's memory does not grow with every key ever answered.
 *
 * The replay starts from the latest snapshot, not from the first batch, and a leader keeps
 * folding new batches into snapshots while it leads (`Compactor`), so a takeover replays only
 * what changed since. Both read the ledger a page at a time and yield to the event loop between
 * pages: the main thread that does this also renews the lease.
 */
import { MEMORY_LANES, type MemoryLaneName } from '../../config.js';
import type { Logger } from '../../logger.js';
import { INITIAL, REMAINING, STRIDE, type SharedStock } from '../../memory/shared-stock.js';
import { LEDGER_START, type BatchDocument, type Fence, type LedgerEntry, type LedgerPosition, type SnapshotDocument, dropInterval } from './ledger.js';

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export interface Level {
  remaining: number;
  sold: number;
  initial: number;
}

export class LedgerReplay {
  /** lane → sku → level */
  readonly levels = new Map<MemoryLaneName, Map<string, Level>>(MEMORY_LANES.map((lane) => [lane, new Map()]));
  /** The last batch applied (or the snapshot's position). */
  position: LedgerPosition = LEDGER_START;

  /** Start from a snapshot instead of from nothing. */
  static fromSnapshot(position: LedgerPosition, lanes: ReadonlyMap<MemoryLaneName, SnapshotDocument['levels']>): LedgerReplay {
    const replay = new LedgerReplay();
    replay.position = position;
    for (const [lane, levels] of lanes) {
      const skus = replay.levels.get(lane);
      for (const [sku, remaining, sold, initial] of levels) skus?.set(sku, { remaining, sold, initial });
    }
    return replay;
  }

  /** The levels in the shape a snapshot stores. */
  toSnapshot(): Map<MemoryLaneName, SnapshotDocument['levels']> {
    const lanes = new Map<MemoryLaneName, SnapshotDocument['levels']>();
    for (const [lane, skus] of this.levels) lanes.set(lane, [...skus].map(([sku, l]) => [sku, l.remaining, l.sold, l.initial]));
    return lanes;
  }

  /** Apply the ledger's batches after this replay's position, up to `until` (inclusive) if given. */
  catchUp(fence: Fence, until?: LedgerPosition): Promise<number> {
    return this.applyBatches(fence.replay(this.position), until);
  }

  /**
   * The compactor's fold: apply the batches of `epoch` after this replay's position up to `to`, a
   * range `Fence.closedUpTo` vouched for, looked up by `_id` (`Fence.range`). A replay that ended in
   * an earlier epoch starts `epoch` at its first number: a takeover seals the earlier epochs before
   * its rebuild reads them, so nothing is added to them afterwards.
   */
  foldRange(fence: Fence, epoch: number, to: number): Promise<number> {
    return this.applyBatches(fence.range(epoch, this.position.epoch === epoch ? this.position.seq : 0, to));
  }

  /** Apply `batches` in their order, up to `until` (inclusive) if given, yielding to the event loop now and then. */
  private async applyBatches(batches: AsyncIterable<BatchDocument>, until?: LedgerPosition): Promise<number> {
    let applied = 0;
    for await (const batch of batches) {
      if (until && (batch.epoch > until.epoch || (batch.epoch === until.epoch && batch.seq > until.seq))) break;
      for (const entry of batch.entries ?? []) this.apply(entry);
      this.position = { epoch: batch.epoch, seq: batch.seq };
      if (++applied % 100 === 0) await yieldToEventLoop();
    }
    return applied;
  }

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
        break;
      }
    }
  }
}

/** Replay the ledger (from its latest snapshot) into the shared table; returns the replay and how many batches it read. */
export async function rebuildFromLedger(fence: Fence, stock: SharedStock): Promise<{ replay: LedgerReplay; batches: number }> {
  const snapshot = await fence.latestSnapshot();
  const replay = snapshot ? LedgerReplay.fromSnapshot(snapshot.position, snapshot.lanes) : new LedgerReplay();
  const batches = await replay.catchUp(fence);
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
  return { replay, batches };
}

/**
 * Folds the ledger into snapshots while this replica leads, every `intervalMs`: the batches of the
 * current epoch up to the highest seq with none still open below it (a batch being written, or
 * being settled, holds the fold back until it is there or tombstoned), then a new snapshot at that
 * position, then the batches folded and older than the idempotency TTL are dropped.
 */
export class Compactor {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  /** When the folded batches past the TTL were last dropped (the first fold always drops). */
  private droppedAt = Number.NEGATIVE_INFINITY;
  /** How often to drop them (see `dropInterval`). */
  private readonly dropEveryMs: number;

  constructor(
    private readonly fence: Fence,
    private readonly replay: LedgerReplay,
    private readonly epoch: number,
    private readonly intervalMs: number,
    private readonly keepMs: number,
    private readonly log: Logger,
  ) {
    this.dropEveryMs = dropInterval(keepMs);
  }

  start(): void {
    this.timer = setInterval(() => void this.compactOnce(), this.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One fold; resolves with the snapshot's position afterwards. Errors are logged and retried next time. */
  async compactOnce(): Promise<LedgerPosition> {
    if (this.running) return this.replay.position;
    this.running = true;
    try {
      const from = this.replay.position;
      const closed = await this.fence.closedUpTo(this.epoch, from.epoch === this.epoch ? from.seq : 0);
      const until = { epoch: this.epoch, seq: closed };
      if (until.epoch > from.epoch || until.seq > from.seq) {
        await this.replay.foldRange(this.fence, this.epoch, closed);
        await this.fence.writeSnapshot(this.replay.position, this.replay.toSnapshot());
        if (Date.now() - this.droppedAt >= this.dropEveryMs) {
          await this.fence.dropFolded(this.replay.position, new Date(Date.now() - this.keepMs));
          this.droppedAt = Date.now();
        }
      }
    } catch (error) {
      this.log.warn({ err: error }, 'ledger compaction failed; retrying later');
    } finally {
      this.running = false;
    }
    return this.replay.position;
  }
}
