/**
 * Real concurrency: a real server process with several worker threads sharing the stock, real
 * MongoDB and Redis, and 250 concurrent clients buying more than exists. For every lane exactly
 * `initial` units sell, each sale sees a distinct remaining count (no two buyers got the same
 * unit), nothing goes below zero, and sold + remaining == initial at the end.
 */
import { LANE_NAMES } from '../src/config.js';
import { startService, type ServiceHandle } from './harness/service.js';
import { buy, peek, putSku, request } from './support/http.js';
import { hammer } from './support/load.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

const CLIENTS = 250;

describe.each([2, 4])('with %i worker threads', (workers) => {
  let service: ServiceHandle;

  beforeAll(async () => {
    service = await startService({ WORKERS: String(workers), ADMIN_TOKEN: TEST_ADMIN_TOKEN, MONGO_DB: `concurrency_${workers}` });
  });

  afterAll(async () => {
    expect(await service.stop()).toBe(0);
  });

  test.each(LANE_NAMES)('%s lane: 250 clients, quantity 1, stock 600 → exactly 600 sales, each a distinct unit', async (lane) => {
    const stock = 600;
    const sku = `RUSH-${lane}-${workers}`;
    expect((await putSku(service.url, TEST_ADMIN_TOKEN, sku, stock)).status).toBe(201);
    const remainders: number[] = [];
    let refusals = 0;
    await hammer(CLIENTS, stock * 3, async () => {
      const answer = await buy(service.url, lane, sku, 1);
      if (answer.status === 200) {
        remainders.push(answer.body.remaining);
        return 'again';
      }
      expect(answer.status).toBe(409);
      expect(answer.body.error.code).toBe('sold_out');
      refusals++;
      return 'stop';
    });
    expect(remainders.length).toBe(stock);
    expect(refusals).toBe(CLIENTS);
    expect(new Set(remainders).size).toBe(stock);
    expect(Math.min(...remainders)).toBe(0);
    expect(Math.max(...remainders)).toBe(stock - 1);
    expect((await peek(service.url, lane, sku)).body).toMatchObject({ remaining: 0, sold: stock, initial: stock });
  });

  test.each(LANE_NAMES)('%s lane: quantities 1-5 from 250 clients → units sold + remaining == initial, never below zero', async (lane) => {
    const stock = 1000;
    const sku = `QTY-${lane}-${workers}`;
    expect((await putSku(service.url, TEST_ADMIN_TOKEN, sku, stock)).status).toBe(201);
    let unitsSold = 0;
    await hammer(CLIENTS, stock * 3, async (client) => {
      let quantity = 1 + (client % 5);
      for (;;) {
        const answer = await buy(service.url, lane, sku, quantity);
        if (answer.status === 200) {
          unitsSold += quantity;
          expect(answer.body.remaining).toBeGreaterThanOrEqual(0);
          return 'again';
        }
        expect(answer.status).toBe(409);
        const remaining = Number(answer.body.error.details?.remaining);
        if (remaining === 0) return 'stop';
        // Not enough for this quantity: take what is left, as a real buyer would.
        quantity = remaining;
      }
    });
    expect(unitsSold).toBe(stock);
    expect((await peek(service.url, lane, sku)).body).toMatchObject({ remaining: 0, sold: stock, initial: stock });
  });

  test("many SKUs at once (the original's Phase 2): NVDA/TSLA/AMD on the ManyStock route, each sells exactly its stock", async () => {
    const stock = 400;
    const tickers = ['NVDA', 'TSLA', 'AMD'];
    for (const t of tickers) await putSku(service.url, TEST_ADMIN_TOKEN, t, stock);
    const sold: Record<string, number> = { NVDA: 0, TSLA: 0, AMD: 0 };
    const open = new Set(tickers);
    await hammer(CLIENTS, stock * tickers.length * 3, async (client) => {
      const choices = [...open];
      if (choices.length === 0) return 'stop';
      const ticker = choices[client % choices.length] as string;
      const answer = await request('POST', `${service.url}/api/v1/ManyStock/Cache/BuyFastAtomic/${ticker}`);
      expect(answer.status).toBe(200);
      if (answer.text === 'true') sold[ticker] = (sold[ticker] ?? 0) + 1;
      else open.delete(ticker);
      return 'again';
    });
    for (const t of tickers) {
      expect(sold[t]).toBe(stock);
      const level = await request('GET', `${service.url}/api/v1/ManyStock/Cache/PeekFastAtomic/${t}`);
      expect(level.body).toEqual({ id: t, remainingStock: 0, soldStock: stock });
    }
  });
});
