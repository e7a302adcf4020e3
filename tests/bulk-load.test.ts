/**
 * Bulk loading: POST /v2/admin/skus:bulk (NDJSON and CSV) and SEED_FILE. A valid list leaves every
 * lane exactly as the same PUTs one by one would; a list with bad lines is refused with their line
 * numbers and changes nothing; a durable replica's bulk-loaded SKUs survive a restart (they are in
 * the ledger). In allotments mode (CLUSTER_MODE=allotments) a list applied through one replica
 * resets a SKU another replica holds units of, as PUT does, and every replica sells and sees the
 * loaded SKUs. Budget: about 60 s on two loaded cores (service processes for SEED_FILE, durability
 * and allotments, the rest in process).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { LANE_NAMES, MAX_STOCK } from '../src/config.js';
import { REPO_ROOT } from './harness/deps.js';
import { startService, waitFor, type ServiceHandle } from './harness/service.js';
import { buy, peek, putSku, request, type ErrorBody } from './support/http.js';
import { startLocalApp, TEST_ADMIN_TOKEN, type LocalApp } from './support/local-app.js';

const auth = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

function bulk(base: string, body: string, contentType = 'application/x-ndjson', headers: Record<string, string> = auth) {
  return request<{ skus: number; created: number } & ErrorBody>('POST', `${base}/v2/admin/skus:bulk`, { raw: body, headers: { 'content-type': contentType, ...headers } });
}

/** Every lane's level of `sku`, or the status when there is none. */
async function levels(base: string, sku: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const lane of LANE_NAMES) {
    const answer = await peek(base, lane, sku);
    out[lane] = answer.status === 200 ? { remaining: answer.body.remaining, sold: answer.body.sold, initial: answer.body.initial } : answer.status;
  }
  return out;
}

describe('POST /v2/admin/skus:bulk', () => {
  let app: LocalApp;

  beforeAll(async () => {
    app = await startLocalApp({ MAX_SKUS: '20000' });
  });

  afterAll(async () => {
    await app.close();
  });

  afterEach(() => {
    expect(app.unexpected).toEqual([]);
  });

  test('leaves every lane exactly as the same PUTs one by one, across chunks, repeats and SKUs that had sales', async () => {
    // 4,500 entries: three chunks; the list names some SKUs twice (the last stock wins, as with PUTs).
    const entries: Array<[string, number]> = [];
    for (let i = 0; i < 4500; i++) entries.push([`${i % 7}x${i % 4000}`, (i * 37) % 1000]);
    const byPut = (name: string) => `P-${name}`;
    const byBulk = (name: string) => `B-${name}`;
    // Both copies of one SKU start existing, with sales, so bulk must reset it as PUT does.
    for (const naming of [byPut, byBulk]) {
      await putSku(app.url, TEST_ADMIN_TOKEN, naming('0x0'), 50);
      for (const lane of LANE_NAMES) expect((await buy(app.url, lane, naming('0x0'), 3)).status).toBe(200);
    }
    for (const [name, stock] of entries) expect((await putSku(app.url, TEST_ADMIN_TOKEN, byPut(name), stock)).status).toBeLessThan(300);

    const list = entries.map(([name, stock]) => JSON.stringify({ sku: byBulk(name), stock })).join('\n') + '\n';
    const loaded = await bulk(app.url, list);
    expect({ status: loaded.status, error: loaded.body.error }).toEqual({ status: 200, error: undefined });
    const distinct = new Set(entries.map(([name]) => name));
    expect(loaded.body).toEqual({ skus: 4500, created: distinct.size - 1 });

    const sample = [...distinct].filter((_, i) => i % 97 === 0).concat(['0x0', entries.at(-1)?.[0] ?? '']);
    for (const name of sample) expect(await levels(app.url, byBulk(name))).toEqual(await levels(app.url, byPut(name)));
    expect(await levels(app.url, byBulk('0x0'))).toEqual(Object.fromEntries(LANE_NAMES.map((lane) => [lane, { remaining: 0, sold: 0, initial: 0 }])));
  });

  test('CSV with a header line loads the same way', async () => {
    const loaded = await bulk(app.url, 'sku,stock\r\nCSV-A,5\r\nCSV-B, 7\r\n\r\n', 'text/csv');
    expect(loaded.status).toBe(200);
    expect(loaded.body).toEqual({ skus: 2, created: 2 });
    for (const lane of LANE_NAMES) expect((await peek(app.url, lane, 'CSV-B')).body).toMatchObject({ remaining: 7, sold: 0, initial: 7 });
    expect((await buy(app.url, 'lock', 'CSV-A', 5)).status).toBe(200);
  });

  test('one bad line refuses the whole list with every bad line number, and nothing is applied', async () => {
    await putSku(app.url, TEST_ADMIN_TOKEN, 'KEEP', 9);
    const before = await levels(app.url, 'KEEP');
    const list = [
      '{"sku":"NEW-1","stock":1}',
      '{"sku":"NEW-2","stock":2',
      '{"sku":"KEEP","stock":100}',
      '{"sku":"NEW-3","stock":-1}',
      '{"sku":"bad sku","stock":1}',
      '{"sku":"NEW-4","stock":1,"price":3}',
      '',
      '["NEW-5",1]',
      '{"stock":2000000001,"sku":"NEW-6"}',
      '{"sku":"NEW-7","stock":7}',
    ].join('\n');
    const refused = await bulk(app.url, list);
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('invalid_request');
    expect(refused.body.error.details).toEqual({
      errorCount: 6,
      errors: [
        { line: 2, message: 'not valid JSON' },
        { line: 4, message: `"stock" must be an integer from 0 to ${MAX_STOCK}` },
        { line: 5, message: '"sku" must be 1-32 characters of A-Z a-z 0-9 . _ -' },
        { line: 6, message: 'unknown field(s): price' },
        { line: 8, message: 'must be a JSON object {"sku": …, "stock": …}' },
        { line: 9, message: `"stock" must be an integer from 0 to ${MAX_STOCK}` },
      ],
    });
    expect(await levels(app.url, 'KEEP')).toEqual(before);
    for (const sku of ['NEW-1', 'NEW-7']) expect(await levels(app.url, sku)).toEqual(Object.fromEntries(LANE_NAMES.map((lane) => [lane, 404])));

    const csv = await bulk(app.url, 'sku,stock\nC-1,1\nC-2\nC-3,x\nC-4,1,2\n', 'text/csv');
    expect(csv.status).toBe(400);
    expect((csv.body.error.details as { errors: Array<{ line: number }> }).errors.map((e) => e.line)).toEqual([3, 4, 5]);
    expect((await peek(app.url, 'atomic', 'C-1')).status).toBe(404);
  });

  test('a line longer than 1 KiB, or more SKUs than MAX_SKUS, is refused', async () => {
    const long = await bulk(app.url, `{"sku":"L-1","stock":1}\n{"sku":"${'x'.repeat(2000)}","stock":1}\n{"sku":"L-3","stock":1}`);
    expect(long.status).toBe(400);
    expect(long.body.error.details).toEqual({ errorCount: 1, errors: [{ line: 2, message: 'longer than 1024 bytes' }] });
    const tooMany = Array.from({ length: 20_001 }, (_, i) => `M-${i},1`).join('\n');
    const refused = await bulk(app.url, tooMany, 'text/csv');
    expect(refused.status).toBe(400);
    expect(refused.body.error.details).toEqual({ errorCount: 1, errors: [{ line: 20_001, message: 'more than 20000 SKUs (MAX_SKUS)' }] });
    expect((await peek(app.url, 'atomic', 'M-0')).status).toBe(404);
  });

  test('needs the admin token and a list content type', async () => {
    expect((await bulk(app.url, '{"sku":"T","stock":1}', 'application/x-ndjson', {})).status).toBe(401);
    const json = await bulk(app.url, '{"sku":"T","stock":1}', 'application/json');
    expect([json.status, json.body.error.code]).toEqual([415, 'unsupported_media_type']);
    expect((await peek(app.url, 'atomic', 'T')).status).toBe(404);
  });
});

describe('with DURABILITY=sync', () => {
  test('bulk-loaded SKUs and their sales are in the ledger: a restart rebuilds them', async () => {
    const env = { ADMIN_TOKEN: TEST_ADMIN_TOKEN, DURABILITY: 'sync', ELECTION: 'none', MONGO_DB: `bulk_durable_${process.pid}` };
    const first = await startService(env);
    const list = Array.from({ length: 2500 }, (_, i) => `D-${i},${i % 10 + 1}`).join('\n');
    try {
      expect((await bulk(first.url, list, 'text/csv')).body).toEqual({ skus: 2500, created: 2500 });
      for (const lane of ['atomic', 'lock', 'signal']) expect((await buy(first.url, lane, 'D-2499', 4)).status).toBe(200);
    } finally {
      expect(await first.stop()).toBe(0);
    }
    const second = await startService(env);
    try {
      for (const lane of ['atomic', 'lock', 'signal']) {
        expect((await peek(second.url, lane, 'D-2499')).body).toMatchObject({ remaining: 6, sold: 4, initial: 10 });
        expect((await peek(second.url, lane, 'D-0')).body).toMatchObject({ remaining: 1, sold: 0, initial: 1 });
      }
    } finally {
      await second.stop();
    }
  });
});

describe('POST /v2/admin/skus:bulk in allotments mode', () => {
  const replicas: ServiceHandle[] = [];

  afterAll(async () => {
    await Promise.all(replicas.map((replica) => replica.stop()));
  });

  test('a list loaded through one replica is what the same PUTs make: a SKU another replica holds units of is reset, and every replica sells the new SKUs and sees them', async () => {
    const database = `bulk_allot_${process.pid}`;
    for (const id of ['bulk-a', 'bulk-b']) {
      replicas.push(await startService({ ADMIN_TOKEN: TEST_ADMIN_TOKEN, CLUSTER_MODE: 'allotments', ELECTION: 'mongo', STOCK_HOST_ID: id, MONGO_DB: database }));
    }
    const [a, b] = replicas.map((r) => r.url) as [string, string];
    // A SKU replica b holds an allotment of, with sales in it.
    expect((await putSku(a, TEST_ADMIN_TOKEN, 'AB-0', 50)).status).toBe(201);
    for (const lane of LANE_NAMES) expect((await buy(b, lane, 'AB-0', 3)).status).toBe(200);

    const list = Array.from({ length: 2500 }, (_, i) => `AB-${i},${(i % 10) + 20}`).join('\n');
    expect((await bulk(a, list, 'text/csv')).body).toEqual({ skus: 2500, created: 2499 });

    const fresh = (initial: number) => Object.fromEntries(LANE_NAMES.map((lane) => [lane, { remaining: initial, sold: 0, initial }]));
    for (const url of [a, b]) {
      expect(await levels(url, 'AB-0')).toEqual(fresh(20));
      expect(await levels(url, 'AB-2499')).toEqual(fresh(29));
    }
    // Both replicas sell the loaded SKUs, from their own allotments; each one's Peek is the global view.
    for (const lane of LANE_NAMES) {
      expect((await buy(a, lane, 'AB-2499', 4)).status).toBe(200);
      expect((await buy(b, lane, 'AB-2499', 5)).status).toBe(200);
      expect((await buy(b, lane, 'AB-0', 20)).status).toBe(200);
      expect((await buy(a, lane, 'AB-0', 1)).status).toBe(409);
    }
    const sold = (initial: number, count: number) => Object.fromEntries(LANE_NAMES.map((lane) => [lane, { remaining: initial - count, sold: count, initial }]));
    for (const url of [a, b]) {
      await waitFor(async () => JSON.stringify(await levels(url, 'AB-2499')) === JSON.stringify(sold(29, 9)), { timeoutMs: 5_000, intervalMs: 100, message: 'every replica sees the sales' });
      expect(await levels(url, 'AB-0')).toEqual(sold(20, 20));
    }
  }, 120_000);
});

describe('SEED_FILE', () => {
  const dir = mkdtempSync(join(tmpdir(), 'superstock-seed-'));

  test('loads the list into every lane at start-up; a SKU also in SEED_SKUS takes the file stock', async () => {
    // Names unique to this run: Redis is shared by the whole test run, and seeding keeps what exists.
    const run = `S${process.pid}`;
    const file = join(dir, 'catalogue.ndjson');
    writeFileSync(file, Array.from({ length: 3000 }, (_, i) => JSON.stringify({ sku: `${run}-${i}`, stock: i })).join('\n') + `\n{"sku":"${run}-BOTH","stock":42}\n`);
    const service = await startService({ SEED_FILE: file, SEED_SKUS: `STOCK,${run}-BOTH`, DURABILITY: 'none', ELECTION: 'none', MONGO_DB: `seed_file_${process.pid}`, ADMIN_TOKEN: TEST_ADMIN_TOKEN });
    try {
      // /readyz answers 200 only once MongoDB and Redis have the list too.
      for (const i of [0, 1234, 2999]) {
        expect(await levels(service.url, `${run}-${i}`)).toEqual(Object.fromEntries(LANE_NAMES.map((lane) => [lane, { remaining: i, sold: 0, initial: i }])));
      }
      expect(await levels(service.url, `${run}-BOTH`)).toEqual(Object.fromEntries(LANE_NAMES.map((lane) => [lane, { remaining: 42, sold: 0, initial: 42 }])));
      expect((await buy(service.url, 'signal', `${run}-10`, 10)).status).toBe(200);
    } finally {
      await service.stop();
    }
  });

  test.each([
    ['a bad line', 'bad.csv', 'A,1\nB,-2\nC,3\n', { DURABILITY: 'none' }, /SEED_FILE .*bad\.csv: 1 bad line\(s\) — line 2: /],
    ['a durable replica', 'ok.csv', 'A,1\n', { DURABILITY: 'sync' }, /SEED_FILE: needs DURABILITY=none/],
    ['an unknown format', 'list.txt', 'A,1\n', { DURABILITY: 'none' }, /SEED_FILE: the name must end in \.csv, \.ndjson or \.jsonl/],
  ])('refuses to start with %s (exit 78, the reason on stderr)', async (_what, name, content, env, message) => {
    const file = join(dir, name);
    writeFileSync(file, content);
    const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'main.js')], {
      env: { PATH: process.env.PATH ?? '', PORT: '0', METRICS_PORT: '0', HOST: '127.0.0.1', WORKERS: '1', SEED_FILE: file, MONGO_URL: process.env.MONGO_URL ?? '', REDIS_URL: process.env.REDIS_URL ?? '', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect({ code, stderr }).toEqual({ code: 78, stderr: expect.stringMatching(message) });
  });
});
