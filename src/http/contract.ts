/**
 * The HTTP contract, written once: zod schemas for every path parameter, header and body, and a
 * table of every operation with each status (and, for errors, each code) it may answer. The same
 * objects validate requests (operation-router.ts) and generate the OpenAPI 3.1 document served at
 * /v2/openapi.json (zod's JSON Schema output), so the document cannot drift from what the server
 * checks. What the handlers answer is held to it as well: an error whose status and code an
 * operation does not declare is reported as unexpected (a failing test, a log line in production),
 * and the fuzzer (`make fuzz`) checks every answer against the document.
 */
import { z } from 'zod';
import { LANE_NAMES, MAX_STOCK, SKU_PATTERN, type Config } from '../config.js';
import { ServiceError, type ErrorCode } from '../errors.js';
import { READINESS_STATES } from '../lanes/dependency-check.js';

export type HttpMethod = 'get' | 'post' | 'put';

/** How a failed check on one field becomes a ServiceError (the code a client sees). */
type Refusal = (issue: z.core.$ZodIssue, field: string, value: unknown) => ServiceError;

const refusals = new WeakMap<z.ZodType, Refusal>();

function refusedAs<T extends z.ZodType>(schema: T, refusal: Refusal | ErrorCode): T {
  refusals.set(schema, typeof refusal === 'function' ? refusal : (issue, field) => new ServiceError(refusal, `"${field}": ${issue.message}`, { field }));
  return schema;
}

// --- Schemas ------------------------------------------------------------------------------------

export const LaneSchema = refusedAs(z.enum(LANE_NAMES).meta({ description: 'A buy strategy; each lane keeps its own counters per SKU.', examples: ['lock'] }), (_issue, _field) =>
  new ServiceError('invalid_lane', `Unknown lane; use one of ${LANE_NAMES.join(', ')}.`, { lanes: LANE_NAMES }),
);

export const SkuSchema = refusedAs(
  z.string().regex(SKU_PATTERN).meta({ description: '1-32 characters of A-Z a-z 0-9 . _ -, not starting with a dot (so `.` and `..` never reach URL resolution).', examples: ['NVDA'] }),
  () => new ServiceError('invalid_sku'),
);

export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,128}$/;
const IdempotencyKeySchema = refusedAs(z.string().regex(IDEMPOTENCY_KEY_PATTERN), () => new ServiceError('invalid_idempotency_key'));

const count = (what: string) => z.int().min(0).max(MAX_STOCK).describe(what);

export const LevelSchema = z.object({
  remaining: count('Units left to sell'),
  sold: count('Units sold'),
  initial: count('remaining + sold'),
});

const StockLevelSchema = z.object({ lane: LaneSchema, sku: SkuSchema, ...LevelSchema.shape });

const BuyResultSchema = z.object({ lane: LaneSchema, sku: SkuSchema, quantity: z.int().min(1), remaining: count('Units left after this sale') });

/** A count in an admin body beyond MAX_STOCK is a stock_limit refusal, not a malformed request. */
function adminCount(min: number, code: 'invalid_request' | 'invalid_quantity', description: string) {
  return refusedAs(z.int().min(min).max(MAX_STOCK).describe(description), (issue, field, requested) => {
    if (issue.code === 'too_big' && typeof requested === 'number') {
      return new ServiceError('stock_limit', `"${field}" may be at most ${MAX_STOCK}.`, { field, limit: MAX_STOCK, wouldBe: requested });
    }
    return new ServiceError(code, `"${field}" must be an integer from ${min} to ${MAX_STOCK}.`, { field, min, max: MAX_STOCK });
  });
}

const PutRequestSchema = z.strictObject({ stock: adminCount(0, 'invalid_request', `The new stock of every lane, at most ${MAX_STOCK}`) }).meta({ examples: [{ stock: 500 }] });
const RestockRequestSchema = z
  .strictObject({ quantity: adminCount(1, 'invalid_quantity', `Units to add to remaining and initial on every lane; initial may not pass ${MAX_STOCK}`) })
  .meta({ examples: [{ quantity: 100 }] });

const PutResultSchema = z.object({ sku: SkuSchema, stock: count('The stock every lane now holds') });
const RestockResultSchema = z.object({
  sku: SkuSchema,
  lanes: z.record(LaneSchema, LevelSchema.nullable()).describe('Each lane\'s counters after the restock; null where the lane does not hold the SKU (or its store is not configured)'),
});

/**
 * The bulk list's body, one SKU per line (src/bulk/sku-list.ts reads it, streamed). The patterns
 * describe the canonical form a client writes — every list they match is valid; the parser also
 * takes blank lines, spaces around CSV fields and `\r\n`, and reports every bad line by number.
 */
const BULK_SKU = '[A-Za-z0-9_-][A-Za-z0-9._-]{0,31}';
/** 0 to MAX_STOCK as a pattern: any number of at most 9 digits, or MAX_STOCK itself (10^9). */
const BULK_STOCK = `(?:0|[1-9][0-9]{0,8}|${MAX_STOCK})`;
if (MAX_STOCK !== 10 ** 9) throw new Error('BULK_STOCK describes 0..10^9: change it with MAX_STOCK');
const NdjsonListSchema = z
  .string()
  .regex(new RegExp(`^(?:\\{"sku":"${BULK_SKU}","stock":${BULK_STOCK}\\}\\n)+$`))
  .meta({ description: 'One {"sku","stock"} object per line', examples: ['{"sku":"PS5","stock":500}\n{"sku":"XBOX","stock":300}\n'] });
const CsvListSchema = z
  .string()
  .regex(new RegExp(`^(?:sku,stock\\n)?(?:${BULK_SKU},${BULK_STOCK}\\n)+$`))
  .meta({ description: 'One sku,stock pair per line; an optional first line `sku,stock` is a header', examples: ['sku,stock\nPS5,500\nXBOX,300\n'] });

/** The media types of a bulk SKU list, and what each is read as. */
export const BULK_LIST_TYPES = { 'application/x-ndjson': NdjsonListSchema, 'text/csv': CsvListSchema } as const;

const BulkPutResultSchema = z.object({ skus: z.int().min(0).describe('Entries in the list'), created: z.int().min(0).describe('SKUs that were new') });

const ReadinessSchema = z.object({
  status: z.enum(['ready', 'not_ready']),
  checks: z
    .record(z.string(), z.enum(READINESS_STATES))
    .describe('Per check (memory, mongo, redis, primary): `taking_over` while this replica becomes primary (it needs MongoDB), `fenced` while a primary whose epoch was taken by a newer one has not stepped down yet'),
  reasons: z.record(z.string(), z.string()).optional().describe('When not ready: why each failing check fails'),
});

const OneStockPeekSchema = z.object({ id: z.literal('STOCK'), stock: count('Units left') });
const ManyStockPeekSchema = z.object({ id: SkuSchema, remainingStock: count('Units left'), soldStock: count('Units sold') });

function errorSchema(codes: readonly ErrorCode[]) {
  return z.object({
    error: z.object({
      code: z.enum(codes as [ErrorCode, ...ErrorCode[]]).describe('Stable machine-readable code'),
      message: z.string(),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
  });
}

function buyRequestSchema(maxQuantity: number) {
  return z.strictObject({
    quantity: refusedAs(z.int().min(1).max(maxQuantity).default(1).describe(`Units to buy, 1 to MAX_QUANTITY (${maxQuantity})`), (_issue, field) =>
      new ServiceError('invalid_quantity', `"${field}" must be an integer from 1 to ${maxQuantity}.`, { field, min: 1, max: maxQuantity }),
    ),
  }).meta({ examples: [{ quantity: 2 }] });
}

// --- Operations ---------------------------------------------------------------------------------

export interface HeaderSpec {
  readonly description: string;
  readonly required: boolean;
  readonly schema: z.ZodType;
}

export interface LinkSpec {
  readonly operationId: string;
  /** Parameter name → runtime expression (`$response.body#/sku`) or constant. */
  readonly parameters: Readonly<Record<string, string>>;
  readonly description: string;
}

export interface ResponseSpec {
  readonly description: string;
  /** A JSON body of this schema, plain text, or (for errors) the error codes this status carries. */
  readonly json?: z.ZodType;
  readonly text?: string;
  readonly errors?: readonly ErrorCode[];
  readonly headers?: Readonly<Record<string, HeaderSpec>>;
  readonly links?: Readonly<Record<string, LinkSpec>>;
}

export interface OperationSpec<P extends z.ZodObject = z.ZodObject, B extends z.ZodObject = z.ZodObject> {
  readonly id: string;
  readonly method: HttpMethod;
  /** OpenAPI path template, `{name}` for a parameter. */
  readonly path: string;
  readonly tag: 'v2' | 'admin' | 'v1' | 'probes';
  readonly summary: string;
  readonly admin?: boolean;
  readonly params?: P;
  readonly idempotencyKey?: boolean;
  readonly body?: { readonly schema: B; readonly required: boolean };
  /**
   * A body the handler reads itself, streamed (a bulk list): its media types and their schemas for
   * the document. The router checks the token, the media type and that there is a body, and
   * parses nothing.
   */
  readonly streamedBody?: Readonly<Record<string, z.ZodType>>;
  readonly responses: Readonly<Record<number, ResponseSpec>>;
}

const RETRY_AFTER: Readonly<Record<string, HeaderSpec>> = {
  'Retry-After': { description: 'Seconds to wait before retrying', required: true, schema: z.string().regex(/^\d+$/) },
};
const unavailable = (description: string): ResponseSpec => ({ description, errors: ['dependency_unavailable'], headers: RETRY_AFTER });
/** A sale refused before anything was decided: a store down, this replica's queues full, or an admin change being applied. */
const saleRefused = (description: string): ResponseSpec => ({ description, errors: ['dependency_unavailable', 'overloaded', 'admin_change_in_progress'], headers: RETRY_AFTER });
const adminRefused: ResponseSpec = {
  description: 'A store is down (nothing changed), no primary is known, or another admin change holds the catalogue',
  errors: ['dependency_unavailable', 'admin_busy', 'admin_change_in_progress'],
  headers: RETRY_AFTER,
};
const outcomeUnknown: ResponseSpec = {
  description: 'outcome_unknown: the request reached MongoDB, Redis or the primary and no answer came back, or an admin change reached some lanes and failed on another; it may or may not have taken effect. Retry with the same Idempotency-Key to learn which (or to finish the change)',
  errors: ['outcome_unknown'],
  headers: RETRY_AFTER,
};
const BODY_ERRORS = { 413: { description: 'Body larger than 4 KiB', errors: ['payload_too_large'] }, 415: { description: 'Body not JSON in UTF-8, or in an unsupported encoding', errors: ['unsupported_media_type'] } } as const;
const ADMIN_ERRORS = {
  401: { description: 'Admin bearer token missing or wrong', errors: ['unauthorized'] },
  403: { description: 'Admin routes disabled (no ADMIN_TOKEN)', errors: ['admin_disabled'] },
} as const;

const skuParams = z.object({ sku: SkuSchema });
const laneSkuParams = z.object({ lane: LaneSchema, sku: SkuSchema });
const productParams = z.object({ product: SkuSchema });

const ONE_STOCK_LANES = [
  ['Db', 'db'],
  ['Cache/Atomic', 'atomic'],
  ['Cache/Signal', 'signal'],
  ['Cache/Lock', 'lock'],
] as const;

/** Every operation, built for one configuration (MAX_QUANTITY bounds the buy body). */
export function operations(config: Pick<Config, 'maxQuantity'>) {
  const buy = {
    id: 'buy',
    method: 'post',
    path: '/v2/lanes/{lane}/skus/{sku}/buy',
    tag: 'v2',
    summary: 'Buy a quantity of a SKU on one lane',
    params: laneSkuParams,
    idempotencyKey: true,
    body: { schema: buyRequestSchema(config.maxQuantity), required: false },
    responses: {
      200: {
        description: 'Sold',
        json: BuyResultSchema,
        headers: { 'Idempotent-Replayed': { description: 'Present (true) when this is the first answer to this Idempotency-Key, replayed', required: false, schema: z.literal('true') } },
        links: { PeekAfterBuy: { operationId: 'peek', parameters: { lane: '$response.body#/lane', sku: '$response.body#/sku' }, description: 'The counters this sale left' } },
      },
      400: { description: 'Invalid lane, SKU, quantity, body, URL encoding or Idempotency-Key', errors: ['invalid_lane', 'invalid_sku', 'invalid_quantity', 'invalid_json', 'invalid_request', 'invalid_idempotency_key'] },
      404: { description: 'Unknown SKU on this lane', errors: ['unknown_sku'] },
      409: { description: 'Sold out, not enough stock (`details.remaining`), or the same Idempotency-Key still in flight', errors: ['sold_out', 'insufficient_stock', 'idempotency_key_in_use'] },
      ...BODY_ERRORS,
      422: { description: 'Idempotency-Key already used for a different request', errors: ['idempotency_key_reused'] },
      503: saleRefused('Refused, nothing changed: the lane\'s store is down or not configured, no primary is known, this replica is overloaded, or an admin change is being applied'),
      504: outcomeUnknown,
    },
  } satisfies OperationSpec;

  const peek = {
    id: 'peek',
    method: 'get',
    path: '/v2/lanes/{lane}/skus/{sku}',
    tag: 'v2',
    summary: 'The counters of a SKU on one lane',
    params: laneSkuParams,
    responses: {
      200: { description: 'Counters', json: StockLevelSchema },
      400: { description: 'Invalid lane, SKU or URL encoding', errors: ['invalid_lane', 'invalid_sku', 'invalid_request'] },
      404: { description: 'Unknown SKU on this lane', errors: ['unknown_sku'] },
      503: unavailable('The lane\'s store is down or not configured'),
    },
  } satisfies OperationSpec;

  const openapi = {
    id: 'openapi',
    method: 'get',
    path: '/v2/openapi.json',
    tag: 'v2',
    summary: 'This document',
    responses: { 200: { description: 'OpenAPI 3.1', json: z.object({ openapi: z.string() }).loose() } },
  } satisfies OperationSpec;

  const putSku = {
    id: 'putSku',
    method: 'put',
    path: '/v2/admin/skus/{sku}',
    tag: 'admin',
    summary: 'Create a SKU on every lane, or reset it there to a stock with nothing sold',
    admin: true,
    params: skuParams,
    body: { schema: PutRequestSchema, required: true },
    responses: {
      200: { description: 'Reset on every lane', json: PutResultSchema, links: putLinks() },
      201: { description: 'Created on every lane', json: PutResultSchema, links: putLinks() },
      400: { description: 'Invalid SKU, body or URL encoding', errors: ['invalid_sku', 'invalid_json', 'invalid_request'] },
      ...ADMIN_ERRORS,
      ...BODY_ERRORS,
      422: { description: `Stock above the limit (${MAX_STOCK}); \`details\` has the limit and what it would have become`, errors: ['stock_limit'] },
      503: adminRefused,
      504: outcomeUnknown,
      507: { description: 'No room for another SKU (MAX_SKUS)', errors: ['sku_table_full'] },
    },
  } satisfies OperationSpec;

  const restock = {
    id: 'restock',
    method: 'post',
    path: '/v2/admin/skus/{sku}/restock',
    tag: 'admin',
    summary: 'Add units to remaining and initial on every lane — on all of them or none; applied once per Idempotency-Key',
    admin: true,
    params: skuParams,
    idempotencyKey: true,
    body: { schema: RestockRequestSchema, required: true },
    responses: {
      200: { description: 'Each lane\'s counters after the restock', json: RestockResultSchema },
      400: { description: 'Invalid SKU, quantity, body, URL encoding or Idempotency-Key', errors: ['invalid_sku', 'invalid_quantity', 'invalid_json', 'invalid_request', 'invalid_idempotency_key'] },
      ...ADMIN_ERRORS,
      404: { description: 'No lane holds this SKU', errors: ['unknown_sku'] },
      409: { description: 'A restock with the same Idempotency-Key is still in flight', errors: ['idempotency_key_in_use'] },
      ...BODY_ERRORS,
      422: {
        description: `Some lane's initial stock would pass the limit (${MAX_STOCK}); no lane changed. \`details\`: lane, limit, initial, quantity, wouldBe. Or the Idempotency-Key was used for a different request`,
        errors: ['stock_limit', 'idempotency_key_reused'],
      },
      503: adminRefused,
      504: outcomeUnknown,
    },
  } satisfies OperationSpec;

  const putSkusInBulk = {
    id: 'putSkusInBulk',
    method: 'post',
    path: '/v2/admin/skus:bulk',
    tag: 'admin',
    summary: 'Create or reset many SKUs on every lane from one streamed list, as one PUT per line would',
    admin: true,
    streamedBody: BULK_LIST_TYPES,
    responses: {
      200: { description: 'Every SKU applied on every lane', json: BulkPutResultSchema },
      400: {
        description: 'No list, or bad lines (`details.errors`: the first 20 as {line, message}; `details.errorCount`); nothing changed',
        errors: ['invalid_request'],
      },
      ...ADMIN_ERRORS,
      415: { description: 'Not application/x-ndjson or text/csv', errors: ['unsupported_media_type'] },
      503: adminRefused,
      504: outcomeUnknown,
      507: { description: 'No room for another SKU (MAX_SKUS)', errors: ['sku_table_full'] },
    },
  } satisfies OperationSpec;

  const reset = {
    id: 'reset',
    method: 'post',
    path: '/v2/admin/reset',
    tag: 'admin',
    summary: 'Every SKU on every lane back to its initial stock, nothing sold',
    admin: true,
    responses: {
      204: { description: 'Done' },
      ...ADMIN_ERRORS,
      503: adminRefused,
      504: outcomeUnknown,
    },
  } satisfies OperationSpec;

  const healthz = {
    id: 'healthz',
    method: 'get',
    path: '/healthz',
    tag: 'probes',
    summary: 'The process is alive',
    responses: { 200: { description: 'Alive', json: z.object({ status: z.literal('ok') }) } },
  } satisfies OperationSpec;

  const readyz = {
    id: 'readyz',
    method: 'get',
    path: '/readyz',
    tag: 'probes',
    summary: 'Ready to take traffic: state loaded, configured dependencies answer, a primary is known',
    responses: { 200: { description: 'Ready', json: ReadinessSchema }, 503: { description: 'Not ready; `checks` says what is missing', json: ReadinessSchema } },
  } satisfies OperationSpec;

  const oneStock = ONE_STOCK_LANES.flatMap(([path, lane]) => {
    const name = path.replace('Cache/', '');
    const buyOne = {
      id: `oneStock${name}Buy`,
      method: 'post',
      path: `/api/v1/OneStock/${path}/Buy`,
      tag: 'v1',
      summary: `Buy one unit of STOCK on the ${lane} lane`,
      responses: {
        200: { description: 'Sold', text: 'Bought successfully. Remaining stock: 14999' },
        400: { description: 'Sold out', text: 'Already sold out. Stock: 0' },
        404: { description: 'STOCK is not a seeded SKU (SEED_SKUS)', errors: ['unknown_sku'] },
        503: saleRefused('Refused, nothing changed: the lane\'s store is down or not configured, no primary is known, this replica is overloaded, or an admin change is being applied'),
        504: outcomeUnknown,
      },
    } satisfies OperationSpec;
    const peekOne = {
      id: `oneStock${name}Peek`,
      method: 'get',
      path: `/api/v1/OneStock/${path}/Peek`,
      tag: 'v1',
      summary: `Units of STOCK left on the ${lane} lane`,
      responses: {
        200: { description: 'Counter', json: OneStockPeekSchema },
        404: { description: 'STOCK is not a seeded SKU (SEED_SKUS)', errors: ['unknown_sku'] },
        503: unavailable('The lane\'s store is down or not configured'),
      },
    } satisfies OperationSpec;
    return [buyOne, peekOne];
  });

  const manyStockBuy = {
    id: 'manyStockBuy',
    method: 'post',
    path: '/api/v1/ManyStock/Cache/BuyFastAtomic/{product}',
    tag: 'v1',
    summary: 'Buy one unit of a product on the atomic lane',
    params: productParams,
    responses: {
      200: { description: '`true` if sold, `false` if sold out', json: z.boolean() },
      400: { description: 'Invalid product name or URL encoding', errors: ['invalid_sku', 'invalid_request'] },
      404: { description: 'Unknown product', errors: ['unknown_sku'] },
      503: saleRefused('Refused, nothing changed: no primary is known, this replica is overloaded, or an admin change is being applied'),
      504: outcomeUnknown,
    },
  } satisfies OperationSpec;

  const manyStockPeek = {
    id: 'manyStockPeek',
    method: 'get',
    path: '/api/v1/ManyStock/Cache/PeekFastAtomic/{product}',
    tag: 'v1',
    summary: 'Counters of a product on the atomic lane',
    params: productParams,
    responses: {
      200: { description: 'Counters', json: ManyStockPeekSchema },
      400: { description: 'Invalid product name or URL encoding', errors: ['invalid_sku', 'invalid_request'] },
      404: { description: 'Unknown product', errors: ['unknown_sku'] },
    },
  } satisfies OperationSpec;

  return { buy, peek, openapi, putSku, putSkusInBulk, restock, reset, healthz, readyz, oneStock, manyStockBuy, manyStockPeek };
}

export type Operations = ReturnType<typeof operations>;

/** The operations as one flat list, in the order the document lists them. */
export function allOperations(ops: Operations): OperationSpec[] {
  return [ops.buy, ops.peek, ops.openapi, ops.putSku, ops.putSkusInBulk, ops.restock, ops.reset, ops.healthz, ops.readyz, ...ops.oneStock, ops.manyStockBuy, ops.manyStockPeek];
}

function putLinks(): Record<string, LinkSpec> {
  return {
    BuyAfterPut: { operationId: 'buy', parameters: { sku: '$response.body#/sku' }, description: 'Buy the SKU just put, on any lane' },
    PeekAfterPut: { operationId: 'peek', parameters: { sku: '$response.body#/sku' }, description: 'Its counters on any lane' },
    RestockAfterPut: { operationId: 'restock', parameters: { sku: '$response.body#/sku' }, description: 'Restock it' },
  };
}

// --- Validation ---------------------------------------------------------------------------------

/**
 * Parse `value` with `schema`; on failure throw the ServiceError the first failing field maps to
 * (`fallback` for the value as a whole: not an object, unknown fields).
 */
export function parseWith<S extends z.ZodObject>(schema: S, value: unknown, fallback: ErrorCode): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0] as z.core.$ZodIssue;
  const field = issue.path[0];
  const fieldSchema = typeof field === 'string' ? (schema.shape as Record<string, z.ZodType>)[field] : undefined;
  const refusal = fieldSchema === undefined ? undefined : refusals.get(fieldSchema);
  if (refusal && typeof field === 'string') throw refusal(issue, field, (value as Record<string, unknown>)[field]);
  if (issue.code === 'unrecognized_keys') {
    const allowed = Object.keys(schema.shape);
    throw new ServiceError(fallback, `Unknown field(s): ${issue.keys.join(', ')}. Allowed: ${allowed.join(', ') || 'none'}.`, { fields: issue.keys });
  }
  throw new ServiceError(fallback, issue.path.length === 0 ? 'The request body must be a JSON object.' : issue.message);
}

export function parseIdempotencyKey(value: string | undefined): string | null {
  if (value === undefined) return null;
  const parsed = IdempotencyKeySchema.safeParse(value);
  if (!parsed.success) throw new ServiceError('invalid_idempotency_key');
  return parsed.data;
}

// --- The OpenAPI document -----------------------------------------------------------------------

type JsonObject = Record<string, unknown>;

/** Reusable schemas, named in the document's components. */
function namedSchemas(): ReadonlyArray<readonly [string, z.ZodType]> {
  return [
    ['Lane', LaneSchema],
    ['Sku', SkuSchema],
    ['Level', LevelSchema],
    ['StockLevel', StockLevelSchema],
    ['BuyResult', BuyResultSchema],
    ['PutRequest', PutRequestSchema],
    ['PutResult', PutResultSchema],
    ['RestockRequest', RestockRequestSchema],
    ['RestockResult', RestockResultSchema],
    ['BulkPutResult', BulkPutResultSchema],
    ['Readiness', ReadinessSchema],
    ['OneStockLevel', OneStockPeekSchema],
    ['ManyStockLevel', ManyStockPeekSchema],
  ];
}

export function openApiDocument(config: Pick<Config, 'maxQuantity'>, ops: Operations = operations(config)): JsonObject {
  const list = allOperations(ops);
  // Two passes over one registry: request bodies as clients send them (a default makes a field
  // optional), answers as the server writes them.
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of namedSchemas()) registry.add(schema, { id });
  registry.add(ops.buy.body.schema, { id: 'BuyRequest' });
  const errorIds = new Map<ResponseSpec, string>();
  for (const op of list) {
    for (const [status, response] of Object.entries(op.responses) as Array<[string, ResponseSpec]>) {
      if (!response.errors) continue;
      const id = `${op.id[0]?.toUpperCase()}${op.id.slice(1)}Error${status}`;
      errorIds.set(response, id);
      registry.add(errorSchema(response.errors), { id });
    }
  }
  const uri = (id: string) => `#/components/schemas/${id}`;
  const input = z.toJSONSchema(registry, { uri, io: 'input', target: 'draft-2020-12' }).schemas;
  const output = z.toJSONSchema(registry, { uri, io: 'output', target: 'draft-2020-12' }).schemas;
  const schemas: JsonObject = {};
  for (const [id, schema] of Object.entries(output)) schemas[id] = clean(/Request$/.test(id) ? (input[id] as JsonObject) : (schema as JsonObject));

  const ref = (schema: z.ZodType): JsonObject => {
    const meta = registry.get(schema);
    // Unnamed schemas are small and self-contained (a boolean, a header's pattern).
    return meta ? { $ref: uri(meta.id) } : clean(z.toJSONSchema(schema, { io: 'output', target: 'draft-2020-12' }) as JsonObject);
  };

  const paths: Record<string, Record<string, JsonObject>> = {};
  for (const op of list) {
    const parameters: JsonObject[] = [];
    if (op.params) {
      for (const [name, schema] of Object.entries(op.params.shape as Record<string, z.ZodType>)) {
        parameters.push({ name, in: 'path', required: true, schema: ref(schema) });
      }
    }
    if (op.idempotencyKey) {
      parameters.push({
        name: 'Idempotency-Key',
        in: 'header',
        required: false,
        description: 'Repeat the key to get the first answer again; the sale happens at most once.',
        schema: ref(IdempotencyKeySchema),
      });
    }
    const responses: JsonObject = {};
    for (const [status, response] of Object.entries(op.responses) as Array<[string, ResponseSpec]>) {
      const content: JsonObject = {};
      if (response.json) content['application/json'] = { schema: ref(response.json) };
      if (response.text !== undefined) content['text/plain'] = { schema: { type: 'string', examples: [response.text] } };
      const errorId = errorIds.get(response);
      if (errorId) content['application/json'] = { schema: { $ref: uri(errorId) } };
      responses[status] = {
        description: response.errors ? `${response.description} (${response.errors.map((c) => `\`${c}\``).join(', ')})` : response.description,
        ...(response.headers
          ? { headers: Object.fromEntries(Object.entries(response.headers).map(([name, h]) => [name, { description: h.description, required: h.required, schema: ref(h.schema) }])) }
          : {}),
        ...(Object.keys(content).length > 0 ? { content } : {}),
        ...(response.links ? { links: Object.fromEntries(Object.entries(response.links).map(([name, l]) => [name, { operationId: l.operationId, parameters: l.parameters, description: l.description }])) } : {}),
      };
    }
    (paths[op.path] ??= {})[op.method] = {
      tags: [op.tag],
      operationId: op.id,
      summary: op.summary,
      ...(op.admin ? { security: [{ bearer: [] }] } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(op.body ? { requestBody: { required: op.body.required, content: { 'application/json': { schema: ref(op.body.schema) } } } } : {}),
      ...(op.streamedBody
        ? { requestBody: { required: true, content: Object.fromEntries(Object.entries(op.streamedBody).map(([type, schema]) => [type, { schema: ref(schema) }])) } }
        : {}),
      responses,
    };
  }

  return {
    openapi: '3.1.0',
    info: {
      title: 'SuperStock',
      version: '0.1.0',
      description:
        'Sells a limited stock under heavy concurrency without ever selling more than exists. Five lanes (buy strategies) each keep their own counters per SKU. ' +
        `Every count is an integer from 0 to ${MAX_STOCK}. An undeclared method on a known path answers 405 with \`Allow\`. Generated from the server's own request schemas.`,
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: 'http://localhost:5059' }],
    tags: [
      { name: 'v2', description: 'JSON API for every lane and SKU' },
      { name: 'admin', description: 'Catalogue management (bearer token)' },
      { name: 'v1', description: 'The original project\'s routes, unchanged' },
      { name: 'probes', description: 'Liveness and readiness' },
    ],
    paths,
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN' } }, schemas },
  };
}

/** zod stamps every schema with `$schema` (and `$id` for named ones); the document states its dialect once. */
function clean(schema: JsonObject): JsonObject {
  const { $schema: _dialect, $id: _id, ...rest } = schema;
  return rest;
}
