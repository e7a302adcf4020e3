/**
 * What the routes are built from: the dependencies `createApp` receives, and the one JSON shape of
 * an error answer. It sits below app.ts and every route module, so the routes depend on it and
 * not on the app that assembles them.
 */
import type { RequestHandler } from 'express';
import type { DurableMemoryAdmin } from '../cluster/ledger/durable-lane.js';
import type { Config, LaneName } from '../config.js';
import type { ServiceError } from '../errors.js';
import type { IdempotencyStore } from '../idempotency.js';
import type { DependencyCheck } from '../lanes/dependency-check.js';
import type { Lane } from '../lanes/lane.js';
import type { AdminLock } from '../memory/admin-lock.js';
import type { WorkerMetrics } from '../metrics.js';

export interface AppDeps {
  readonly config: Config;
  readonly lanes: Readonly<Record<LaneName, Lane>>;
  readonly idempotency: IdempotencyStore;
  readonly metrics: WorkerMetrics;
  /** Configured dependencies, checked by /readyz. */
  readonly dependencies: readonly DependencyCheck[];
  /**
   * Receives unexpected errors (the 500s) and answers the contract does not declare; expected
   * ones are answered, not logged.
   */
  readonly onUnexpectedError: (error: unknown) => void;
  /** Runs before every write (buy, admin): on a secondary it forwards to the primary. */
  readonly writeGate?: RequestHandler;
  /** Serialises admin changes across every thread of this replica (default: this thread only). */
  readonly adminLock?: AdminLock;
  /** With DURABILITY=sync: admin changes to the in-memory lanes, one ledger batch each, behind the sales barrier. */
  readonly memoryAdmin?: DurableMemoryAdmin | null;
}

export function errorBody(error: ServiceError): string {
  return JSON.stringify({ error: { code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) } });
}
