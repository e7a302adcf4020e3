/**
 * The whole HTTP app in the test process (no worker threads): the real lanes over a real
 * SharedStock, real MongoDB and Redis from the harness, the signal lane's owner on this thread.
 * For API behaviour; the multi-threaded tests start real server processes instead.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { loadConfig, type Config } from '../../src/config.js';
import { createApp } from '../../src/http/app.js';
import { IdempotencyRegistry } from '../../src/idempotency.js';
import { buildLanes, type LaneSet } from '../../src/lanes/index.js';
import { SignalOwner } from '../../src/lanes/signal-lane.js';
import { SharedStock } from '../../src/memory/shared-stock.js';
import { WorkerMetrics } from '../../src/metrics.js';
import { waitFor } from '../harness/wait.js';

export interface LocalApp {
  readonly url: string;
  readonly config: Config;
  readonly laneSet: LaneSet;
  readonly metrics: WorkerMetrics;
  readonly unexpected: unknown[];
  close(): Promise<void>;
}

export const TEST_ADMIN_TOKEN = randomBytes(16).toString('hex');

export async function startLocalApp(env: Record<string, string> = {}): Promise<LocalApp> {
  const config = loadConfig({
    MONGO_URL: process.env.MONGO_URL,
    REDIS_URL: process.env.REDIS_URL,
    MONGO_DB: `test_${randomBytes(4).toString('hex')}`,
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    INITIAL_STOCK: '100',
    DEPENDENCY_TIMEOUT_MS: '1000',
    ...env,
  });
  const stock = SharedStock.allocate(config.maxSkus);
  for (const sku of config.seedSkus) stock.ensure(sku, config.initialStock);
  const laneSet = buildLanes(config, stock, new SignalOwner(stock).localChannel(), 'superstock-test');
  // Seed only once both stores answer: a put issued while a client is still connecting fails fast.
  await waitFor(async () => (await Promise.all([laneSet.db?.checkReady(), laneSet.redis?.checkReady()]), true), {
    timeoutMs: 30_000,
    message: 'MongoDB and Redis to answer the local app',
  });
  if (laneSet.db) {
    for (const sku of config.seedSkus) await laneSet.db.put(sku, config.initialStock);
    stock.markSeeded('mongo');
  }
  if (laneSet.redis) {
    for (const sku of config.seedSkus) await laneSet.redis.put(sku, config.initialStock);
    stock.markSeeded('redis');
  }
  const metrics = new WorkerMetrics();
  const unexpected: unknown[] = [];
  const app = createApp({
    config,
    lanes: laneSet.lanes,
    idempotency: new IdempotencyRegistry(config.idempotencyTtlMs, config.idempotencyMaxKeys),
    metrics,
    dependencies: laneSet.dependencies,
    onUnexpectedError: (error) => unexpected.push(error),
  });
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    config,
    laneSet,
    metrics,
    unexpected,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await laneSet.close();
    },
  };
}
