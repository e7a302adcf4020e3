/**
 * Metrics: one exposition per replica, merged across worker threads, that passes
 * `promtool check metrics` and counts exactly the traffic that was sent.
 */
import { spawnSync } from 'node:child_process';
import { LANE_NAMES } from '../src/config.js';
import { startService, type ServiceHandle } from './harness/service.js';
import { buy, putSku } from './support/http.js';
import { sampleOf } from './support/exposition.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

describe('metrics', () => {
  let service: ServiceHandle;

  beforeAll(async () => {
    service = await startService({ WORKERS: '3', ADMIN_TOKEN: TEST_ADMIN_TOKEN, MONGO_DB: 'metrics_test' });
  });

  afterAll(async () => {
    await service?.stop();
  });

  test('counts every lane exactly across workers, and promtool accepts the exposition', async () => {
    expect((await putSku(service.url, TEST_ADMIN_TOKEN, 'MET', 7)).status).toBe(201);
    for (const lane of LANE_NAMES) {
      for (let i = 0; i < 9; i++) await buy(service.url, lane, 'MET', 1);
      await buy(service.url, lane, 'NOPE', 1);
    }
    const response = await fetch(service.metricsUrl);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();

    for (const lane of LANE_NAMES) {
      expect(sampleOf(text, `superstock_requests_total{lane="${lane}",outcome="sold"}`)).toBe(7);
      expect(sampleOf(text, `superstock_requests_total{lane="${lane}",outcome="sold_out"}`)).toBe(2);
      expect(sampleOf(text, `superstock_requests_total{lane="${lane}",outcome="not_found"}`)).toBe(1);
      expect(sampleOf(text, `superstock_units_sold_total{lane="${lane}"}`)).toBe(7);
      expect(sampleOf(text, `superstock_sold_out_total{lane="${lane}"}`)).toBe(1);
      expect(sampleOf(text, `superstock_request_duration_seconds_count{lane="${lane}"}`)).toBe(10);
      expect(sampleOf(text, `superstock_stock_remaining{lane="${lane}",sku="MET"}`)).toBe(0);
      expect(sampleOf(text, `superstock_stock_sold{lane="${lane}",sku="MET"}`)).toBe(7);
      expect(sampleOf(text, `superstock_stock_initial{lane="${lane}",sku="MET"}`)).toBe(7);
    }
    for (const lane of ['atomic', 'lock', 'signal']) expect(sampleOf(text, `superstock_stock_remaining{lane="${lane}",sku="NVDA"}`)).toBe(15000);
    // DURABILITY=sync (the default with MongoDB): every in-memory sale went through a ledger batch,
    // one batch each, since each buy waited for its answer before the next; admin batches and
    // refused buys are not counted.
    const durableSales = 3 * 7;
    expect(sampleOf(text, 'superstock_ledger_batches_total{outcome="written"}')).toBe(durableSales);
    expect(sampleOf(text, 'superstock_ledger_batches_total{outcome="failed"}')).toBe(0);
    expect(sampleOf(text, 'superstock_ledger_batches_total{outcome="unknown"}')).toBe(0);
    expect(sampleOf(text, 'superstock_ledger_batch_sales_sum')).toBe(durableSales);
    expect(sampleOf(text, 'superstock_ledger_batch_sales_bucket{le="1"}')).toBe(durableSales);
    expect(sampleOf(text, 'superstock_ledger_commit_seconds_count')).toBe(durableSales);
    expect(sampleOf(text, 'superstock_ledger_commit_seconds_sum')).toBeGreaterThan(0);
    expect(sampleOf(text, 'superstock_workers')).toBe(3);
    expect(text).toMatch(/^superstock_process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^superstock_nodejs_eventloop_lag_seconds /m);

    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect({ status: promtool.status, output: promtool.stdout + promtool.stderr }).toEqual({ status: 0, output: '' });
  });

  test('METRICS_MAX_SKUS bounds the stock gauges', async () => {
    const bounded = await startService({ WORKERS: '1', METRICS_MAX_SKUS: '2', MONGO_URL: '', REDIS_URL: '' });
    try {
      const text = await (await fetch(bounded.metricsUrl)).text();
      const skus = new Set([...text.matchAll(/^superstock_stock_remaining\{lane="atomic",sku="([^"]+)"\}/gm)].map((m) => m[1]));
      expect([...skus]).toEqual(['STOCK', 'NVDA']);
    } finally {
      await bounded.stop();
    }
  });
});
