/**
 * What every thread of a replica must know, on every buy, about the cluster: whether this replica
 * may decide buys now, under which epoch, and whether writes are durable first. It lives in a
 * small SharedArrayBuffer written only by the main thread (which runs the elector) and read with
 * Atomics by the workers, so the hot-path check is a few loads and no message.
 *
 * "May decide buys" is a deadline, not a flag: the elector extends it on each successful renewal,
 * and a worker compares it with the monotonic clock itself. A primary whose renewals stall (a
 * paused process, a partition) therefore stops accepting buys on time even if the main thread
 * is too late to say so — before any other replica's lease timer can expire.
 */

const ROLE = 0;
const EPOCH = 1;
const WRITE_DEADLINE = 2;
/** 1 while an admin change to the in-memory lanes is being made (see `DurableMemoryAdmin`). */
const ADMIN_BARRIER = 3;
/** Where the main thread is in leading (`LeadPhase`), for /readyz to say why it is not ready. */
const LEAD_PHASE = 4;
/**
 * How many admin changes have been made (counted as each lowers the barrier): a group commit drops
 * batch numbers it reserved before the latest one (`GroupCommitOptions.adminChanges`).
 */
const ADMIN_CHANGES = 5;
/**
 * In-memory sales decided but not yet settled in the ledger, one word per worker thread (from
 * here on), so the supervisor can clear a dead worker's count.
 */
const SALES_IN_FLIGHT = 8;
const MAX_WORKERS = 256;
const WORDS = SALES_IN_FLIGHT + MAX_WORKERS;
const MAX_DEADLINE = 2 ** 31 - 1;

export const ROLE_SECONDARY = 0;
export const ROLE_PRIMARY = 1;

/**
 * What the main thread is doing about leading, as /readyz reports it: nothing (following, or a
 * primary that sells), taking over (an epoch, the seal and the ledger rebuild: MongoDB is needed
 * and buys answer 503 until it is done), or fenced (this replica's epoch was taken by a newer one
 * while it led: every in-memory buy is refused until it has stepped down).
 */
export const LEAD_PHASES = ['steady', 'taking_over', 'fenced'] as const;
export type LeadPhase = (typeof LEAD_PHASES)[number];

/** Milliseconds on the process-wide monotonic clock (the same in every thread). */
export function monotonicMs(): number {
  const [seconds, nanos] = process.hrtime();
  return seconds * 1000 + nanos / 1e6;
}

export class ClusterState {
  private readonly words: Int32Array;

  /**
   * @param origin monotonic ms that deadline words count from, so they fit in an Int32 (24 days);
   *   the main thread picks it and hands it to the workers with the buffer.
   */
  constructor(
    readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(WORDS * 4),
    readonly origin: number = monotonicMs(),
  ) {
    this.words = new Int32Array(buffer);
  }

  /** True while this replica is primary and its lease was renewed recently enough. */
  maySell(): boolean {
    return Atomics.load(this.words, ROLE) === ROLE_PRIMARY && monotonicMs() - this.origin < Atomics.load(this.words, WRITE_DEADLINE);
  }

  isPrimary(): boolean {
    return Atomics.load(this.words, ROLE) === ROLE_PRIMARY;
  }

  get epoch(): number {
    return Atomics.load(this.words, EPOCH);
  }

  /** Open the gate: primary under `epoch`, selling until `deadlineMs` (monotonic) unless extended. */
  becomePrimary(epoch: number, deadlineMs: number): void {
    Atomics.store(this.words, EPOCH, epoch);
    this.extend(deadlineMs);
    Atomics.store(this.words, ROLE, ROLE_PRIMARY);
  }

  extend(deadlineMs: number): void {
    Atomics.store(this.words, WRITE_DEADLINE, Math.min(Math.floor(deadlineMs - this.origin), MAX_DEADLINE));
  }

  /**
   * A buyer on an in-memory lane enters before it touches the counters and leaves once its sale
   * is settled in the ledger. False (and nothing entered) while an admin change is being made.
   * The increment comes before the barrier is read, and the admin raises the barrier before it
   * reads the count (both sequentially consistent), so one of the two always sees the other.
   */
  enterSale(worker: number): boolean {
    Atomics.add(this.words, SALES_IN_FLIGHT + worker, 1);
    if (Atomics.load(this.words, ADMIN_BARRIER) === 0) return true;
    Atomics.sub(this.words, SALES_IN_FLIGHT + worker, 1);
    return false;
  }

  leaveSales(worker: number, count = 1): void {
    Atomics.sub(this.words, SALES_IN_FLIGHT + worker, count);
  }

  salesInFlight(): number {
    let total = 0;
    for (let worker = 0; worker < MAX_WORKERS; worker++) total += Atomics.load(this.words, SALES_IN_FLIGHT + worker);
    return total;
  }

  /** A worker thread died: its sales will never be settled by it (the supervisor calls this). */
  clearSales(worker: number): void {
    Atomics.store(this.words, SALES_IN_FLIGHT + worker, 0);
  }

  /** Raise the admin barrier; false if another admin change holds it. */
  raiseAdminBarrier(): boolean {
    return Atomics.compareExchange(this.words, ADMIN_BARRIER, 0, 1) === 0;
  }

  lowerAdminBarrier(): void {
    // Counted before the barrier drops: a sale that gets past it sees the new count.
    Atomics.add(this.words, ADMIN_CHANGES, 1);
    Atomics.store(this.words, ADMIN_BARRIER, 0);
  }

  /** Admin changes made so far (each one lowering the barrier). */
  adminChanges(): number {
    return Atomics.load(this.words, ADMIN_CHANGES);
  }

  get leadPhase(): LeadPhase {
    return LEAD_PHASES[Atomics.load(this.words, LEAD_PHASE)] ?? 'steady';
  }

  setLeadPhase(phase: LeadPhase): void {
    Atomics.store(this.words, LEAD_PHASE, LEAD_PHASES.indexOf(phase));
  }

  becomeSecondary(epoch: number): void {
    Atomics.store(this.words, ROLE, ROLE_SECONDARY);
    Atomics.store(this.words, WRITE_DEADLINE, 0);
    Atomics.store(this.words, EPOCH, epoch);
  }
}
