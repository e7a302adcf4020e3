/**
 * The Express application, built by a factory from its dependencies so that tests (and each
 * worker thread) get their own instance and can listen on any port. Every route comes from the
 * contract (contract.ts) through the operation router; the mapping of errors to HTTP answers lives
 * here; the lanes know nothing of HTTP.
 */
import express, { type ErrorRequestHandler, type Express } from 'express';
import { DependencyUnavailableError, OutcomeUnknownError, ServiceError } from '../errors.js';
import { SkuTableFullError } from '../memory/shared-stock.js';
import { LocalAdminLock } from '../memory/admin-lock.js';
import { adminRoutes } from './admin-routes.js';
import { bulkRoutes } from './bulk-routes.js';
import { openApiDocument, operations, type ResponseSpec } from './contract.js';
import { JSON_BODY_LIMIT, OperationRouter, operationOf } from './operation-router.js';
import { probeRoutes } from './probe-routes.js';
import { errorBody, type AppDeps } from './app-deps.js';
import { v1Routes } from './v1-routes.js';
import { v2Routes } from './v2-routes.js';

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  // No ETag hashing of every answer: a buy's answer is never cached.
  app.disable('etag');
  // In flight until the response closes: one layer before every route, one shared listener.
  const { metrics } = deps;
  app.use((_req, res, next) => {
    metrics.trackInFlight(res);
    next();
  });
  const ops = operations(deps.config);
  // Routes go on the app itself, so a buy walks no nested router and one layer (its route). The
  // write gate runs inside each write's route, after validation, so a bad request is refused on
  // the replica it reached. OPTIONS and 405s are answered after the routes.
  const routes = new OperationRouter(app, { adminToken: deps.config.adminToken, ...(deps.writeGate ? { writeGate: deps.writeGate } : {}) });
  // Built on first request, not at start: a worker listens sooner, and few ask for it.
  let document: string | null = null;
  const openApi = () => (document ??= JSON.stringify(openApiDocument(deps.config, ops)));
  const adminLock = deps.adminLock ?? new LocalAdminLock();
  // Hot routes first: Express tries each route in turn.
  v2Routes(routes, ops, deps, openApi);
  v1Routes(routes, ops, deps);
  adminRoutes(routes, ops, deps, adminLock);
  bulkRoutes(routes, ops, deps, adminLock);
  probeRoutes(routes, ops, deps.dependencies);
  app.use(routes.methodNotAllowed);
  app.use(errorHandler(deps, routes));
  return app;
}

/** HTTP errors raised by Express and body-parser (http-errors) carry a status and often a `type`. */
interface HttpError {
  readonly status?: unknown;
  readonly type?: unknown;
}

/**
 * Map what a client can cause to the catalogue: body-parser's errors by type, a malformed
 * percent-encoding in the path (Express throws a URIError while decoding a parameter), and any
 * other 4xx http-error by its status. Only a genuine fault of ours is left for the 500.
 */
function asServiceError(error: unknown): ServiceError | null {
  if (error instanceof ServiceError) return error;
  if (error instanceof SkuTableFullError) return new ServiceError('sku_table_full', error.message);
  if (error instanceof URIError) return new ServiceError('invalid_request', 'The URL has a malformed percent-encoding or is not UTF-8.');
  const { type, status } = typeof error === 'object' && error !== null ? (error as HttpError) : {};
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
  }
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 413) return new ServiceError('payload_too_large', `The request body must be at most ${JSON_BODY_LIMIT}.`);
    if (status === 415) return new ServiceError('unsupported_media_type');
    return new ServiceError('invalid_request', error instanceof Error ? error.message : undefined);
  }
  return null;
}

function errorHandler(deps: AppDeps, routes: OperationRouter): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const known = asServiceError(error);
    if (error instanceof DependencyUnavailableError) deps.metrics.recordDependencyError(error.dependency);
    if (error instanceof OutcomeUnknownError && error.dependency !== 'primary') deps.metrics.recordDependencyError(error.dependency);
    const answer = known ?? new ServiceError('internal');
    if (!known) deps.onUnexpectedError(error);
    // The contract is a promise: an answer it does not declare is a bug, reported like a 500.
    const operation = operationOf(res) ?? routes.find(req.method, req.path);
    const declared = operation?.responses[answer.status] as ResponseSpec | undefined;
    if (known && operation && !declared?.errors?.includes(answer.code)) {
      deps.onUnexpectedError(new Error(`${operation.id} answered ${answer.status} ${answer.code}, which its contract does not declare`, { cause: error }));
    }
    // 503: refused, try again; 504: retry with the same key to learn the outcome.
    if (answer.status === 503 || answer.status === 504) res.setHeader('Retry-After', '1');
    if (res.headersSent) return void res.destroy();
    res.status(answer.status).type('application/json').send(errorBody(answer));
  };
}
