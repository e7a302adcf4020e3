/**
 * Admin changes (put, restock, reset) check every lane before they change any, so a refused change
 * leaves every lane as it was. That check-then-apply must not interleave with another admin
 * change, or two restocks could each pass the check and together pass the limit. Admin changes
 * are rare and short, so they simply take turns: on one thread with a promise chain, across the
 * worker threads of a replica with a word in shared memory that names its holder, so the
 * supervisor can free it if that worker dies mid-change. Waiting is bounded: past the bound the
 * caller answers 503 `admin_busy` and the client retries.
 */
import { ServiceError } from '../errors.js';
import type { SharedStock } from './shared-stock.js';

export interface AdminLock {
  run<T>(work: () => Promise<T>): Promise<T>;
}

/** For one thread (tests, single-process use). */
export class LocalAdminLock implements AdminLock {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

const POLL_MS = 2;

/** For every worker thread of one replica, over the shared stock's admin word. */
export class SharedAdminLock implements AdminLock {
  /**
   * @param holder this worker's non-zero id (its index + 1)
   * @param maxWaitMs how long to wait for another admin change before answering admin_busy
   */
  constructor(
    private readonly stock: SharedStock,
    private readonly holder: number,
    private readonly maxWaitMs: number,
  ) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.maxWaitMs;
    while (!this.stock.tryLockAdmin(this.holder)) {
      if (Date.now() > deadline) throw new ServiceError('admin_busy');
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    try {
      return await work();
    } finally {
      this.stock.unlockAdmin(this.holder);
    }
  }
}
