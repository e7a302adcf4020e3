/**
 * Dependencies may come up in any order and go away and come back at any time (issue 10, item 0).
 * A replica started before MongoDB or Redis listens must recover by itself once they are there,
 * and until then every answer that needs them is a 503 — never a 404 (its SKUs "unknown") or a
 * 500 (a request that reached a store and got no answer may also be a 504 outcome_unknown). The replica runs as in production: the default election (MongoDB lease) and durable
 * in-memory lanes, so the ledger, the lease and the seeding all have to find MongoDB late.
 * Budget: ~30 s (about 60 s on a machine as loaded as the one it was written on).
 */
import { reserveMongo, reserveRedis, startMongo, startRedis, stopAll, type Dependency } from './harness/deps.js';
import { startService, waitFor, type ServiceHandle } from './harness/service.js';
import { buy, putSku, request } from './support/http.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

afterAll(stopAll);

interface Readiness {
  checks: Record<string, string>;
}

/** How long a dependency stays missing after the replica started (the reproduction). */
const MISSING_MS = 5000;

/** Every status seen while a dependency was missing or recovering, by what was asked. */
class Observed {
  readonly statuses = new Map<string, Set<number>>();

  async probe(url: string, lanes: readonly string[]): Promise<void> {
    const note = (what: string, status: number) => {
      const set = this.statuses.get(what) ?? new Set<number>();
      set.add(status);
      this.statuses.set(what, set);
    };
    for (const lane of lanes) note(`${lane} buy`, (await buy(url, lane, 'NVDA', 1)).status);
    note('admin PUT', (await putSku(url, TEST_ADMIN_TOKEN, 'LATE', 100)).status);
    note('readyz', (await request('GET', `${url}/readyz`)).status);
  }

  /**
   * Statuses other than success, 503 (refused) and 504 (a request sent to a store that did not
   * answer: outcome unknown, the documented answer for it).
   */
  wrong(): string[] {
    return [...this.statuses].flatMap(([what, set]) => [...set].filter((s) => s >= 300 && s !== 503 && s !== 504).map((s) => `${what}: ${s}`));
  }
}

async function probeFor(ms: number, observed: Observed, url: string, lanes: readonly string[]): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) await observed.probe(url, lanes);
}

async function recovered(url: string, observed: Observed, lanes: readonly string[], dependency: 'mongo' | 'redis'): Promise<void> {
  await waitFor(
    async () => {
      await observed.probe(url, lanes);
      const ready = await request<Readiness>('GET', `${url}/readyz`);
      return ready.status === 200 && ready.body.checks[dependency] === 'ok';
    },
    { timeoutMs: 30_000, intervalMs: 200, message: `readyz says ${dependency} ok` },
  );
  // Ready is the replica's word; selling is the proof. (A lane may still be settling its
  // connections for a moment: wait for it, and keep checking that nothing but 503 came meanwhile.)
  const failing = new Set(lanes);
  await waitFor(
    async () => {
      for (const lane of failing) if ((await buy(url, lane, 'NVDA', 1)).status === 200) failing.delete(lane);
      await observed.probe(url, [...failing]);
      return failing.size === 0;
    },
    { timeoutMs: 15_000, intervalMs: 200, message: `every lane sells after ${dependency} is back` },
  );
  await waitFor(async () => (await putSku(url, TEST_ADMIN_TOKEN, 'LATE', 100)).status < 300, { timeoutMs: 10_000, message: 'admin PUT works' });
  expect((await buy(url, 'atomic', 'LATE', 1)).status).toBe(200);
}

describe('a replica started before its dependencies', () => {
  let service: ServiceHandle | null = null;

  afterEach(async () => {
    await service?.stop();
    service = null;
  });

  test('MongoDB starts 5 s after the replica: 503 until then, then ready, db lane and admin work', async () => {
    const mongo = await reserveMongo();
    const redis = await startRedis();
    service = await startService({ MONGO_URL: mongo.url, REDIS_URL: redis.url, DEPENDENCY_TIMEOUT_MS: '500', ADMIN_TOKEN: TEST_ADMIN_TOKEN }, { until: 'alive' });
    const observed = new Observed();
    const lanes = ['db', 'atomic', 'lock', 'signal'];
    await probeFor(MISSING_MS, observed, service.url, lanes);
    expect(observed.statuses.get('db buy')).toEqual(new Set([503]));
    expect(observed.statuses.get('atomic buy')).toEqual(new Set([503]));
    const ready = await request<Readiness>('GET', `${service.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body.checks.mongo).toBe('unavailable');

    await mongo.start();
    await recovered(service.url, observed, lanes, 'mongo');
    expect(observed.wrong()).toEqual([]);
  });

  test('Redis starts 5 s after the replica: the redis lane answers 503 until then, then sells', async () => {
    const mongo = await startMongo();
    const redis = await reserveRedis();
    service = await startService({ MONGO_URL: mongo.url, REDIS_URL: redis.url, DEPENDENCY_TIMEOUT_MS: '500', ADMIN_TOKEN: TEST_ADMIN_TOKEN }, { until: 'alive' });
    const observed = new Observed();
    await probeFor(MISSING_MS, observed, service.url, ['redis']);
    expect(observed.statuses.get('redis buy')).toEqual(new Set([503]));
    expect((await request<Readiness>('GET', `${service.url}/readyz`)).body.checks.redis).toBe('unavailable');

    await redis.start();
    await recovered(service.url, observed, ['redis', 'db', 'atomic'], 'redis');
    expect(observed.wrong()).toEqual([]);
  });
});

describe('both dependencies go away and come back', () => {
  let mongo: Dependency;
  let redis: Dependency;
  let service: ServiceHandle;

  beforeAll(async () => {
    mongo = await startMongo();
    redis = await startRedis();
    service = await startService({ MONGO_URL: mongo.url, REDIS_URL: redis.url, DEPENDENCY_TIMEOUT_MS: '500', ADMIN_TOKEN: TEST_ADMIN_TOKEN });
  });

  afterAll(async () => {
    await service?.stop();
  });

  test('MongoDB paused and Redis restarted empty: 503s meanwhile, then every lane sells again by itself', async () => {
    const lanes = ['db', 'redis', 'atomic', 'lock', 'signal'];
    for (const lane of lanes) expect((await buy(service.url, lane, 'NVDA', 1)).status).toBe(200);
    // Paused, not stopped: the test MongoDB keeps its data only in memory (a real one would persist).
    mongo.pause();
    await redis.stop();
    const observed = new Observed();
    await probeFor(3000, observed, service.url, lanes);
    // MongoDB paused still accepts what is sent, so a buy may also be an unknown outcome (504).
    for (const lane of lanes) expect([...(observed.statuses.get(`${lane} buy`) ?? [])].filter((s) => s !== 503 && s !== 504)).toEqual([]);
    mongo.resume();
    await redis.start();
    // Redis comes back empty: the seed SKUs are written again before the redis lane serves.
    await recovered(service.url, observed, lanes, 'redis');
    expect(observed.wrong()).toEqual([]);
  });
});
