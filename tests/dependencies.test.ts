/**
 * Dependency outages: a lane whose store is down answers a fast 503 (never a hang), /readyz says
 * which dependency is missing, the other lanes keep selling, and the lane recovers on its own
 * when the store comes back. Without MONGO_URL / REDIS_URL at all, the in-memory lanes work and
 * the db and redis lanes answer a 503 that names the variable to set.
 */
import { MongoClient } from 'mongodb';
import { startMongo, startRedis, type Dependency, stopAll } from './harness/deps.js';
import { startService, waitFor, type ServiceHandle } from './harness/service.js';
import { buy, putSku, request, type ErrorBody } from './support/http.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

afterAll(stopAll);

interface Readiness {
  status: string;
  checks: Record<string, string>;
}

/** Generous bound: "fast" means one DEPENDENCY_TIMEOUT_MS (500 ms here), not a hang. */
const FAST_MS = 5000;

/** Whether a fresh client gets an answer to a ping within 300 ms. */
async function mongoAnswers(url: string): Promise<boolean> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 300, connectTimeoutMS: 300, socketTimeoutMS: 300 });
  try {
    await client.db('admin').command({ ping: 1 });
    return true;
  } catch {
    return false;
  } finally {
    await client.close(true).catch(() => undefined);
  }
}

describe('dependency outages', () => {
  let redis: Dependency;
  let mongo: Dependency;
  let service: ServiceHandle;

  beforeAll(async () => {
    redis = await startRedis();
    mongo = await startMongo();
    // The original's pure in-memory lanes (no election, no ledger), so they must not care about MongoDB.
    service = await startService({ REDIS_URL: redis.url, MONGO_URL: mongo.url, ELECTION: 'none', DURABILITY: 'none', DEPENDENCY_TIMEOUT_MS: '500', ADMIN_TOKEN: TEST_ADMIN_TOKEN });
    await putSku(service.url, TEST_ADMIN_TOKEN, 'OUT', 1000);
  });

  afterAll(async () => {
    await service?.stop();
    await redis?.stop();
    await mongo?.stop();
  });

  test.each([
    ['redis', 'redis', () => redis],
    ['db', 'mongo', () => mongo],
  ] as const)('%s lane: %s stopped → fast 503 with Retry-After, readyz 503, other lanes sell; restarted → sells again', async (lane, dependency, dep) => {
    expect((await buy(service.url, lane, 'OUT', 1)).status).toBe(200);
    await dep().stop();
    // A buy sent on a connection the outage cut before the replica noticed is an unknown outcome
    // (504), honestly; once the replica knows the store is gone, every buy is a fast 503.
    const first = await buy(service.url, lane, 'OUT', 1);
    expect([503, 504]).toContain(first.status);
    await waitFor(async () => (await request<Readiness>('GET', `${service.url}/readyz`)).body.checks[dependency] === 'unavailable', { timeoutMs: 10_000, message: `readyz to see ${dependency} gone` });

    const started = Date.now();
    const refused = await buy(service.url, lane, 'OUT', 1);
    expect(Date.now() - started).toBeLessThan(FAST_MS);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.body.error).toMatchObject({ code: 'dependency_unavailable', details: { dependency } });

    const ready = await request<Readiness>('GET', `${service.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body.checks[dependency]).toBe('unavailable');
    expect(ready.body.checks.memory).toBe('ok');

    for (const other of ['atomic', 'lock', 'signal']) expect((await buy(service.url, other, 'OUT', 1)).status).toBe(200);

    await dep().start();
    await waitFor(async () => (await request('GET', `${service.url}/readyz`)).status === 200, { timeoutMs: 20_000, message: `readyz after ${dependency} restart` });
    // A Redis without persistence comes back empty; the admin PUT is how its catalogue is restored.
    // (Each worker thread reconnects on its own: the PUT may land on one still reconnecting.)
    await waitFor(async () => (await putSku(service.url, TEST_ADMIN_TOKEN, 'OUT', 1000)).status < 300, { timeoutMs: 20_000, message: 'catalogue restored' });
    await waitFor(async () => (await buy(service.url, lane, 'OUT', 1)).status === 200, { timeoutMs: 20_000, message: `${lane} lane sells again` });
  });

  test('the dependency errors are counted in metrics', async () => {
    const text = await (await fetch(service.metricsUrl)).text();
    for (const dependency of ['mongo', 'redis']) {
      const line = text.split('\n').find((l) => l.startsWith(`superstock_dependency_errors_total{dependency="${dependency}"}`));
      expect(Number(line?.split(' ')[1])).toBeGreaterThan(0);
    }
  });
});

describe('MongoDB down with durable in-memory lanes (the default with MONGO_URL)', () => {
  let mongo: Dependency;
  let service: ServiceHandle;

  beforeAll(async () => {
    mongo = await startMongo();
    service = await startService({ MONGO_URL: mongo.url, ELECTION: 'none', DEPENDENCY_TIMEOUT_MS: '500', ADMIN_TOKEN: TEST_ADMIN_TOKEN });
  });

  afterAll(async () => {
    await service?.stop();
    await mongo?.stop();
  });

  test('an in-memory sale that cannot be made durable is refused fast with 503 and gives its unit back', async () => {
    await putSku(service.url, TEST_ADMIN_TOKEN, 'DUR', 10);
    expect((await buy(service.url, 'lock', 'DUR', 1)).status).toBe(200);
    // Paused, not stopped: an outage without data loss (the test wire server keeps data in memory).
    mongo.pause();
    // SIGSTOP is asynchronous: judge the service only once MongoDB has stopped answering.
    await waitFor(async () => !(await mongoAnswers(mongo.url)), { timeoutMs: 10_000, message: 'MongoDB paused' });
    const started = Date.now();
    const refused = await buy(service.url, 'lock', 'DUR', 1);
    expect(Date.now() - started).toBeLessThan(FAST_MS);
    expect(refused.status).toBe(503);
    expect((await request<{ remaining: number }>('GET', `${service.url}/v2/lanes/lock/skus/DUR`)).body).toMatchObject({ remaining: 9, sold: 1 });
    mongo.resume();
    await waitFor(async () => (await buy(service.url, 'lock', 'DUR', 1)).status === 200, { timeoutMs: 20_000, message: 'durable sales again' });
    // The refused sale's unit is back (at once, or once its unknown outcome is settled).
    await waitFor(async () => (await request<{ remaining: number; sold: number }>('GET', `${service.url}/v2/lanes/lock/skus/DUR`)).body.sold === 2, { timeoutMs: 10_000, message: 'exactly two durable sales' });
    expect((await request<{ remaining: number }>('GET', `${service.url}/v2/lanes/lock/skus/DUR`)).body).toMatchObject({ remaining: 8, sold: 2 });
  });
});

describe('no MongoDB or Redis configured', () => {
  let service: ServiceHandle;

  beforeAll(async () => {
    service = await startService({ REDIS_URL: '', MONGO_URL: '' });
  });

  afterAll(async () => {
    await service?.stop();
  });

  test('in-memory lanes sell, db and redis lanes answer 503 naming the variable, readyz is 200', async () => {
    for (const lane of ['atomic', 'lock', 'signal']) expect((await buy(service.url, lane, 'NVDA', 1)).status).toBe(200);
    for (const [lane, variable] of [
      ['db', 'MONGO_URL'],
      ['redis', 'REDIS_URL'],
    ]) {
      const answer = await buy(service.url, lane as string, 'NVDA', 1);
      expect(answer.status).toBe(503);
      expect(answer.body.error.message).toContain(variable);
    }
    const oneStockDb = await request<ErrorBody>('POST', `${service.url}/api/v1/OneStock/Db/Buy`);
    expect(oneStockDb.status).toBe(503);
    const ready = await request<Readiness>('GET', `${service.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.body.checks).toEqual({ memory: 'ok', mongo: 'not_configured', redis: 'not_configured', primary: 'ok' });
  });
});
