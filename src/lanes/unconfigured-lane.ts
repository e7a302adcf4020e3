/**
 * Stands in for the `db` or `redis` lane when its dependency is not configured at all: buys and
 * peeks answer a clear 503 naming the missing variable, and admin operations skip it (it holds
 * no stock), so the in-memory lanes work on their own.
 */
import type { LaneName } from '../config.js';
import { ServiceError } from '../errors.js';
import type { BuyOutcome, Lane, StockLevel } from './lane.js';

export class UnconfiguredLane implements Lane {
  private readonly error: ServiceError;

  constructor(
    readonly name: LaneName,
    variable: string,
  ) {
    this.error = new ServiceError('dependency_unavailable', `The ${name} lane is not configured: set ${variable}.`, { variable });
  }

  async tryBuy(): Promise<BuyOutcome> {
    throw this.error;
  }

  async peek(): Promise<StockLevel | null> {
    throw this.error;
  }

  async put(): Promise<boolean> {
    return true;
  }

  /** Nothing to store, in one step rather than one promise per SKU. */
  async putMany(): Promise<void> {}

  async restock(): Promise<StockLevel | null> {
    return null;
  }

  async resetAll(): Promise<void> {}

  async checkReady(): Promise<void> {}

  async close(): Promise<void> {}
}
