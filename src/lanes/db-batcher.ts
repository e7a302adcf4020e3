import { ServiceError } from '../errors.js';

/**
 * Combining for the hot SKU. In a flash sale every buyer hits one MongoDB document, and one
 * conditional update per buyer makes that document the bottleneck: updates to it are serialised
 * anyway. So while one update for a SKU is in flight, buys of the same SKU that arrive queue up,
 * and when it returns the whole queue goes as the next single update. Under load the cost per
 * buy falls with the queue length; with one buyer at a time nothing waits.
 */

export interface PendingBuy<Outcome> {
  readonly quantity: number;
  readonly key: string | null;
  resolve(outcome: Outcome): void;
  reject(error: Error): void;
}

/** Applies one group of buys of one SKU, settling every buy in it (resolve or reject). */
export type ApplyGroup<Outcome> = (sku: string, group: PendingBuy<Outcome>[]) => Promise<void>;

export class SkuBatcher<Outcome> {
  /** SKUs with an update in flight, and the buys waiting for the next one. */
  private readonly waiting = new Map<string, PendingBuy<Outcome>[]>();

  /** @param limit the most buys that may wait for one SKU's next update; beyond it, 503 overloaded at once. */
  constructor(
    private readonly apply: ApplyGroup<Outcome>,
    private readonly limit = Number.POSITIVE_INFINITY,
  ) {}

  submit(sku: string, quantity: number, key: string | null): Promise<Outcome> {
    return new Promise((resolve, reject) => {
      const buy = { quantity, key, resolve, reject };
      const queue = this.waiting.get(sku);
      if (queue) {
        if (queue.length >= this.limit) return reject(new ServiceError('overloaded'));
        queue.push(buy);
        return;
      }
      this.waiting.set(sku, []);
      void this.drain(sku, [buy]);
    });
  }

  private async drain(sku: string, first: PendingBuy<Outcome>[]): Promise<void> {
    let group = first;
    while (group.length > 0) {
      try {
        await this.apply(sku, group);
      } catch (error) {
        // apply settles what it can; anything left unsettled fails with the error.
        const failure = error instanceof Error ? error : new Error(String(error));
        for (const buy of group) buy.reject(failure);
      }
      group = this.waiting.get(sku) ?? [];
      if (group.length === 0) this.waiting.delete(sku);
      else this.waiting.set(sku, []);
    }
  }
}
