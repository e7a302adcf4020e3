/**
 * The HTTP contract, in process against real MongoDB and Redis: the original's routes and
 * shapes, the v2 API, idempotency, admin, and every validation error — each refused request must
 * leave every lane's stock exactly as it was.
 */
import { Redis } from 'ioredis';
import { LANE_NAMES } from '../src/config.js';
import { ERROR_CATALOGUE } from '../src/errors.js';
import { buy, peek, putSku, request, type ErrorBody } from './support/http.js';
import { startLocalApp, TEST_ADMIN_TOKEN, type LocalApp } from './support/local-app.js';

let app: LocalApp;
let base: string;

beforeAll(async () => {
  app = await startLocalApp();
  base = app.url;
});

afterAll(async () => {
  await app.close();
});

afterEach(() => {
  expect(app.unexpected).toEqual([]);
});

async function levels(sku: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const lane of LANE_NAMES) out[lane] = (await peek(base, lane, sku)).body.remaining;
  return out;
}

describe('v1 compatibility routes', () => {
  test.each([
    ['Db', 'db'],
    ['Cache/Atomic', 'atomic'],
    ['Cache/Signal', 'signal'],
    ['Cache/Lock', 'lock'],
  ])('OneStock/%s: Buy answers 200 text until sold out, then 400; Peek answers {id, stock}', async (path, lane) => {
    await putSku(base, TEST_ADMIN_TOKEN, 'STOCK', 2);
    const first = await request('POST', `${base}/api/v1/OneStock/${path}/Buy`);
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(first.text).toBe('Bought successfully. Remaining stock: 1');
    expect((await request('POST', `${base}/api/v1/OneStock/${path}/Buy`)).status).toBe(200);
    const refused = await request('POST', `${base}/api/v1/OneStock/${path}/Buy`);
    expect(refused.status).toBe(400);
    expect(refused.text).toBe('Already sold out. Stock: 0');
    const level = await request('GET', `${base}/api/v1/OneStock/${path}/Peek`);
    expect(level.status).toBe(200);
    expect(level.body).toEqual({ id: 'STOCK', stock: 0 });
    expect((await peek(base, lane, 'STOCK')).body).toMatchObject({ remaining: 0, sold: 2, initial: 2 });
  });

  test('ManyStock: Buy answers JSON true then false; Peek answers {id, remainingStock, soldStock}; unknown product is 404', async () => {
    await putSku(base, TEST_ADMIN_TOKEN, 'TSLA', 1);
    const sold = await request('POST', `${base}/api/v1/ManyStock/Cache/BuyFastAtomic/TSLA`);
    expect([sold.status, sold.text]).toEqual([200, 'true']);
    const refused = await request('POST', `${base}/api/v1/ManyStock/Cache/BuyFastAtomic/TSLA`);
    expect([refused.status, refused.text]).toEqual([200, 'false']);
    expect((await request('GET', `${base}/api/v1/ManyStock/Cache/PeekFastAtomic/TSLA`)).body).toEqual({ id: 'TSLA', remainingStock: 0, soldStock: 1 });
    const unknown = await request<ErrorBody>('POST', `${base}/api/v1/ManyStock/Cache/BuyFastAtomic/NOPE`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('unknown_sku');
    expect((await request<ErrorBody>('GET', `${base}/api/v1/ManyStock/Cache/PeekFastAtomic/NOPE`)).status).toBe(404);
  });

  test('NVDA, TSLA and AMD exist by default with INITIAL_STOCK', async () => {
    const fresh = await startLocalApp({ INITIAL_STOCK: '15000' });
    try {
      for (const ticker of ['NVDA', 'TSLA', 'AMD']) {
        const level = await request('GET', `${fresh.url}/api/v1/ManyStock/Cache/PeekFastAtomic/${ticker}`);
        expect(level.body).toEqual({ id: ticker, remainingStock: 15000, soldStock: 0 });
      }
    } finally {
      await fresh.close();
    }
  });
});

describe('v2 buy and peek', () => {
  test.each(LANE_NAMES)('%s: buys a quantity, refuses more than remains without selling any, and reports counters', async (lane) => {
    const sku = `Q-${lane}`;
    await putSku(base, TEST_ADMIN_TOKEN, sku, 5);
    const sold = await buy(base, lane, sku, 3);
    expect(sold.status).toBe(200);
    expect(sold.body).toEqual({ lane, sku, quantity: 3, remaining: 2 });
    const tooMany = await buy(base, lane, sku, 3);
    expect(tooMany.status).toBe(409);
    expect(tooMany.body.error).toMatchObject({ code: 'insufficient_stock', details: { remaining: 2 } });
    expect((await buy(base, lane, sku)).body.remaining).toBe(1); // no body: quantity 1
    expect((await buy(base, lane, sku, 1)).body.remaining).toBe(0);
    const soldOut = await buy(base, lane, sku, 1);
    expect(soldOut.status).toBe(409);
    expect(soldOut.body.error.code).toBe('sold_out');
    expect((await peek(base, lane, sku)).body).toEqual({ lane, sku, remaining: 0, sold: 5, initial: 5 });
  });

  test.each(LANE_NAMES)('%s: an unknown SKU is a 404', async (lane) => {
    const answer = await buy(base, lane, 'NEVER-CREATED', 1);
    expect(answer.status).toBe(404);
    expect(answer.body.error.code).toBe('unknown_sku');
    expect((await peek(base, lane, 'NEVER-CREATED')).status).toBe(404);
  });
});

describe('idempotency keys', () => {
  test.each(LANE_NAMES)('%s: a repeated key replays the first answer and never sells twice', async (lane) => {
    const sku = `IDEM-${lane}`;
    await putSku(base, TEST_ADMIN_TOKEN, sku, 10);
    const first = await buy(base, lane, sku, 4, `key-${lane}`);
    expect(first.status).toBe(200);
    const again = await buy(base, lane, sku, 4, `key-${lane}`);
    expect(again.status).toBe(200);
    expect(again.text).toBe(first.text);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect((await peek(base, lane, sku)).body.sold).toBe(4);
  });

  test('concurrent requests with one key sell once: one answer, the others replay it or are told it is in flight', async () => {
    await putSku(base, TEST_ADMIN_TOKEN, 'IDEM-RACE', 100);
    const answers = await Promise.all(Array.from({ length: 20 }, () => buy(base, 'db', 'IDEM-RACE', 1, 'race-key')));
    const statuses = answers.map((a) => a.status);
    expect(statuses.every((s) => s === 200 || s === 409)).toBe(true);
    for (const a of answers.filter((x) => x.status === 409)) expect(a.body.error.code).toBe('idempotency_key_in_use');
    expect((await peek(base, 'db', 'IDEM-RACE')).body.sold).toBe(1);
  });

  test('a sold-out answer is replayed too, even after a restock', async () => {
    await putSku(base, TEST_ADMIN_TOKEN, 'IDEM-OUT', 0);
    expect((await buy(base, 'atomic', 'IDEM-OUT', 1, 'out-key')).status).toBe(409);
    await request('POST', `${base}/v2/admin/skus/IDEM-OUT/restock`, { json: { quantity: 5 }, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
    expect((await buy(base, 'atomic', 'IDEM-OUT', 1, 'out-key')).status).toBe(409);
    expect((await peek(base, 'atomic', 'IDEM-OUT')).body.remaining).toBe(5);
  });

  test('a key reused for a different request is a 422 and sells nothing', async () => {
    await putSku(base, TEST_ADMIN_TOKEN, 'IDEM-MIS', 10);
    expect((await buy(base, 'lock', 'IDEM-MIS', 1, 'mis-key')).status).toBe(200);
    const reused = await buy(base, 'lock', 'IDEM-MIS', 2, 'mis-key');
    expect(reused.status).toBe(422);
    expect(reused.body.error.code).toBe('idempotency_key_reused');
    expect((await peek(base, 'lock', 'IDEM-MIS')).body.sold).toBe(1);
  });
});

describe('validation: every bad input is a 4xx JSON error and changes nothing', () => {
  const sku = 'VALID';
  beforeAll(async () => {
    await putSku(base, TEST_ADMIN_TOKEN, sku, 50);
  });

  const cases: Array<[string, () => Promise<{ status: number; body: unknown }>, number, string]> = [
    ['unknown lane', () => request('POST', `${base}/v2/lanes/nope/skus/${sku}/buy`), 400, 'invalid_lane'],
    ['SKU with bad characters', () => request('POST', `${base}/v2/lanes/atomic/skus/${encodeURIComponent('a b')}/buy`), 400, 'invalid_sku'],
    ['SKU too long', () => request('POST', `${base}/v2/lanes/atomic/skus/${'X'.repeat(33)}/buy`), 400, 'invalid_sku'],
    ['quantity zero', () => buy(base, 'atomic', sku, 0), 400, 'invalid_quantity'],
    ['quantity negative', () => buy(base, 'atomic', sku, -3), 400, 'invalid_quantity'],
    ['quantity fractional', () => buy(base, 'atomic', sku, 1.5), 400, 'invalid_quantity'],
    ['quantity above MAX_QUANTITY', () => buy(base, 'atomic', sku, 1001), 400, 'invalid_quantity'],
    ['quantity as a string', () => request('POST', `${base}/v2/lanes/atomic/skus/${sku}/buy`, { json: { quantity: '2' } }), 400, 'invalid_quantity'],
    ['body not an object', () => request('POST', `${base}/v2/lanes/atomic/skus/${sku}/buy`, { json: [1] }), 400, 'invalid_request'],
    ['unknown field', () => request('POST', `${base}/v2/lanes/atomic/skus/${sku}/buy`, { json: { quantity: 1, price: 0 } }), 400, 'invalid_request'],
    ['malformed JSON', () => request('POST', `${base}/v2/lanes/atomic/skus/${sku}/buy`, { raw: '{"quantity":', headers: { 'content-type': 'application/json' } }), 400, 'invalid_json'],
    ['non-JSON body', () => request('POST', `${base}/v2/lanes/atomic/skus/${sku}/buy`, { raw: 'quantity=2', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'unsupported_media_type'],
    ['body too large', () => request('POST', `${base}/v2/lanes/atomic/skus/${sku}/buy`, { raw: JSON.stringify({ quantity: 1, pad: 'x'.repeat(10_000) }), headers: { 'content-type': 'application/json' } }), 413, 'payload_too_large'],
    ['idempotency key too long', () => buy(base, 'atomic', sku, 1, 'k'.repeat(129)), 400, 'invalid_idempotency_key'],
    ['idempotency key with a space', () => buy(base, 'atomic', sku, 1, 'a key'), 400, 'invalid_idempotency_key'],
    ['unknown route', () => request('GET', `${base}/v3/whatever`), 404, 'not_found'],
    ['admin without token', () => request('PUT', `${base}/v2/admin/skus/${sku}`, { json: { stock: 1 } }), 401, 'unauthorized'],
    ['admin with a wrong token', () => request('PUT', `${base}/v2/admin/skus/${sku}`, { json: { stock: 1 }, headers: { authorization: 'Bearer wrong-token-wrong-token' } }), 401, 'unauthorized'],
    ['admin stock negative', () => request('PUT', `${base}/v2/admin/skus/${sku}`, { json: { stock: -1 }, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } }), 400, 'invalid_request'],
    ['admin stock missing', () => request('PUT', `${base}/v2/admin/skus/${sku}`, { json: {}, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } }), 400, 'invalid_request'],
    ['restock of an unknown SKU', () => request('POST', `${base}/v2/admin/skus/NOSUCH/restock`, { json: { quantity: 1 }, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } }), 404, 'unknown_sku'],
    ['restock quantity zero', () => request('POST', `${base}/v2/admin/skus/${sku}/restock`, { json: { quantity: 0 }, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } }), 400, 'invalid_quantity'],
  ];

  test.each(cases)('%s', async (_name, send, status, code) => {
    const before = await levels(sku);
    const answer = await send();
    expect(answer.status).toBe(status);
    expect((answer.body as ErrorBody).error.code).toBe(code);
    expect(await levels(sku)).toEqual(before);
  });
});

describe('two clusters sharing one Redis', () => {
  test('the redis lane keeps each CLUSTER_NAME\'s stock apart: a buy or a reset in one changes nothing in the other', async () => {
    const other = await startLocalApp();
    const redis = new Redis(process.env.REDIS_URL ?? '', { lazyConnect: true });
    try {
      expect(other.config.clusterName).not.toBe(app.config.clusterName);
      const auth = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
      await putSku(base, TEST_ADMIN_TOKEN, 'SHARED', 5);
      await putSku(other.url, TEST_ADMIN_TOKEN, 'SHARED', 7);
      expect((await buy(base, 'redis', 'SHARED', 2)).body.remaining).toBe(3);
      expect((await peek(other.url, 'redis', 'SHARED')).body).toEqual({ lane: 'redis', sku: 'SHARED', remaining: 7, sold: 0, initial: 7 });
      expect((await buy(other.url, 'redis', 'SHARED', 1)).body.remaining).toBe(6);
      expect((await request('POST', `${other.url}/v2/admin/reset`, { headers: auth })).status).toBe(204);
      expect((await peek(base, 'redis', 'SHARED')).body).toMatchObject({ remaining: 3, sold: 2, initial: 5 });
      // Each cluster's hash is named after it, beside its sync channel and snapshot.
      await redis.connect();
      expect(await redis.hget(`superstock:${app.config.clusterName}:redis-lane:sku:SHARED`, 'remaining')).toBe('3');
      expect(await redis.hget(`superstock:${other.config.clusterName}:redis-lane:sku:SHARED`, 'remaining')).toBe('7');
    } finally {
      redis.disconnect();
      await other.close();
    }
  });
});

describe('admin', () => {
  test('PUT creates in every lane (201), then resets (200); restock adds to remaining and initial; reset restores initial', async () => {
    const auth = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
    const ADM = `ADM-${Date.now()}`;
    expect((await putSku(base, TEST_ADMIN_TOKEN, ADM, 10)).status).toBe(201);
    for (const lane of LANE_NAMES) expect((await buy(base, lane, ADM, 4)).status).toBe(200);
    const restocked = await request<{ lanes: Record<string, { remaining: number; sold: number; initial: number }> }>('POST', `${base}/v2/admin/skus/${ADM}/restock`, { json: { quantity: 5 }, headers: auth });
    expect(restocked.status).toBe(200);
    for (const lane of LANE_NAMES) expect(restocked.body.lanes[lane]).toEqual({ remaining: 11, sold: 4, initial: 15 });
    expect((await request('POST', `${base}/v2/admin/reset`, { headers: auth })).status).toBe(204);
    for (const lane of LANE_NAMES) expect((await peek(base, lane, ADM)).body).toMatchObject({ remaining: 15, sold: 0, initial: 15 });
    expect((await putSku(base, TEST_ADMIN_TOKEN, ADM, 3)).status).toBe(200);
    for (const lane of LANE_NAMES) expect((await peek(base, lane, ADM)).body).toMatchObject({ remaining: 3, sold: 0, initial: 3 });
  });

  test('without ADMIN_TOKEN the admin routes are disabled (403)', async () => {
    const open = await startLocalApp({ ADMIN_TOKEN: '' });
    try {
      const answer = await request<ErrorBody>('PUT', `${open.url}/v2/admin/skus/X`, { json: { stock: 1 }, headers: { authorization: 'Bearer anything-at-all-here' } });
      expect(answer.status).toBe(403);
      expect(answer.body.error.code).toBe('admin_disabled');
    } finally {
      await open.close();
    }
  });
});

describe('OpenAPI', () => {
  test('every error code the server sends is declared by some operation, under its catalogue status', async () => {
    const doc = await request<{ components: { schemas: Record<string, { properties?: { error?: { properties?: { code?: { enum?: string[] } } } } }> } }>('GET', `${base}/v2/openapi.json`);
    const declared = new Map<string, Set<string>>();
    for (const [id, schema] of Object.entries(doc.body.components.schemas)) {
      const status = /Error(\d{3})$/.exec(id)?.[1];
      for (const code of schema.properties?.error?.properties?.code?.enum ?? []) if (status) (declared.get(code) ?? declared.set(code, new Set()).get(code))?.add(status);
    }
    // Never part of an operation's answers: a bug (500), no route (404), a wrong method (405).
    const outsideOperations = new Set(['internal', 'not_found', 'method_not_allowed']);
    for (const [code, { status }] of Object.entries(ERROR_CATALOGUE)) {
      if (outsideOperations.has(code)) continue;
      expect([code, [...(declared.get(code) ?? [])]]).toEqual([code, [String(status)]]);
    }
  });

  test('the served document is OpenAPI 3.1 and describes every route the app answers', async () => {
    const doc = await request<{ openapi: string; paths: Record<string, Record<string, unknown>> }>('GET', `${base}/v2/openapi.json`);
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toBe('3.1.0');
    const documented = Object.entries(doc.body.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    const expected = [
      'POST /v2/lanes/{lane}/skus/{sku}/buy',
      'GET /v2/lanes/{lane}/skus/{sku}',
      'GET /v2/openapi.json',
      'PUT /v2/admin/skus/{sku}',
      'POST /v2/admin/skus:bulk',
      'POST /v2/admin/skus/{sku}/restock',
      'POST /v2/admin/reset',
      'GET /healthz',
      'GET /readyz',
      'POST /api/v1/ManyStock/Cache/BuyFastAtomic/{product}',
      'GET /api/v1/ManyStock/Cache/PeekFastAtomic/{product}',
      ...['Db', 'Cache/Atomic', 'Cache/Signal', 'Cache/Lock'].flatMap((p) => [`POST /api/v1/OneStock/${p}/Buy`, `GET /api/v1/OneStock/${p}/Peek`]),
    ];
    expect(documented.sort()).toEqual(expected.sort());
  });
});
