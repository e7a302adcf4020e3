/**
 * Issue 10, item 1: idempotency keys are durable for their whole TTL whatever the traffic. The
 * replica keeps only IDEMPOTENCY_MAX_KEYS answers in memory (here 5); a retry of a key answered
 * long ago — after many other keyed requests pushed it out — must still get the first answer and
 * never sell twice, on every in-memory lane, and after a failover too.
 * Budget: ~15 s (one real service process, then a restart on the same database).
 */
import { randomBytes } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { startService, type ServiceHandle } from './harness/service.js';
import { buy, peek, putSku } from './support/http.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

const LANES = ['atomic', 'lock', 'signal'] as const;
const OTHER_KEYS = 40;

describe('idempotency keys outlive the in-memory bound (IDEMPOTENCY_MAX_KEYS=5)', () => {
  const database = `idem_${randomBytes(4).toString('hex')}`;
  let service: ServiceHandle | null = null;
  const env = { MONGO_DB: database, ADMIN_TOKEN: TEST_ADMIN_TOKEN, IDEMPOTENCY_MAX_KEYS: '5', DURABILITY: 'sync', ELECTION: 'none' };

  beforeAll(async () => {
    service = await startService(env);
  });

  afterAll(async () => {
    await service?.stop();
  });

  async function keyedSalesInLedger(key: string): Promise<number> {
    const client = new MongoClient(process.env.MONGO_URL as string);
    try {
      const batches = await client.db(database).collection<{ tombstone?: true; entries?: Array<{ op: string; key?: string }> }>('ledger').find({}).toArray();
      return batches.filter((b) => !b.tombstone).flatMap((b) => b.entries ?? []).filter((e) => e.op === 'buy' && e.key === key).length;
    } finally {
      await client.close();
    }
  }

  test.each(LANES)('%s: a retry after 40 other keyed requests gets the original answer and sells nothing', async (lane) => {
    const base = (service as ServiceHandle).url;
    const sku = `OLD-${lane}`;
    expect((await putSku(base, TEST_ADMIN_TOKEN, sku, 1000)).status).toBe(201);
    const oldKey = `old-${lane}-${randomBytes(4).toString('hex')}`;
    const first = await buy(base, lane, sku, 3, oldKey);
    expect(first.status).toBe(200);
    for (let i = 0; i < OTHER_KEYS; i++) expect((await buy(base, lane, sku, 1, `other-${lane}-${i}`)).status).toBe(200);

    const retry = await buy(base, lane, sku, 3, oldKey);
    expect(retry.status).toBe(200);
    expect(retry.text).toBe(first.text);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect((await peek(base, lane, sku)).body).toMatchObject({ sold: 3 + OTHER_KEYS, remaining: 1000 - 3 - OTHER_KEYS });
    expect(await keyedSalesInLedger(oldKey)).toBe(1);
    // The same key for a different request is still recognised as used.
    expect((await buy(base, lane, sku, 2, oldKey)).status).toBe(422);
  });

  test('after a restart (a new term rebuilt from the ledger) every old key still replays', async () => {
    await service?.stop();
    service = await startService(env);
    const base = service.url;
    for (const lane of LANES) {
      const sku = `OLD-${lane}`;
      const before = (await peek(base, lane, sku)).body;
      const retry = await buy(base, lane, sku, 1, `other-${lane}-0`);
      expect(retry.status).toBe(200);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect((await peek(base, lane, sku)).body).toEqual(before);
      expect(await keyedSalesInLedger(`other-${lane}-0`)).toBe(1);
    }
  });
});
