/**
 * Binds the contract's operations (contract.ts) to Express: each route is registered from its
 * operation, so the server answers exactly the paths and methods the document lists. Before a
 * handler runs, the chain checks the admin token, reads a JSON body only where the operation
 * takes one, validates parameters, header and body with the operation's own zod schemas, and only
 * then hands a write to the write gate (which may forward it to the primary) — so a bad request
 * is refused on the replica it reached and never travels. A known path with an undeclared method
 * answers 405 with `Allow`; OPTIONS answers 204 with it.
 */
import { timingSafeEqual } from 'node:crypto';
import express, { type IRouter, type Request, type RequestHandler, type Response } from 'express';
import type { z } from 'zod';
import { ServiceError } from '../errors.js';
import { parseIdempotencyKey, parseWith, type OperationSpec } from './contract.js';

export const JSON_BODY_LIMIT = '4kb';

type ParamsOf<O> = O extends { readonly params: infer P extends z.ZodObject } ? z.output<P> : Record<string, never>;
type BodyOf<O> = O extends { readonly body: { readonly schema: infer B extends z.ZodObject } } ? z.output<B> : undefined;

export interface Input<O> {
  readonly params: ParamsOf<O>;
  readonly body: BodyOf<O>;
  readonly idempotencyKey: string | null;
}

export type Handler<O> = (input: Input<O>, req: Request, res: Response) => void | Promise<void>;

export interface OperationRouterOptions {
  readonly adminToken: string | null;
  /** Runs before every write (not GET): on a secondary it forwards to the primary. */
  readonly writeGate?: RequestHandler;
}

interface KnownPath {
  readonly pattern: RegExp;
  readonly operations: OperationSpec[];
  allow: string;
}

const OPERATION = 'operation';
const INPUT = 'input';

/** The operation a request was routed to (set before anything can fail), for the error handler. */
export function operationOf(res: Response): OperationSpec | undefined {
  return res.locals[OPERATION] as OperationSpec | undefined;
}

export class OperationRouter {
  private readonly paths: KnownPath[] = [];
  private readonly requireAdmin: RequestHandler;
  private readonly jsonBody = jsonBody(express.json({ limit: JSON_BODY_LIMIT, strict: false }));

  /**
   * @param target where the routes are registered: the app itself, so a buy walks no nested
   *   router (mount `answerOptions` on it first, `methodNotAllowed` after the routes).
   */
  constructor(
    private readonly target: IRouter,
    private readonly options: OperationRouterOptions,
  ) {
    this.requireAdmin = adminCheck(options.adminToken);
  }

  add<O extends OperationSpec>(op: O, handler: Handler<O>): void {
    const chain: RequestHandler[] = [
      (_req, res, next) => {
        res.locals[OPERATION] = op;
        next();
      },
    ];
    if (op.admin) chain.push(this.requireAdmin);
    if (op.body) chain.push(this.jsonBody);
    if (op.streamedBody) chain.push(streamedBodyCheck(Object.keys(op.streamedBody)));
    chain.push((req, res, next) => {
      const input: { readonly params: unknown; readonly body: unknown; readonly idempotencyKey: string | null } = {
        params: op.params ? parseWith(op.params, req.params, 'invalid_request') : {},
        // No body at all leaves req.body undefined; a JSON `null` is a body, and not an object.
        body: op.body ? parseWith(op.body.schema, req.body === undefined && !op.body.required ? {} : req.body, 'invalid_request') : undefined,
        idempotencyKey: op.idempotencyKey ? parseIdempotencyKey(req.headers['idempotency-key'] as string | undefined) : null,
      };
      res.locals[INPUT] = input;
      next();
    });
    if (op.method !== 'get' && this.options.writeGate) chain.push(this.options.writeGate);
    chain.push((req, res) => handler(res.locals[INPUT] as Input<O>, req, res));
    // A literal `:` (as in `skus:bulk`) is escaped: Express would read it as a parameter.
    this.target[op.method](op.path.replace(/:/g, '\\:').replace(/\{(\w+)\}/g, ':$1'), ...chain);
    this.remember(op);
  }

  /** The operation declared for `method` on `path` (raw, undecoded), if any. */
  find(method: string, path: string): OperationSpec | undefined {
    const known = this.paths.find((p) => p.pattern.test(path));
    const wanted = method === 'HEAD' ? 'get' : method.toLowerCase();
    return known?.operations.find((op) => op.method === wanted);
  }

  /** OPTIONS on a known path: 204 with `Allow` (mounted before the routes, so Express's own answer never runs). */
  readonly answerOptions: RequestHandler = (req, res, next) => {
    if (req.method !== 'OPTIONS') return next();
    const known = this.paths.find((p) => p.pattern.test(req.path));
    if (!known) return next();
    res.status(204).setHeader('Allow', known.allow);
    res.end();
  };

  /** After the routes: a known path reached with another method is a 405 with `Allow`. */
  readonly methodNotAllowed: RequestHandler = (req, res, next) => {
    const known = this.paths.find((p) => p.pattern.test(req.path));
    if (!known) return next(new ServiceError('not_found'));
    res.setHeader('Allow', known.allow);
    next(new ServiceError('method_not_allowed', `${req.method} is not allowed here; use ${known.allow}.`, { allow: known.allow.split(', ') }));
  };

  private remember(op: OperationSpec): void {
    const source = `^${op.path
      .split(/\{\w+\}/)
      .map((part) => part.replace(/[.*+?^$()|[\]\\]/g, '\\$&'))
      .join('[^/]+')}/?$`;
    let known = this.paths.find((p) => p.pattern.source === source);
    if (!known) {
      known = { pattern: new RegExp(source), operations: [], allow: '' };
      this.paths.push(known);
    }
    known.operations.push(op);
    known.allow = known.operations.flatMap((o) => (o.method === 'get' ? ['GET', 'HEAD'] : [o.method.toUpperCase()])).join(', ');
  }
}

/**
 * `Authorization: Bearer $ADMIN_TOKEN`, compared in constant time. A repeated Authorization header
 * is refused outright: Node keeps only the first, a proxy in front might honour the other.
 */
function adminCheck(token: string | null): RequestHandler {
  const expected = token === null ? null : Buffer.from(token);
  return (req, _res, next) => {
    if (expected === null) return next(new ServiceError('admin_disabled'));
    const header = req.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected) || repeated(req, 'authorization')) return next(new ServiceError('unauthorized'));
    next();
  };
}

/** Whether the request carries header `name` (lower case) more than once. */
function repeated(req: Request, name: string): boolean {
  let seen = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const header = raw[i] as string;
    if (header.length === name.length && header.toLowerCase() === name && ++seen > 1) return true;
  }
  return false;
}

/** Whether a body follows the headers: chunked, or a non-zero Content-Length. */
function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0' && Number(length) > 0);
}

/**
 * A body in any other format would be silently ignored by express.json; refuse it instead. So is
 * a repeated Content-Type: which one the client meant is anyone's guess. A request without a body
 * (the usual buy) skips the parser altogether.
 */
function jsonBody(parse: RequestHandler): RequestHandler {
  return (req, res, next) => {
    if (!hasBody(req)) return next();
    if (!req.is('application/json') || repeated(req, 'content-type')) return next(new ServiceError('unsupported_media_type'));
    parse(req, res, next);
  };
}

/** A streamed body the handler reads itself: it must be there, in one of the declared media types. */
function streamedBodyCheck(types: readonly string[]): RequestHandler {
  return (req, _res, next) => {
    if (!req.is(types as string[]) || repeated(req, 'content-type')) return next(new ServiceError('unsupported_media_type', `Send the body as ${types.join(' or ')}.`));
    if (!hasBody(req)) return next(new ServiceError('invalid_request', 'The request needs a body.'));
    next();
  };
}
