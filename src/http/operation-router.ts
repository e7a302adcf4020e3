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
import express, { type IRouter, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
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

/** The operation a request was routed to (set before anything can fail), for the error handler. */
export function operationOf(res: Response): OperationSpec | undefined {
  return res.locals[OPERATION] as OperationSpec | undefined;
}

export class OperationRouter {
  private readonly paths: KnownPath[] = [];
  private readonly adminRefusal: (req: Request) => ServiceError | null;
  private readonly parseJson = express.json({ limit: JSON_BODY_LIMIT, strict: false });

  /**
   * @param target where the routes are registered: the app itself, so a buy walks no nested
   *   router (mount `methodNotAllowed` on it after the routes).
   */
  constructor(
    private readonly target: IRouter,
    private readonly options: OperationRouterOptions,
  ) {
    this.adminRefusal = adminCheck(options.adminToken);
  }

  /**
   * One Express route per operation, with one handler that runs the steps in order (token, body,
   * validation, write gate, handler): a request walks one layer instead of a layer per step.
   */
  add<O extends OperationSpec>(op: O, handler: Handler<O>): void {
    const admin = op.admin ? this.adminRefusal : null;
    const streamed = op.streamedBody ? streamedBodyRefusal(Object.keys(op.streamedBody)) : null;
    const parseJson = op.body ? this.parseJson : null;
    const gate = op.method !== 'get' ? (this.options.writeGate ?? null) : null;
    const body = op.body;
    // The answer to "no body" is the same every time (defaults applied): computed once, on first use.
    let bodyOfNothing: unknown;
    const params = op.params ? new ParsedParams(op.params) : null;

    /** Express 5's rule for a handler: a throw or a rejected promise goes to the error handler. */
    const invoke = (input: Input<O>, req: Request, res: Response, next: NextFunction): void => {
      let result: void | Promise<void>;
      try {
        result = handler(input, req, res);
      } catch (error) {
        return next(error);
      }
      if (result instanceof Promise) result.then(undefined, (error: unknown) => next(error ?? new Error('Rejected promise')));
    };

    const validated = (req: Request, res: Response, next: NextFunction): void => {
      let input: Input<O>;
      try {
        input = {
          params: (params ? params.parse(req.params) : {}) as ParamsOf<O>,
          // No body at all leaves req.body undefined; a JSON `null` is a body, and not an object.
          body: (body
            ? req.body === undefined && !body.required
              ? (bodyOfNothing ??= Object.freeze(parseWith(body.schema, {}, 'invalid_request')))
              : parseWith(body.schema, req.body, 'invalid_request')
            : undefined) as BodyOf<O>,
          idempotencyKey: op.idempotencyKey ? parseIdempotencyKey(req.headers['idempotency-key'] as string | undefined) : null,
        };
      } catch (error) {
        return next(error);
      }
      // The write gate runs after validation, so a bad request is refused on the replica it reached.
      if (gate === null) return invoke(input, req, res, next);
      gate(req, res, (error?: unknown) => (error ? next(error) : invoke(input, req, res, next)));
    };

    const route: RequestHandler = (req, res, next) => {
      res.locals[OPERATION] = op;
      const refusal = admin?.(req) ?? streamed?.(req) ?? null;
      if (refusal !== null) return next(refusal);
      // A request without a body (the usual buy) skips the parser. A body in another format would
      // be silently ignored by express.json: refuse it, and a repeated Content-Type (which one
      // the client meant is anyone's guess).
      if (parseJson !== null && hasBody(req)) {
        if (!req.is('application/json') || repeated(req, 'content-type')) return next(new ServiceError('unsupported_media_type'));
        return parseJson(req, res, (error?: unknown) => (error ? next(error) : validated(req, res, next)));
      }
      validated(req, res, next);
    };
    // A literal `:` (as in `skus:bulk`) is escaped: Express would read it as a parameter.
    this.target[op.method](op.path.replace(/:/g, '\\:').replace(/\{(\w+)\}/g, ':$1'), route);
    this.remember(op);
  }

  /** The operation declared for `method` on `path` (raw, undecoded), if any. */
  find(method: string, path: string): OperationSpec | undefined {
    const known = this.paths.find((p) => p.pattern.test(path));
    const wanted = method === 'HEAD' ? 'get' : method.toLowerCase();
    return known?.operations.find((op) => op.method === wanted);
  }

  /**
   * After the routes: on a known path, OPTIONS answers 204 with `Allow` (no route declares
   * OPTIONS, so every one reaches this layer, and Express's own answer never runs) and any other
   * undeclared method is a 405 with `Allow`. Mounted after the routes rather than before them, so
   * a buy does not walk one more layer to learn it is not an OPTIONS.
   */
  readonly methodNotAllowed: RequestHandler = (req, res, next) => {
    const known = this.paths.find((p) => p.pattern.test(req.path));
    if (!known) return next(new ServiceError('not_found'));
    if (req.method === 'OPTIONS') {
      res.status(204).setHeader('Allow', known.allow);
      return void res.end();
    }
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

/** Distinct valid parameter sets remembered per operation; past it, the memory starts afresh. */
const PARSED_PARAMS_KEPT = 4096;

/**
 * An operation's path parameters, validated by its schema — and remembered once valid: a flash
 * sale sends the same few (lane, SKU) pairs again and again, and a lookup costs a tenth of a zod
 * parse. The schemas are pure (the same input always gives the same output), so a remembered
 * answer is the parse's own; only valid sets are kept, so every refusal still comes from the
 * schema. The key is collision-free: every value but the last is prefixed with its length.
 */
class ParsedParams<S extends z.ZodObject> {
  private readonly names: readonly string[];
  private readonly known = new Map<string, Readonly<z.output<S>>>();

  constructor(private readonly schema: S) {
    this.names = Object.keys(schema.shape);
  }

  parse(values: Readonly<Record<string, unknown>>): Readonly<z.output<S>> {
    let key = '';
    const last = this.names.length - 1;
    for (let i = 0; i <= last; i++) {
      const value = values[this.names[i] as string];
      // Anything but a string (Express gives strings) is left to the schema alone.
      if (typeof value !== 'string') return parseWith(this.schema, values, 'invalid_request');
      key += i === last ? value : `${value.length}:${value}`;
    }
    const known = this.known.get(key);
    if (known !== undefined) return known;
    const parsed = Object.freeze(parseWith(this.schema, values, 'invalid_request'));
    if (this.known.size >= PARSED_PARAMS_KEPT) this.known.clear();
    this.known.set(key, parsed);
    return parsed;
  }
}

/**
 * `Authorization: Bearer $ADMIN_TOKEN`, compared in constant time. A repeated Authorization header
 * is refused outright: Node keeps only the first, a proxy in front might honour the other.
 */
function adminCheck(token: string | null): (req: Request) => ServiceError | null {
  const expected = token === null ? null : Buffer.from(token);
  return (req) => {
    if (expected === null) return new ServiceError('admin_disabled');
    const header = req.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected) || repeated(req, 'authorization')) return new ServiceError('unauthorized');
    return null;
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

/** A streamed body the handler reads itself: it must be there, in one of the declared media types. */
function streamedBodyRefusal(types: readonly string[]): (req: Request) => ServiceError | null {
  return (req) => {
    if (!req.is(types as string[]) || repeated(req, 'content-type')) return new ServiceError('unsupported_media_type', `Send the body as ${types.join(' or ')}.`);
    if (!hasBody(req)) return new ServiceError('invalid_request', 'The request needs a body.');
    return null;
  };
}
