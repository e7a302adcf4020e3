/**
 * Reading the store of record after a fault run: the ledger's batches (see src/cluster/ledger/ledger.ts)
 * and the buys they hold, so a test can check that every acknowledged sale is durable and that no
 * idempotency key sold twice.
 */
import { MongoClient } from 'mongodb';
import { MEMORY_LANES } from '../../src/config.js';

export interface BatchDoc {
  _id: string;
  epoch: number;
  tombstone?: true;
  entries?: Array<{ op: string; lane?: string; sku?: string; q?: number; key?: string }>;
}

export async function readLedger(mongoUrl: string, database: string): Promise<BatchDoc[]> {
  const client = new MongoClient(mongoUrl);
  try {
    return await client.db(database).collection<BatchDoc>('ledger').find({}).toArray();
  } finally {
    await client.close();
  }
}

/** The buys of one lane and SKU in the ledger's live (not tombstoned) batches. */
export function buysIn(batches: readonly BatchDoc[], lane: string, sku: string): Array<{ key?: string; q: number }> {
  return batches
    .filter((b) => !b.tombstone)
    .flatMap((b) => b.entries ?? [])
    .filter((e) => e.op === 'buy' && e.lane === lane && e.sku === sku)
    .map((e) => ({ key: e.key, q: e.q ?? 0 }));
}

/**
 * What a run that sold one SKU under faults must show on one lane: no oversell, counts that add
 * up, sold equal to the acknowledged buys and — on the in-memory lanes — every acknowledged buy in
 * the ledger, no key twice, and the remaining stock what the ledger's buys leave.
 */
export function expectLaneAccounting(run: {
  readonly lane: string;
  readonly sku: string;
  readonly stock: number;
  readonly level: { readonly remaining: number; readonly sold: number };
  readonly ackedKeys: readonly string[];
  readonly batches: readonly BatchDoc[];
}): void {
  const { lane, sku, stock, level, ackedKeys, batches } = run;
  expect(ackedKeys.length).toBeLessThanOrEqual(stock);
  expect(level.remaining).toBeGreaterThanOrEqual(0);
  expect(level.remaining + level.sold).toBe(stock);
  expect(level.sold).toBe(ackedKeys.length);
  if (!(MEMORY_LANES as readonly string[]).includes(lane)) return;
  const orders = buysIn(batches, lane, sku);
  const keys = new Set(orders.map((o) => o.key));
  expect(keys.size).toBe(orders.length); // no key sold twice
  expect(ackedKeys.filter((key) => !keys.has(key))).toEqual([]); // every acknowledged sale is durable
  expect(level.remaining).toBe(stock - orders.reduce((sum, o) => sum + o.q, 0));
}

/** Who holds the MongoDB lease (ELECTION=mongo), by STOCK_HOST_ID. */
export async function mongoLeaseHolder(mongoUrl: string, database: string, leaseName = 'superstock-primary'): Promise<string | null> {
  const client = new MongoClient(mongoUrl);
  try {
    const lease = await client.db(database).collection<{ _id: string; holder: string | null }>('leases').findOne({ _id: leaseName });
    return lease?.holder ?? null;
  } finally {
    await client.close();
  }
}
