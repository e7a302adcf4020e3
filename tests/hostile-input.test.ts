/**
 * Hostile input, in process against real MongoDB and Redis: counts out of range, malformed URIs,
 * bad UTF-8, odd and duplicated headers, huge and chunked bodies, every content type, methods the
 * API does not declare, and request lines fetch cannot even send (raw sockets). Each must get a
 * clear 4xx (never a 5xx), and a refused request must change no lane. Budget: ~10 s.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { LANE_NAMES, MAX_STOCK } from '../src/config.js';
import { startService } from './harness/service.js';
import { buy, peek, putSku, request, type ErrorBody, type LevelBody } from './support/http.js';
import { startLocalApp, TEST_ADMIN_TOKEN, type LocalApp } from './support/local-app.js';

let app: LocalApp;
let base: string;
const auth = () => ({ authorization: `Bearer ${TEST_ADMIN_TOKEN}` });

beforeAll(async () => {
  app = await startLocalApp();
  base = app.url;
});

afterAll(async () => {
  await app.close();
});

afterEach(() => {
  // Nothing a client sends may reach the catch-all 500, nor an answer the contract does not declare.
  expect(app.unexpected).toEqual([]);
});

async function levels(sku: string): Promise<Record<string, LevelBody | number>> {
  const out: Record<string, LevelBody | number> = {};
  for (const lane of LANE_NAMES) {
    const answer = await peek(base, lane, sku);
    out[lane] = answer.status === 200 ? answer.body : answer.status;
  }
  return out;
}

const restock = (sku: string, quantity: unknown) => request<ErrorBody & { lanes: Record<string, LevelBody> }>('POST', `${base}/v2/admin/skus/${sku}/restock`, { json: { quantity }, headers: auth() });

/** Send raw bytes, read until the server closes or goes quiet after an answer; resolve with what came back. */
function raw(bytes: string | Buffer): Promise<string> {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    let answer = '';
    const timer = setTimeout(() => socket.destroy(), 3000);
    socket.on('data', (d) => {
      answer += d.toString('latin1');
      // One full answer is enough: we do not wait for keep-alive connections to close.
      if (/\r\n\r\n/.test(answer) && /content-length: (\d+)/i.test(answer)) {
        const length = Number(/content-length: (\d+)/i.exec(answer)?.[1]);
        if (Buffer.byteLength(answer.split('\r\n\r\n').slice(1).join('\r\n\r\n'), 'latin1') >= length) socket.end();
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
    socket.on('error', reject);
    socket.write(bytes);
  });
}

const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);

describe('stock limit: one range for every count, on every lane', () => {
  test(`issue 9 defect 1: PUT 2e9 then restock 2e9 is refused with stock_limit; no lane wraps negative (fails on main: 200, atomic remaining -294967296)`, async () => {
    const put = await putSku(base, TEST_ADMIN_TOKEN, 'OVF', 2_000_000_000);
    expect(put.status).toBe(422);
    expect(put.body.error).toMatchObject({ code: 'stock_limit', details: { limit: MAX_STOCK, wouldBe: 2_000_000_000 } });
    expect((await putSku(base, TEST_ADMIN_TOKEN, 'OVF', 1000)).status).toBe(201);
    const before = await levels('OVF');
    const refused = await restock('OVF', 2_000_000_000);
    expect(refused.status).toBe(422);
    expect(refused.body.error.code).toBe('stock_limit');
    expect(await levels('OVF')).toEqual(before);
    for (const lane of LANE_NAMES) expect((await buy(base, lane, 'OVF', 1)).status).toBe(200);
  });

  test('a restock that would take any lane past the limit changes no lane, and says the limit and what it would have become', async () => {
    expect((await putSku(base, TEST_ADMIN_TOKEN, 'EDGE', MAX_STOCK - 10)).status).toBe(201);
    for (const lane of LANE_NAMES) expect((await buy(base, lane, 'EDGE', 5)).status).toBe(200);
    // Selling does not make room: the limit bounds initial (remaining + sold).
    const before = await levels('EDGE');
    const refused = await restock('EDGE', 11);
    expect(refused.status).toBe(422);
    expect(refused.body.error).toMatchObject({ code: 'stock_limit', details: { limit: MAX_STOCK, initial: MAX_STOCK - 10, quantity: 11, wouldBe: MAX_STOCK + 1 } });
    expect(await levels('EDGE')).toEqual(before);
    const filled = await restock('EDGE', 10);
    expect(filled.status).toBe(200);
    for (const lane of LANE_NAMES) expect(filled.body.lanes[lane]).toEqual({ remaining: MAX_STOCK - 5, sold: 5, initial: MAX_STOCK });
  });

  test('when one lane would overflow and the others would not, none is restocked', async () => {
    await putSku(base, TEST_ADMIN_TOKEN, 'SKEW', 100);
    // Only the atomic lane is pushed close to the limit (through the lane itself, as a replay could).
    await app.laneSet.lanes.atomic.restock('SKEW', MAX_STOCK - 150);
    const before = await levels('SKEW');
    const refused = await restock('SKEW', 100);
    expect(refused.status).toBe(422);
    expect(refused.body.error.details).toMatchObject({ lane: 'atomic', wouldBe: MAX_STOCK + 50 });
    expect(await levels('SKEW')).toEqual(before);
  });

  test('every lane refuses to hold more than the limit on its own too (the representation guard under the admin check)', async () => {
    await putSku(base, TEST_ADMIN_TOKEN, 'GUARD', MAX_STOCK);
    for (const lane of LANE_NAMES) {
      await expect(app.laneSet.lanes[lane].restock('GUARD', 1)).rejects.toMatchObject({ code: 'stock_limit' });
      await expect(app.laneSet.lanes[lane].put('GUARD', MAX_STOCK + 1)).rejects.toMatchObject({ code: 'stock_limit' });
    }
    for (const lane of LANE_NAMES) expect((await peek(base, lane, 'GUARD')).body).toMatchObject({ remaining: MAX_STOCK, sold: 0, initial: MAX_STOCK });
  });
});

describe('stock limit across worker threads (a real service process, durable lanes)', () => {
  test('concurrent restocks racing for the last room below the limit: exactly enough succeed, every lane ends at the limit, the same on all', async () => {
    const database = `limit_${randomBytes(4).toString('hex')}`;
    const service = await startService({ ADMIN_TOKEN: TEST_ADMIN_TOKEN, MONGO_DB: database, CLUSTER_NAME: database, WORKERS: '2' });
    try {
      expect((await putSku(service.url, TEST_ADMIN_TOKEN, 'RACE', MAX_STOCK - 100)).status).toBe(201);
      const answers = await Promise.all(
        Array.from({ length: 24 }, () =>
          request<ErrorBody>('POST', `${service.url}/v2/admin/skus/RACE/restock`, { json: { quantity: 10 }, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } }),
        ),
      );
      const statuses = answers.map((a) => a.status).sort();
      expect(statuses.filter((s) => s === 200)).toHaveLength(10);
      expect(statuses.filter((s) => s === 422)).toHaveLength(14);
      for (const refused of answers.filter((a) => a.status === 422)) expect(refused.body.error.code).toBe('stock_limit');
      for (const lane of LANE_NAMES) expect((await peek(service.url, lane, 'RACE')).body).toMatchObject({ remaining: MAX_STOCK, sold: 0, initial: MAX_STOCK });
    } finally {
      await service.stop();
    }
  });
});

describe('malformed URIs and hostile paths', () => {
  test('issue 9 defect 2: malformed percent-encoding is a 400, not a 500 (fails on main: 500 internal)', async () => {
    const answer = await request<ErrorBody>('GET', `${base}/api/v1/ManyStock/Cache/PeekFastAtomic/%00%ff`);
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('invalid_request');
  });

  test.each([
    ['GET', '/v2/lanes/atomic/skus/%E0%A4%A'],
    ['POST', '/v2/lanes/%ff/skus/NVDA/buy'],
    ['GET', '/v2/lanes/lock/skus/%C0%AF'],
    ['PUT', '/v2/admin/skus/%'],
    ['POST', '/api/v1/ManyStock/Cache/BuyFastAtomic/%zz'],
  ])('%s %s: bad percent-encoding or UTF-8 is a 400', async (method, path) => {
    const answer = await request<ErrorBody>(method, `${base}${path}`, { headers: auth() });
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toMatch(/^invalid_/);
  });

  // fetch normalises dot segments away (and %2e with them), so these go over a raw socket, as a
  // hostile client would send them.
  test.each(['.', '..', '.hidden', '%2e', '%2E%2E', 'a%2Fb', '%00'])('SKU %s is refused as invalid_sku on every route', async (sku) => {
    const send = (method: string, path: string, body = '') =>
      raw(`${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    const answers = [
      ...LANE_NAMES.map((lane) => send('GET', `/v2/lanes/${lane}/skus/${sku}`)),
      send('POST', `/v2/lanes/atomic/skus/${sku}/buy`),
      send('PUT', `/v2/admin/skus/${sku}`, '{"stock":1}'),
      send('POST', `/v2/admin/skus/${sku}/restock`, '{"quantity":1}'),
      send('GET', `/api/v1/ManyStock/Cache/PeekFastAtomic/${sku}`),
      send('POST', `/api/v1/ManyStock/Cache/BuyFastAtomic/${sku}`),
    ];
    for (const answer of await Promise.all(answers)) {
      expect(statusOf(answer)).toBe(400);
      expect(answer).toContain('"invalid_sku"');
    }
  });
});

describe('methods: an undeclared method on a known path is a 405 with Allow', () => {
  test.each([
    ['TRACE', '/v2/lanes/atomic/skus/NVDA', 'GET, HEAD'],
    ['DELETE', '/v2/lanes/atomic/skus/NVDA/buy', 'POST'],
    ['GET', '/v2/admin/skus/NVDA', 'PUT'],
    ['PATCH', '/api/v1/OneStock/Cache/Lock/Buy', 'POST'],
    ['POST', '/healthz', 'GET, HEAD'],
    ['PUT', '/v2/openapi.json', 'GET, HEAD'],
  ])('issue 9 defect 3: %s %s → 405, Allow: %s (fails on main: 404)', async (method, path, allow) => {
    // Over a raw socket: fetch refuses to send TRACE.
    const answer = await raw(`${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_ADMIN_TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    expect(statusOf(answer)).toBe(405);
    expect(answer).toMatch(new RegExp(`\r\nallow: ${allow}\r\n`, 'i'));
    expect(answer).toContain('"method_not_allowed"');
  });

  test('OPTIONS on a known path answers 204 with Allow; an unknown path stays 404', async () => {
    const options = await request('OPTIONS', `${base}/v2/lanes/atomic/skus/NVDA/buy`);
    expect(options.status).toBe(204);
    expect(options.headers.get('allow')).toBe('POST');
    expect((await request<ErrorBody>('DELETE', `${base}/v3/nothing`)).status).toBe(404);
  });
});

describe('bodies and headers', () => {
  beforeAll(async () => {
    await putSku(base, TEST_ADMIN_TOKEN, 'BODY', 50);
  });

  const buyPath = () => `${base}/v2/lanes/lock/skus/BODY/buy`;

  test.each([
    ['text/plain', 'quantity=1', 415],
    ['application/xml', '<quantity>1</quantity>', 415],
    ['multipart/form-data; boundary=x', '--x\r\n\r\n1\r\n--x--', 415],
    ['application/json; charset=latin1', '{"quantity":1}', 415],
    ['application/json; charset=utf-16', '{"quantity":1}', 400],
    ['application/json; charset=ebcdic', '{"quantity":1}', 415],
    ['application/json', '\xff\xfe{"quantity":1}', 400],
    ['application/json', '{"quantity":1', 400],
    ['application/json', 'null', 400],
    ['application/json', '"1"', 400],
    ['application/json', '{"quantity":1e400}', 400],
    ['application/json', '{"__proto__":{"quantity":2}}', 400],
    ['application/json', '{"quantity":1,"quantity":2000}', 400],
  ])('content-type %s with body %j → %i, nothing sold', async (type, body, status) => {
    const before = await levels('BODY');
    const answer = await request<ErrorBody>('POST', buyPath(), { raw: body, headers: { 'content-type': type } });
    expect(answer.status).toBe(status);
    expect(answer.body.error.code).toMatch(/^(invalid_|unsupported_media_type)/);
    expect(await levels('BODY')).toEqual(before);
  });

  test('bad UTF-8 inside a JSON string is refused, nothing sold', async () => {
    const body = Buffer.concat([Buffer.from('{"quantity":1,"x":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    const answer = await raw(
      Buffer.concat([Buffer.from(`POST /v2/lanes/lock/skus/BODY/buy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`), body]),
    );
    expect(statusOf(answer)).toBe(400);
  });

  test('a huge body is a 413 whether its length is declared or chunked, nothing sold', async () => {
    const before = await levels('BODY');
    const big = JSON.stringify({ quantity: 1, pad: 'x'.repeat(1_000_000) });
    expect((await request('POST', buyPath(), { raw: big, headers: { 'content-type': 'application/json' } })).status).toBe(413);
    const chunked = await raw(
      `POST /v2/lanes/lock/skus/BODY/buy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` +
        `${(20_000).toString(16)}\r\n${'x'.repeat(20_000)}\r\n0\r\n\r\n`,
    );
    expect(statusOf(chunked)).toBe(413);
    expect(await levels('BODY')).toEqual(before);
  });

  test('a gzip-encoded body that is not gzip, and an unknown encoding, are refused', async () => {
    expect((await request('POST', buyPath(), { raw: '{"quantity":1}', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } })).status).toBe(400);
    expect((await request('POST', buyPath(), { raw: '{"quantity":1}', headers: { 'content-type': 'application/json', 'content-encoding': 'zstd-or-whatever' } })).status).toBe(415);
  });

  test('a duplicated Idempotency-Key header is refused, never half-used', async () => {
    const answer = await raw(
      'POST /v2/lanes/lock/skus/BODY/buy HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\r\nIdempotency-Key: b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
    );
    expect(statusOf(answer)).toBe(400);
    expect(answer).toContain('invalid_idempotency_key');
  });

  test('duplicated Authorization headers do not authenticate', async () => {
    const answer = await raw(
      `PUT /v2/admin/skus/BODY HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_ADMIN_TOKEN}\r\nAuthorization: Bearer ${TEST_ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{"stock":1}`,
    );
    expect(statusOf(answer)).toBeGreaterThanOrEqual(400);
    expect(statusOf(answer)).toBeLessThan(500);
    expect((await peek(base, 'lock', 'BODY')).body.initial).toBe(50);
  });

  test.each([
    ['a garbage request line', '\x00\x01\x02 / HTTP/1.1\r\n\r\n'],
    ['a header with no colon', 'GET /healthz HTTP/1.1\r\nHost: x\r\nnonsense\r\n\r\n'],
    ['a header value with a raw control byte', 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n'],
    ['two Content-Length headers that disagree', 'POST /v2/lanes/lock/skus/BODY/buy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}'],
    ['Content-Length and chunked together', 'POST /v2/lanes/lock/skus/BODY/buy HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['a broken chunk size', 'POST /v2/lanes/lock/skus/BODY/buy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n'],
    ['a path that is not origin-form', 'GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a 40 KB request target', `GET /v2/lanes/lock/skus/${'A'.repeat(40_000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
    ['a 40 KB header', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(40_000)}\r\n\r\n`],
    ['a NUL byte in the path', 'GET /v2/lanes/lock/skus/A\x00B HTTP/1.1\r\nHost: x\r\n\r\n'],
  ])('%s: a 4xx from the parser (or a closed connection), never a 5xx; nothing sold', async (_name, bytes) => {
    const answer = await raw(bytes);
    if (answer !== '') {
      expect(statusOf(answer)).toBeGreaterThanOrEqual(400);
      expect(statusOf(answer)).toBeLessThan(500);
    }
    expect((await peek(base, 'lock', 'BODY')).body.sold).toBe(0);
  });

  test('a request line without a version is read as HTTP/0.9-style and answered, not failed', async () => {
    const answer = await raw('GET /healthz\r\n\r\n');
    expect(answer === '' || statusOf(answer) < 500).toBe(true);
    expect((await peek(base, 'lock', 'BODY')).body.sold).toBe(0);
  });

  test('a body sent to an operation that takes none is ignored, whatever its type', async () => {
    const answer = await request('GET', `${base}/v2/lanes/lock/skus/BODY`, { raw: 'not json at all', headers: { 'content-type': 'text/plain' } }).catch(() => null);
    // fetch refuses GET bodies; over a raw socket the server must answer the GET normally.
    if (answer === null) {
      const rawAnswer = await raw('GET /v2/lanes/lock/skus/BODY HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc');
      expect(statusOf(rawAnswer)).toBe(200);
    }
  });
});
