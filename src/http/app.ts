/**
 * The Express application, built by a factory from its dependencies so that tests (and each
 * worker thread) get their own instance and can listen on any port. Routing, validation and
 * the mapping of errors to HTTP answers live here; the lanes know nothing of HTTP.
 */
import type { DurableMemoryAdmin } from '../cluster/durable-lane.js';
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express';
import type { Config, LaneName } from '../config.js';
import { DependencyUnavailableError, OutcomeUnknownError, ServiceError } from '../errors.js';
import type { IdempotencyStore } from '../idempotency.js';
import type { Lane } from '../lanes/lane.js';
import { SkuTableFullError } from '../memory/shared-stock.js';
import type { WorkerMetrics } from '../metrics.js';
import { adminRoutes } from './admin-routes.js';
import { probeRoutes, type DependencyCheck } from './probe-routes.js';
import { v1Routes } from './v1-routes.js';
import { v2Routes } from './v2-routes.js';

export interface AppDeps {
  readonly config: Config;
  readonly lanes: Readonly<Record<LaneName, Lane>>;
  readonly idempotency: IdempotencyStore;
  readonly metrics: WorkerMetrics;
  /** Configured dependencies, checked by /readyz. */
  readonly dependencies: readonly DependencyCheck[];
  /** Receives unexpected errors (the 500s); expected ones are answered, not logged. */
  readonly onUnexpectedError: (error: unknown) => void;
  /** Runs before every write (buy, admin): on a secondary it forwards to the primary. */
  readonly writeGate?: RequestHandler;
  /** With DURABILITY=sync: admin changes to the in-memory lanes, one ledger batch each, behind the sales barrier. */
  readonly memoryAdmin?: DurableMemoryAdmin | null;
}

const JSON_BODY_LIMIT = '4kb';

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  // No ETag hashing of every answer: a buy's answer is never cached.
  app.disable('etag');
  app.use((_req, res, next) => {
    deps.metrics.inFlight.inc();
    res.once('close', () => deps.metrics.inFlight.dec());
    next();
  });
  app.use(requireJsonBody, express.json({ limit: JSON_BODY_LIMIT, strict: false }));
  const writeGate = deps.writeGate;
  if (writeGate) app.use((req, res, next) => (req.method === 'GET' || req.method === 'HEAD' ? next() : writeGate(req, res, next)));
  // Hot routes first: Express tries each router in turn.
  app.use(v2Routes(deps));
  app.use(v1Routes(deps));
  app.use(adminRoutes(deps));
  app.use(probeRoutes(deps.dependencies));
  app.use((_req, _res, next) => next(new ServiceError('not_found')));
  app.use(errorHandler(deps));
  return app;
}

/** A body in any other format would be silently ignored by express.json; refuse it instead. */
const requireJsonBody: RequestHandler = (req, _res, next) => {
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  if (hasBody && !req.is('application/json')) return next(new ServiceError('unsupported_media_type'));
  next();
};

/** Body-parser errors carry a `type`; map the ones a client can cause to our catalogue. */
function asServiceError(error: unknown): ServiceError | null {
  if (error instanceof ServiceError) return error;
  if (error instanceof SkuTableFullError) return new ServiceError('sku_table_full', error.message);
  const type = typeof error === 'object' && error !== null ? (error as { type?: unknown }).type : undefined;
  switch (type) {
    case 'entity.parse.failed':
      return new ServiceError('invalid_json');
    case 'entity.too.large':
      return new ServiceError('payload_too_large', `The request body must be at most ${JSON_BODY_LIMIT}.`);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new ServiceError('unsupported_media_type');
    case 'request.aborted':
    case 'request.size.invalid':
      return new ServiceError('invalid_request', 'The request body was incomplete.');
    default:
      return null;
  }
}

export function errorBody(error: ServiceError): string {
  return JSON.stringify({ error: { code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) } });
}

function errorHandler(deps: AppDeps): ErrorRequestHandler {
  return (error: unknown, _req, res, _next) => {
    const known = asServiceError(error);
    if (error instanceof DependencyUnavailableError) deps.metrics.recordDependencyError(error.dependency);
    if (error instanceof OutcomeUnknownError && error.dependency !== 'primary') deps.metrics.recordDependencyError(error.dependency);
    const answer = known ?? new ServiceError('internal');
    if (!known) deps.onUnexpectedError(error);
    // 503: refused, try again; 504: retry with the same key to learn the outcome.
    if (answer.status === 503 || answer.status === 504) res.setHeader('Retry-After', '1');
    res.status(answer.status).type('application/json').send(errorBody(answer));
  };
}
