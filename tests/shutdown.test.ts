/**
 * Graceful shutdown: on SIGTERM the server stops accepting, but every request already being
 * served gets its answer before the process exits 0. The requests are held in flight
 * deterministically by pausing the Redis they wait on (SIGSTOP), and the test sends SIGTERM only
 * once the server's own in-flight gauge shows all of them.
 */
import { startRedis, type Dependency, stopAll } from './harness/deps.js';
import { startService, waitFor, type ServiceHandle } from './harness/service.js';
import { buy, putSku, type Answer, type BuyBody, type ErrorBody } from './support/http.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

afterAll(stopAll);

async function inFlight(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split('\n').find((l) => l.startsWith('superstock_http_requests_in_flight '));
  return Number(line?.split(' ')[1] ?? 0);
}

describe('graceful shutdown', () => {
  let redis: Dependency;
  let service: ServiceHandle;

  afterAll(async () => {
    redis?.resume();
    await redis?.stop();
  });

  test('SIGTERM with 30 buys in flight: all 30 get their 200, the stock shows exactly 30 sold, exit code 0', async () => {
    redis = await startRedis();
    service = await startService({ REDIS_URL: redis.url, MONGO_URL: '', CLUSTER_NAME: 'drain', DEPENDENCY_TIMEOUT_MS: '20000', ADMIN_TOKEN: TEST_ADMIN_TOKEN });
    expect((await putSku(service.url, TEST_ADMIN_TOKEN, 'DRAIN', 100)).status).toBe(201);

    redis.pause();
    const pending: Array<Promise<Answer<BuyBody & ErrorBody>>> = Array.from({ length: 30 }, () => buy(service.url, 'redis', 'DRAIN', 1));
    // The metrics scrape itself is not an app request, so the gauge counts only the buys.
    await waitFor(async () => (await inFlight(service.metricsUrl)) === 30, { timeoutMs: 10_000, message: '30 buys in flight' });

    const exited = service.stop('SIGTERM');
    // Give the signal time to arrive while the buys are still blocked on the paused Redis.
    await waitFor(async () => !(await fetch(service.url + '/healthz').then(() => true, () => false)), { timeoutMs: 10_000, message: 'server stops accepting' });
    redis.resume();

    const answers = await Promise.all(pending);
    expect(answers.map((a) => a.status)).toEqual(Array(30).fill(200));
    expect(new Set(answers.map((a) => a.body.remaining)).size).toBe(30);
    expect(await exited).toBe(0);
    expect(Number(await redis.command('HGET', 'superstock:drain:redis-lane:sku:DRAIN', 'sold'))).toBe(30);
  });
});
