/**
 * An in-memory lane as a worker sees it in allotments mode. The shared table's counters of the
 * lane hold this replica's allotment (units left, units granted this term), and a buy is decided
 * on them with the lane's own strategy — atomic CAS, lock, signal owner — at memory speed, then
 * group-committed to this replica's own fenced ledger stream before the 200, exactly as a
 * primary's sale is. A sale that cannot be made durable gives its units back to the allotment it
 * came from, and only to it (not to one of a later term).
 *
 * When the allotment is short of the quantity (or the SKU was created on another replica), the
 * main thread is asked for more (`replenish`): a chunk from the pool, or units handed back by
 * other replicas; it answers sold out only when none of them has enough either. Peek and the
 * admin calls act on the global pool, through the main thread.
 */
import { MAX_STOCK } from '../../config.js';
import { DependencyUnavailableError, ServiceError, StockLimitError } from '../../errors.js';
import { UNKNOWN_SKU, type BuyOutcome, type Lane, type StockLevel } from '../../lanes/lane.js';
import type { MemoryLane } from '../../lanes/memory-lane.js';
import type { ClusterState } from '../cluster-state.js';
import { sellDurably } from '../ledger/durable-lane.js';
import type { LedgerWriter } from '../ledger/ledger.js';
import type { AllotmentAnswer, AllotmentRequest } from './protocol.js';

/** Rounds of "allotment short → replenished → buy again" before a buy gives up with a 503 (others keep taking what arrives). */
const REPLENISH_ROUNDS = 5;

function raise(answer: Extract<AllotmentAnswer, { kind: 'error' }>): never {
  throw new ServiceError(answer.code, answer.message, answer.details);
}

export class AllotmentLane implements Lane {
  readonly name: MemoryLane['name'];

  constructor(
    private readonly inner: MemoryLane,
    private readonly ledger: LedgerWriter,
    private readonly state: ClusterState,
    private readonly ask: (request: AllotmentRequest) => Promise<AllotmentAnswer>,
    private readonly worker: number,
  ) {
    this.name = inner.name;
  }

  async tryBuy(sku: string, quantity: number, key: string | null = null): Promise<BuyOutcome> {
    if (!this.ledger.hasRoom()) throw new ServiceError('overloaded');
    for (let round = 0; round < REPLENISH_ROUNDS; round++) {
      const outcome = await this.sellFromAllotment(sku, quantity, key);
      if (outcome.kind === 'sold') return outcome;
      const answer = await this.ask({ op: 'replenish', lane: this.name, sku, quantity });
      switch (answer.kind) {
        case 'granted':
          continue;
        case 'sold_out':
          return { kind: 'sold_out', remaining: answer.remaining };
        case 'unknown_sku':
          return UNKNOWN_SKU;
        case 'error':
          return raise(answer);
        default:
          throw new Error(`unexpected answer to replenish: ${answer.kind}`);
      }
    }
    throw new DependencyUnavailableError('mongo', 'other buyers kept taking the units granted to this replica; retry shortly');
  }

  /** One attempt on this replica's allotment: sold (and durable), or short of units. */
  private sellFromAllotment(sku: string, quantity: number, key: string | null): Promise<BuyOutcome> {
    if (!this.state.maySell()) throw new DependencyUnavailableError('mongo', 'this replica holds no live allotment term right now');
    return sellDurably(this.inner, this.ledger, this.state, this.worker, sku, quantity, key);
  }

  async peek(sku: string): Promise<StockLevel | null> {
    const answer = await this.ask({ op: 'peek', lane: this.name, sku });
    if (answer.kind === 'error') raise(answer);
    return answer.kind === 'level' ? answer.level : null;
  }

  async put(sku: string, stock: number): Promise<boolean> {
    if (stock > MAX_STOCK) throw new StockLimitError({ sku, lane: this.name, limit: MAX_STOCK, wouldBe: stock });
    const answer = await this.ask({ op: 'put', lane: this.name, sku, stock });
    if (answer.kind === 'error') raise(answer);
    return answer.kind === 'created' && answer.created;
  }

  async restock(sku: string, quantity: number, key: string | null = null): Promise<StockLevel | null> {
    const answer = await this.ask({ op: 'restock', lane: this.name, sku, quantity, key });
    if (answer.kind === 'error') raise(answer);
    return answer.kind === 'level' ? answer.level : null;
  }

  async resetAll(): Promise<void> {
    const answer = await this.ask({ op: 'reset', lane: this.name });
    if (answer.kind === 'error') raise(answer);
  }

  async checkReady(): Promise<void> {
    if (!this.state.maySell()) throw new DependencyUnavailableError('mongo', 'no allotment term yet');
  }

  async close(): Promise<void> {}
}
