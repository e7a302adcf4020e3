/**
 * Durability for an in-memory lane (DURABILITY=sync): the lane still admits or refuses a buy in
 * memory — that is what keeps it fast and exact — and the sale then joins a group commit to the
 * ledger in MongoDB before the buyer hears 200. If the commit fails, the units go back and the
 * buyer gets a 503 (or a 504 while the batch's fate is settled).
 *
 * Admin changes (PUT, restock, reset) must land in the ledger in the same order, relative to the
 * sales, as they land in memory — otherwise a replay rebuilds a lane no buyer saw (a PUT logged
 * before a sale that memory applied after it would sell that unit again). Sales of different
 * worker threads reach the ledger through different group commits, so their order there is not
 * memory's order; what makes the two agree is a barrier (`DurableMemoryAdmin`): an admin change
 * first stops new sales on the in-memory lanes (they are refused with a 503, nothing changed),
 * waits until every sale already decided is settled in the ledger, writes its entries for all
 * three lanes as one batch, applies them to memory, and lets sales go on. Sales decided before
 * the change are in earlier batches, sales after it in later ones: replay equals memory exactly.
 */
import { MAX_STOCK, MEMORY_LANES, type MemoryLaneName } from '../../config.js';
import { DependencyUnavailableError, OutcomeUnknownError, ServiceError, StockLimitError } from '../../errors.js';
import type { BuyOutcome, Lane, StockLevel } from '../../lanes/lane.js';
import type { MemoryLane } from '../../lanes/memory-lane.js';
import { monotonicMs, type ClusterState } from '../cluster-state.js';
import type { LedgerEntry, LedgerWriter } from './ledger.js';

const adminBusy = () => new ServiceError('admin_change_in_progress');

/**
 * A sale on an in-memory lane made durable — the one sequence both durable kinds of lane run (a
 * primary's, and a replica's allotment): enter the sales barrier, decide in memory, join the group
 * commit, and give the units back if the commit failed. They go back only under the term they
 * were sold in: once the epoch moved, memory is being rebuilt from the ledger, where this sale is
 * not. An unknown outcome is settled (and the units given back, if need be) in the background; the
 * sale stays in flight until then, so no admin change can slip in between.
 */
export async function sellDurably(inner: MemoryLane, ledger: LedgerWriter, state: ClusterState, worker: number, sku: string, quantity: number, key: string | null): Promise<BuyOutcome> {
  if (!state.enterSale(worker)) throw adminBusy();
  let settledLater = false;
  try {
    const epoch = state.epoch;
    // atomic and lock decide synchronously: no extra turn of the microtask queue for them.
    const decided = inner.tryBuy(sku, quantity);
    const outcome = decided instanceof Promise ? await decided : decided;
    if (outcome.kind !== 'sold') return outcome;
    try {
      await ledger.appendSale(inner.name, sku, quantity, outcome.remaining, key);
    } catch (error) {
      if (error instanceof OutcomeUnknownError) settledLater = true;
      else if (state.epoch === epoch) await inner.undo(sku, quantity);
      throw error;
    }
    return outcome;
  } finally {
    if (!settledLater) state.leaveSales(worker);
  }
}

export class DurableMemoryLane implements Lane {
  readonly name: MemoryLane['name'];

  constructor(
    private readonly inner: MemoryLane,
    private readonly ledger: LedgerWriter,
    private readonly state: ClusterState,
    private readonly admin: DurableMemoryAdmin,
    /** This worker thread's index: its own count of sales in flight. */
    private readonly worker: number,
  ) {
    this.name = inner.name;
  }

  tryBuy(sku: string, quantity: number, key: string | null = null): Promise<BuyOutcome> {
    // Refused before anything is decided: a full ledger queue answers at once, nothing changed.
    if (!this.ledger.hasRoom()) throw new ServiceError('overloaded');
    return sellDurably(this.inner, this.ledger, this.state, this.worker, sku, quantity, key);
  }

  peek(sku: string): StockLevel | null {
    return this.inner.peek(sku);
  }

  put(sku: string, stock: number): Promise<boolean> {
    return this.admin.put(sku, stock);
  }

  async restock(sku: string, quantity: number): Promise<StockLevel | null> {
    return (await this.admin.restock(sku, quantity, null))?.levels[this.name] ?? null;
  }

  resetAll(): Promise<void> {
    return this.admin.resetAll();
  }

  async undo(sku: string, quantity: number): Promise<void> {
    await this.inner.undo(sku, quantity);
  }

  async checkReady(): Promise<void> {}

  async close(): Promise<void> {}
}

/**
 * Admin changes to all three in-memory lanes at once, one ledger batch each, behind the sales
 * barrier (see the module comment). `ledger` must be a writer of its own (not one that buys share),
 * so that an admin batch of unknown outcome is settled by `settle` below.
 */
export class DurableMemoryAdmin {
  private ledger: LedgerWriter | null = null;
  private readonly inner: Partial<Record<MemoryLaneName, MemoryLane>> = {};

  constructor(
    private readonly state: ClusterState,
    /** Whether a restock with this (prefixed) key is already in the ledger. */
    private readonly restockRecorded: (key: string) => Promise<boolean>,
    private readonly timeoutMs: number,
  ) {}

  /** Each in-memory lane, as it is wrapped (buildLanes wraps them one by one). */
  addLane(lane: MemoryLane): void {
    this.inner[lane.name] = lane;
  }

  private lane(name: MemoryLaneName): MemoryLane {
    const lane = this.inner[name];
    if (!lane) throw new Error(`DurableMemoryAdmin has no ${name} lane`);
    return lane;
  }

  /** The writer is built with `settle` as its unknown-outcome handler, hence set after construction. */
  useLedger(ledger: LedgerWriter): void {
    this.ledger = ledger;
  }

  /** Create `sku` (true) or set it to `stock` with nothing sold, on every in-memory lane. */
  async put(sku: string, stock: number): Promise<boolean> {
    let created = false;
    await this.change(
      MEMORY_LANES.map((lane) => ({ op: 'put', lane, sku, stock })),
      () => {
        created = this.lane('atomic').peek(sku) === null;
        return true;
      },
    );
    return created;
  }

  /**
   * Create or set many SKUs on every in-memory lane (a chunk of a bulk load), as one ledger batch
   * behind one barrier rather than one per SKU. Resolves with how many were new.
   */
  async putMany(entries: ReadonlyArray<readonly [string, number]>): Promise<number> {
    let created = 0;
    await this.change(
      entries.flatMap(([sku, stock]) => MEMORY_LANES.map((lane): LedgerEntry => ({ op: 'put', lane, sku, stock }))),
      () => {
        created = new Set(entries.filter(([sku]) => this.lane('atomic').peek(sku) === null).map(([sku]) => sku)).size;
        return true;
      },
    );
    return created;
  }

  /**
   * Add `quantity` to every in-memory lane; null for an unknown SKU. With `key`, a restock already
   * recorded under it (before a failover, say) is not applied again: the levels as they are now
   * are returned instead.
   */
  async restock(sku: string, quantity: number, key: string | null): Promise<{ levels: Record<MemoryLaneName, StockLevel>; applied: boolean } | null> {
    if (this.lane('atomic').peek(sku) === null) return null;
    const recordKey = key === null ? undefined : `admin:${key}`;
    let applied = false;
    await this.change(MEMORY_LANES.map((lane) => ({ op: 'restock', lane, sku, q: quantity, ...(recordKey === undefined ? {} : { key: recordKey }) })), async () => {
      applied = recordKey === undefined ? true : !(await this.restockRecorded(recordKey));
      // Checked behind the barrier, before anything is logged: the ledger holds only changes every lane can make.
      const level = this.lane('atomic').peek(sku);
      if (applied && level !== null && level.initial + quantity > MAX_STOCK) {
        throw new StockLimitError({ sku, limit: MAX_STOCK, initial: level.initial, quantity, wouldBe: level.initial + quantity });
      }
      return applied;
    });
    const levels = this.levels(sku);
    return levels && { levels, applied };
  }

  /** Every SKU of every in-memory lane back to its initial stock, nothing sold. */
  async resetAll(): Promise<void> {
    await this.change(
      MEMORY_LANES.map((lane) => ({ op: 'reset', lane })),
      () => true,
    );
  }

  /** A batch written in the background after its outcome was unknown: apply it if it landed, then let sales go on. */
  settle(entries: readonly LedgerEntry[], written: Promise<boolean>): void {
    void written
      .then(async (landed) => {
        if (landed) await this.apply(entries);
      })
      .finally(() => this.state.lowerAdminBarrier());
  }

  private levels(sku: string): Record<MemoryLaneName, StockLevel> | null {
    const atomic = this.lane('atomic').peek(sku);
    const lock = this.lane('lock').peek(sku);
    const signal = this.lane('signal').peek(sku);
    return atomic && lock && signal ? { atomic, lock, signal } : null;
  }

  /**
   * Raise the barrier, wait for the sales in flight to settle, then — if `wanted()` still says
   * so — write `entries` as one batch and apply them to memory. The barrier stays up while a
   * batch of unknown outcome is being settled (`settle` lowers it).
   */
  private async change(entries: LedgerEntry[], wanted: () => boolean | Promise<boolean>): Promise<void> {
    if (!this.ledger) throw new Error('DurableMemoryAdmin used before its ledger was set');
    const deadline = monotonicMs() + this.timeoutMs;
    while (!this.state.raiseAdminBarrier()) {
      if (monotonicMs() > deadline) throw adminBusy();
      await new Promise((r) => setTimeout(r, 1));
    }
    let settling = false;
    try {
      while (this.state.salesInFlight() > 0) {
        if (monotonicMs() > deadline) throw new DependencyUnavailableError('mongo', 'sales in flight did not settle in time for the admin change');
        await new Promise((r) => setTimeout(r, 1));
      }
      if (!(await wanted())) return;
      try {
        await this.ledger.appendAll(entries);
      } catch (error) {
        settling = error instanceof OutcomeUnknownError;
        throw error;
      }
      await this.apply(entries);
    } finally {
      if (!settling) this.state.lowerAdminBarrier();
    }
  }

  private async apply(entries: readonly LedgerEntry[]): Promise<void> {
    for (const entry of entries) {
      const lane = this.lane(entry.lane);
      switch (entry.op) {
        case 'put':
          await lane.put(entry.sku, entry.stock);
          break;
        case 'restock':
          await lane.restock(entry.sku, entry.q);
          break;
        case 'reset':
          await lane.resetAll();
          break;
        default:
          break;
      }
    }
  }
}
