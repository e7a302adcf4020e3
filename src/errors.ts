/**
 * The error catalogue: every error the service can answer with, its stable machine-readable
 * code and its HTTP status, in one table (as fastify keeps lib/errors.js). Code anywhere throws
 * `new ServiceError('code', message)`; the HTTP layer maps it in one place, so a status can
 * never drift between routes.
 */

export const ERROR_CATALOGUE = {
  invalid_json: { status: 400, message: 'The request body is not valid JSON.' },
  invalid_request: { status: 400, message: 'The request is invalid.' },
  invalid_sku: { status: 400, message: 'The SKU must be 1-32 characters of A-Z a-z 0-9 . _ - and may not start with a dot.' },
  invalid_lane: { status: 400, message: 'Unknown lane.' },
  invalid_quantity: { status: 400, message: 'The quantity must be a positive integer.' },
  invalid_idempotency_key: { status: 400, message: 'The Idempotency-Key header must be 1-128 visible ASCII characters.' },
  unauthorized: { status: 401, message: 'A valid admin bearer token is required.' },
  admin_disabled: { status: 403, message: 'Admin routes are disabled: set ADMIN_TOKEN to enable them.' },
  not_found: { status: 404, message: 'No such route.' },
  unknown_sku: { status: 404, message: 'Unknown SKU.' },
  method_not_allowed: { status: 405, message: 'Method not allowed on this route.' },
  sold_out: { status: 409, message: 'Sold out.' },
  insufficient_stock: { status: 409, message: 'Not enough stock left for this quantity.' },
  idempotency_key_in_use: { status: 409, message: 'A request with this Idempotency-Key is still in progress.' },
  payload_too_large: { status: 413, message: 'The request body is too large.' },
  unsupported_media_type: { status: 415, message: 'Send the request body as application/json.' },
  idempotency_key_reused: { status: 422, message: 'This Idempotency-Key was used with a different request.' },
  stock_limit: { status: 422, message: 'A SKU may hold at most MAX_STOCK units on any lane.' },
  sku_table_full: { status: 507, message: 'No room for another SKU (raise MAX_SKUS).' },
  dependency_unavailable: { status: 503, message: 'A dependency this lane needs is unavailable.' },
  outcome_unknown: {
    status: 504,
    message: 'The request was passed on but no answer came back: it may or may not have taken effect. Retry with the same Idempotency-Key to learn which.',
  },
  admin_busy: { status: 503, message: 'Another admin change is being applied; retry shortly.' },
  overloaded: { status: 503, message: 'This replica has as much work queued as it takes; nothing was done, retry shortly.' },
  admin_change_in_progress: { status: 503, message: 'An admin change to the stock is being applied; nothing was sold, retry shortly.' },
  internal: { status: 500, message: 'Internal error.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export class ServiceError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string = ERROR_CATALOGUE[code].message,
    readonly details?: Readonly<Record<string, unknown>>,
  ) {
    super(message);
    this.name = 'ServiceError';
    this.status = ERROR_CATALOGUE[code].status;
  }
}

/** A dependency (MongoDB, Redis) failed or timed out: the caller gets a fast 503. */
export class DependencyUnavailableError extends ServiceError {
  constructor(
    readonly dependency: 'mongo' | 'redis',
    reason: string,
    cause?: unknown,
  ) {
    super('dependency_unavailable', `${dependency === 'mongo' ? 'MongoDB' : 'Redis'} is unavailable: ${reason}`, { dependency });
    this.name = 'DependencyUnavailableError';
    if (cause !== undefined) this.cause = cause;
  }
}

/**
 * A write whose fate is not known: it reached MongoDB, Redis or the primary, and then no answer
 * came (a timeout, a connection lost after sending). It may have been applied, so the caller must
 * not be told "nothing changed" (503): it gets 504 `outcome_unknown`, and a retry with the same
 * Idempotency-Key resolves it — the first sale's answer, or a sale made now, never two.
 *
 * `settledHere`: this replica settles the write in the background (a ledger batch: it tombstones
 * or finds the batch, then gives the stock back and frees the key, or records the sale's answer
 * under it; until then a retry with the key is told the request is still in flight). Otherwise
 * the store that received the write holds the key's record (db, redis lanes) or another replica
 * does (a forwarded buy), and this replica's claim on the key is simply released.
 */
export class OutcomeUnknownError extends ServiceError {
  constructor(
    readonly dependency: 'mongo' | 'redis' | 'primary',
    reason: string,
    readonly settledHere: boolean,
  ) {
    super('outcome_unknown', `${reason}: the outcome is unknown; retry with the same Idempotency-Key to learn it`, { dependency });
    this.name = 'OutcomeUnknownError';
  }
}

/**
 * A count would leave the range every lane can hold (0..MAX_STOCK). Thrown by the admin routes
 * before any lane changes, and by each lane itself as the last guard of its representation.
 */
export class StockLimitError extends ServiceError {
  constructor(details: { readonly sku: string; readonly lane?: string; readonly limit: number; readonly initial?: number; readonly quantity?: number; readonly wouldBe: number }) {
    super('stock_limit', `${details.sku} would hold ${details.wouldBe} units${details.lane ? ` on the ${details.lane} lane` : ''}; the limit is ${details.limit}.`, details);
    this.name = 'StockLimitError';
  }
}
