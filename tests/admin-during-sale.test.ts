/**
 * Issue 10, item 2: admin changes during a live sale. Buyers hammer one SKU on the three
 * in-memory lanes while an operator restocks it, PUTs it back to a new stock and resets the
 * catalogue; then the primary is killed. The new primary rebuilds from the ledger, and what it
 * rebuilds must be exactly what the old primary's buyers saw: per lane remaining, sold and
 * initial equal, remaining + sold == initial, never below zero. A restock retried with its
 * Idempotency-Key is applied once, also after the failover.
 * Budget: ~30 s (three real replicas).
 */
import { randomUUID } from 'node:crypto';
import { MEMORY_LANES } from '../src/config.js';
import { waitFor } from './harness/service.js';
import { TestCluster, type Replica } from './support/cluster.js';
import { buy, peek, putSku, request, type LevelBody } from './support/http.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

const SKU = 'LIVE';
const auth = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

describe('admin calls concurrent with buyers, then a failover', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await TestCluster.start(3);
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  async function levels(replica: Replica): Promise<Record<string, LevelBody>> {
    const out: Record<string, LevelBody> = {};
    for (const lane of MEMORY_LANES) out[lane] = (await peek(cluster.url(replica), lane, SKU)).body;
    return out;
  }

  test('the replayed state equals the live state exactly, lane by lane', async () => {
    const primary = await cluster.waitForSinglePrimary();
    const base = cluster.url(primary);
    expect((await putSku(base, TEST_ADMIN_TOKEN, SKU, 400)).status).toBe(201);

    let stop = false;
    const statuses = new Map<number, number>();
    const buyer = async (n: number) => {
      const lane = MEMORY_LANES[n % MEMORY_LANES.length] as string;
      while (!stop) {
        const answer = await buy(base, lane, SKU, 1 + (n % 3), randomUUID()).catch(() => null);
        const status = answer?.status ?? 0;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    };
    const load = Promise.all(Array.from({ length: 24 }, (_, n) => buyer(n)));

    const restockKey = randomUUID();
    const admin: Array<{ what: string; status: number }> = [];
    const call = async (what: string, method: string, path: string, json?: unknown, headers: Record<string, string> = {}) => {
      const answer = await request(method, `${base}${path}`, { json, headers: { ...auth, ...headers } });
      admin.push({ what, status: answer.status });
      return answer;
    };
    await waitFor(() => (statuses.get(200) ?? 0) > 100, { timeoutMs: 15_000, message: 'sales under way' });
    await call('restock', 'POST', `/v2/admin/skus/${SKU}/restock`, { quantity: 50 }, { 'idempotency-key': restockKey });
    await waitFor(() => (statuses.get(200) ?? 0) > 250, { timeoutMs: 15_000, message: 'more sales' });
    await call('put', 'PUT', `/v2/admin/skus/${SKU}`, { stock: 300 });
    await waitFor(() => (statuses.get(200) ?? 0) > 400, { timeoutMs: 15_000, message: 'sales after the put' });
    await call('restock again with the same key', 'POST', `/v2/admin/skus/${SKU}/restock`, { quantity: 50 }, { 'idempotency-key': restockKey });
    await call('reset', 'POST', '/v2/admin/reset');
    await waitFor(() => (statuses.get(200) ?? 0) > 550, { timeoutMs: 15_000, message: 'sales after the reset' });
    stop = true;
    await load;

    for (const { what, status } of admin) expect({ what, status }).toEqual({ what, status: what === 'put' ? 200 : what === 'reset' ? 204 : 200 });
    // Every answer a buyer got is one of the documented ones.
    for (const status of statuses.keys()) expect([200, 409, 503]).toContain(status);

    const live = await levels(primary);
    for (const lane of MEMORY_LANES) {
      const level = live[lane] as LevelBody;
      expect(level.remaining).toBeGreaterThanOrEqual(0);
      expect(level.remaining + level.sold).toBe(level.initial);
      // PUT 300 set it; the repeated restock (same key) added nothing; the reset kept initial.
      expect(level.initial).toBe(300);
    }

    primary.service?.kill();
    primary.service = null;
    const next = await cluster.waitForSinglePrimary(15_000);
    expect(await levels(next)).toEqual(live);

    // The restock key is remembered by the new primary too: a third try changes nothing.
    const again = await request('POST', `${cluster.url(next)}/v2/admin/skus/${SKU}/restock`, { json: { quantity: 50 }, headers: { ...auth, 'idempotency-key': restockKey } });
    expect(again.status).toBe(200);
    expect(await levels(next)).toEqual(live);
  }, 90_000);
});
