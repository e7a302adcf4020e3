/**
 * The Express application, built by a factory from its dependencies so that tests (and each
 * worker thread) get their own instance and can listen on any port. Routing, validation and
 * the mapping of errors to HTTP answers live here; the lanes know nothing of HTTP.
 */
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express';
import type { Config, LaneName } from '../config.js';
import { DependencyUnavailableError, ServiceError } from '../errors.js';
import type { IdempotencyStore } from '../idempotency.js';
import type { Lane } from '../lanes/lane.js';
import { SkuTableFullError } from '../memory/shared-stock.js';
import type { WorkerMetrics } from '../metrics.js';
import { adminRoutes } from './admin-routes.js';
import { bulkRoutes } from './bulk-routes.js';
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
}

const JSON_BODY_LIMIT = '4kb';

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  // No ETag hashing of every answer: a buy's answer is never cached.
  app.disable('etag');
  // Every request passes these two layers before its route; each is one function, not a chain
  // of small middlewares, because Express pays for every layer on every request.
  app.use(frontDoor(deps));
  // Streams its own body (NDJSON or CSV), so it comes before the JSON parser. Mounted under its
  // prefix, so every other request passes it with one path check instead of a router's walk.
  app.use('/v2/admin', bulkRoutes(deps));
  app.use(jsonBody());
  // Hot routes first: Express tries each router in turn.
  v2Routes(deps, app);
  v1Routes(deps, app);
  app.use(adminRoutes(deps));
  app.use(probeRoutes(deps.dependencies));
  app.use((_req, _res, next) => next(new ServiceError('not_found')));
  app.use(errorHandler(deps));
  return app;
}

/**
 * Count the request in flight until its response closes, and pass every write through the gate
 * (on a replica that may not sell, the gate forwards it to the primary).
 */
function frontDoor(deps: AppDeps): RequestHandler {
  const { metrics, writeGate } = deps;
  return (req, res, next) => {
    metrics.trackInFlight(res);
    if (writeGate === undefined || req.method === 'GET' || req.method === 'HEAD') return next();
    writeGate(req, res, next);
  };
}

/**
 * JSON bodies only: a body in any other format would be silently ignored by express.json, so it
 * is refused instead. A request without a body (the usual buy) skips the parser altogether.
 */
function jsonBody(): RequestHandler {
  const parse = express.json({ limit: JSON_BODY_LIMIT, strict: false });
  return (req, res, next) => {
    const { headers } = req;
    const length = headers['content-length'];
    if (headers['transfer-encoding'] === undefined && (length === undefined || length === '0')) return next();
    if (!req.is('application/json')) return next(new ServiceError('unsupported_media_type'));
    parse(req, res, next);
  };
}

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
    const answer = known ?? new ServiceError('internal');
    if (!known) deps.onUnexpectedError(error);
    if (answer.status === 503) res.setHeader('Retry-After', '1');
    res.status(answer.status).type('application/json').send(errorBody(answer));
  };
}
