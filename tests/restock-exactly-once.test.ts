/**
 * A keyed restock is applied exactly once on every lane, whatever cut it off (issue 10, left open
 * at stop 8: on db and redis it was at most once — or, without a ledger, at least once). Each
 * store records the restock's key in the restock's own atomic step (the db lane's conditional
 * update, the redis lane's script), the ledger records it for the in-memory lanes, and a retry
 * with the key applies what is missing and nothing twice.
 * The cut-offs come from Redis itself, after the admin call's readiness check passed: over its
 * `maxmemory` it refuses the restock script (nothing applied: 503), and `CLIENT PAUSE … WRITE`
 * holds the script past the call's timeout and then runs it (applied, answer lost: 504).
 * In allotments mode the in-memory lanes' stock is a pool in MongoDB, which records the key in the
 * restock's own compare-and-swap: the same cut-off on that mode, and a retry that lands on another
 * replica (its admin claim is that replica's own), add nothing twice.
 * Real processes, real Redis, the real MongoDB wire server. Budget: ~30 s.
 */
import { randomUUID } from 'node:crypto';
import { startRedis, stopAll, type Dependency } from './harness/deps.js';
import { startService, waitFor, type ServiceHandle } from './harness/service.js';
import { peek, putSku, request, type ErrorBody } from './support/http.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

afterAll(stopAll);

const LANES = ['db', 'atomic', 'lock', 'signal', 'redis'] as const;

function restock(url: string, sku: string, quantity: number, key: string) {
  return request<ErrorBody>('POST', `${url}/v2/admin/skus/${sku}/restock`, {
    headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'idempotency-key': key },
    json: { quantity },
  });
}

async function initials(url: string, sku: string): Promise<Record<string, number | undefined>> {
  const levels: Record<string, number | undefined> = {};
  for (const lane of LANES) levels[lane] = (await peek(url, lane, sku)).body.initial;
  return levels;
}

const every = (value: number) => Object.fromEntries(LANES.map((lane) => [lane, value]));

describe('a keyed restock cut off on its way, then retried with its key', () => {
  let service: ServiceHandle | null = null;
  let redis: Dependency;

  afterEach(async () => {
    await service?.stop();
    service = null;
  });

  async function start(durability: 'sync' | 'none'): Promise<string> {
    redis = await startRedis();
    service = await startService({
      ELECTION: 'none',
      DURABILITY: durability,
      MONGO_DB: `restock_${randomUUID().slice(0, 8)}`,
      REDIS_URL: redis.url,
      DEPENDENCY_TIMEOUT_MS: '500',
      ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    });
    expect((await putSku(service.url, TEST_ADMIN_TOKEN, 'R', 100)).status).toBe(201);
    return service.url;
  }

  test('Redis refuses it after the others made it (ledger on): the retry restocks redis, and nothing twice', async () => {
    const url = await start('sync');
    const key = randomUUID();
    // Every write refused (noeviction is the default policy); PING and reads still answer.
    await redis.command('CONFIG', 'SET', 'maxmemory', '1');
    const first = await restock(url, 'R', 5, key);
    await redis.command('CONFIG', 'SET', 'maxmemory', '0');
    // The other lanes took it and Redis did not: not "nothing changed" (503) but half applied, an
    // unknown outcome (504) that the retry with the key settles.
    expect(first.status).toBe(504);
    expect(first.body.error.code).toBe('outcome_unknown');
    expect((await peek(url, 'redis', 'R')).body.initial).toBe(100);

    const retry = await restock(url, 'R', 5, key);
    expect(retry.status).toBe(200);
    expect(await initials(url, 'R')).toEqual(every(105));
    // And again: done everywhere, nothing more.
    expect((await restock(url, 'R', 5, key)).status).toBe(200);
    expect(await initials(url, 'R')).toEqual(every(105));
  });

  test('Redis applies it after its answer was given up on (no ledger): the retry adds nothing twice', async () => {
    const url = await start('none');
    const key = randomUUID();
    // Writes (the restock script) wait 1.5 s, past the 500 ms timeout, then run.
    await redis.command('CLIENT', 'PAUSE', '1500', 'WRITE');
    const first = await restock(url, 'R', 5, key);
    expect(first.status).toBe(504);
    await waitForInitial(url, 'redis', 'R', 105);

    const retry = await restock(url, 'R', 5, key);
    expect(retry.status).toBe(200);
    expect(await initials(url, 'R')).toEqual(every(105));
  });
});

describe('allotments mode: a keyed restock cut off, or retried on another replica', () => {
  const replicas: ServiceHandle[] = [];
  let redis: Dependency;

  afterEach(async () => {
    await Promise.all(replicas.splice(0).map((replica) => replica.stop()));
  });

  /** Two allotments-mode replicas sharing one database and Redis; the SKU R (100) created. */
  async function startTwo(): Promise<[string, string]> {
    redis = await startRedis();
    const database = `restock_allot_${randomUUID().slice(0, 8)}`;
    for (const id of ['allot-a', 'allot-b']) {
      replicas.push(
        await startService({
          CLUSTER_MODE: 'allotments',
          ELECTION: 'mongo',
          STOCK_HOST_ID: id,
          MONGO_DB: database,
          REDIS_URL: redis.url,
          DEPENDENCY_TIMEOUT_MS: '500',
          ADMIN_TOKEN: TEST_ADMIN_TOKEN,
        }),
      );
    }
    const [a, b] = replicas.map((r) => r.url) as [string, string];
    expect((await putSku(a, TEST_ADMIN_TOKEN, 'R', 100)).status).toBe(201);
    return [a, b];
  }

  test('a restock done on one replica, retried with its key on another: nothing added twice', async () => {
    const [a, b] = await startTwo();
    const key = randomUUID();
    expect((await restock(a, 'R', 5, key)).status).toBe(200);
    expect(await initials(a, 'R')).toEqual(every(105));
    // The retry's claim is b's own (a new one there): every lane's store must know the key itself.
    expect((await restock(b, 'R', 5, key)).status).toBe(200);
    expect(await initials(a, 'R')).toEqual(every(105));
    expect(await initials(b, 'R')).toEqual(every(105));
  });

  test('Redis refuses it after db took it: 504, and the retry on the other replica restocks what is missing, nothing twice', async () => {
    const [a, b] = await startTwo();
    const key = randomUUID();
    await redis.command('CONFIG', 'SET', 'maxmemory', '1');
    const first = await restock(a, 'R', 5, key);
    await redis.command('CONFIG', 'SET', 'maxmemory', '0');
    expect(first.status).toBe(504);
    expect(first.body.error.code).toBe('outcome_unknown');
    expect((await restock(b, 'R', 5, key)).status).toBe(200);
    expect(await initials(a, 'R')).toEqual(every(105));
    expect((await restock(a, 'R', 5, key)).status).toBe(200);
    expect(await initials(b, 'R')).toEqual(every(105));
  });
});

async function waitForInitial(url: string, lane: string, sku: string, initial: number): Promise<void> {
  await waitFor(async () => (await peek(url, lane, sku)).body.initial === initial, { timeoutMs: 10_000, intervalMs: 100, message: `${lane} ${sku} initial ${initial}` });
}
