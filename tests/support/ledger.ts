/**
 * Reading the store of record after a fault run: the ledger's batches (see src/cluster/ledger.ts)
 * and the buys they hold, so a test can check that every acknowledged sale is durable and that no
 * idempotency key sold twice.
 */
import { MongoClient } from 'mongodb';

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
