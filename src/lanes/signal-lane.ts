/**
 * The `signal` lane: no lock and no compare-and-swap on the counter. A single owner (the main
 * thread) applies every operation in arrival order; worker threads hand their requests to it
 * over a MessagePort and are signalled with the result — the Node counterpart of posting work to
 * a single-threaded synchronization context. Requests that arrive in the same event-loop turn
 * travel as one batch, so the hand-off costs one message per turn, not one per buy.
 */
import type { MessagePort } from 'node:worker_threads';
import { ServiceError } from '../errors.js';
import { STRIDE, type SharedStock } from '../memory/shared-stock.js';
import type { BuyOutcome } from './lane.js';
import { MemoryLane, outcomeOf } from './memory-lane.js';
import { OP_BUY, applyStockOp, type StockOp } from './stock-ops.js';
import { TurnEnd } from '../turn-end.js';

/** How a signal-lane request reaches the owner. */
export interface SignalChannel {
  submit(slot: number, op: StockOp, arg: number): Promise<number>;
}

export class SignalLane extends MemoryLane {
  constructor(
    stock: SharedStock,
    private readonly channel: SignalChannel,
  ) {
    super('signal', stock);
  }

  protected async buyAt(slot: number, quantity: number): Promise<BuyOutcome> {
    return outcomeOf(await this.channel.submit(slot, OP_BUY, quantity));
  }

  protected exclusive(slot: number, op: StockOp, arg: number): Promise<number> {
    return this.channel.submit(slot, op, arg);
  }
}

/** The single owner: the only code that ever writes the signal lane's counters. */
export class SignalOwner {
  private readonly words: Int32Array;

  constructor(private readonly stock: SharedStock) {
    this.words = stock.words('signal');
  }

  apply(slot: number, op: StockOp, arg: number): number {
    const result = applyStockOp(this.words, slot * STRIDE, op, arg);
    this.stock.markDirty('signal', slot);
    return result;
  }

  /** Serve one worker's port: each message is a batch of [id, slot, op, arg] quadruples. */
  serve(port: MessagePort): void {
    port.on('message', (batch: Int32Array) => {
      const answers = new Int32Array(batch.length / 2);
      for (let i = 0, j = 0; i < batch.length; i += 4, j += 2) {
        answers[j] = batch[i] as number;
        answers[j + 1] = this.apply(batch[i + 1] as number, batch[i + 2] as StockOp, batch[i + 3] as number);
      }
      port.postMessage(answers);
    });
  }

  /** A channel for code running on the owner's own thread (single-process mode, tests). */
  localChannel(): SignalChannel {
    return { submit: async (slot, op, arg) => this.apply(slot, op, arg) };
  }
}

/** The worker side of the hand-off: queues requests and flushes them once per event-loop turn. */
export class PortSignalChannel implements SignalChannel {
  private nextId = 1;
  private readonly waiting = new Map<number, (result: number) => void>();
  private queue: number[] = [];
  private scheduled = false;

  /**
   * @param limit the most requests that may wait for the owner; beyond it a buy fails at once (503 overloaded).
   * @param turnEnd where a turn's requests leave: the thread's, shared with the admission gate (see TurnEnd).
   */
  constructor(
    private readonly port: MessagePort,
    private readonly limit = Number.POSITIVE_INFINITY,
    private readonly turnEnd: TurnEnd = new TurnEnd(),
  ) {
    port.on('message', (answers: Int32Array) => {
      for (let j = 0; j < answers.length; j += 2) {
        const id = answers[j] as number;
        const resolve = this.waiting.get(id);
        this.waiting.delete(id);
        resolve?.(answers[j + 1] as number);
      }
    });
  }

  submit(slot: number, op: StockOp, arg: number): Promise<number> {
    // Only buys are refused: an admin change or the undo of a sale must never be dropped.
    if (op === OP_BUY && this.waiting.size >= this.limit) return Promise.reject(new ServiceError('overloaded'));
    const id = this.nextId;
    this.nextId = this.nextId === 0x7fffffff ? 1 : this.nextId + 1;
    this.queue.push(id, slot, op, arg);
    if (!this.scheduled) {
      this.scheduled = true;
      this.turnEnd.schedule(this.flush);
    }
    return new Promise((resolve) => this.waiting.set(id, resolve));
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const batch = Int32Array.from(this.queue);
    this.queue = [];
    this.port.postMessage(batch);
  };
}
