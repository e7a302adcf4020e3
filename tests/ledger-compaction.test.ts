/**
 * Issue 10, item 6: the ledger does not only grow, and a takeover's work is bounded by what
 * changed since the last snapshot. A primary snapshots what it replayed as soon as it leads and
 * keeps folding new batches in; the next primary starts from that snapshot and replays only the
 * batches after it, and rebuilds exactly the same levels. Batches folded into a snapshot and older
 * than the idempotency TTL are dropped.
 * Budget: ~20 s (a real service process started three times on one database).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { MEMORY_LANES } from '../src/config.js';
import { startService, waitFor, type ServiceHandle } from './harness/service.js';
import { buy, peek, putSku, type LevelBody } from './support/http.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

const SALES = 40;

describe('snapshots bound a takeover', () => {
  const database = `compact_${randomBytes(4).toString('hex')}`;
  const env = { MONGO_DB: database, ADMIN_TOKEN: TEST_ADMIN_TOKEN, DURABILITY: 'sync', ELECTION: 'none', LOG_LEVEL: 'info', IDEMPOTENCY_TTL_MS: '1000' };
  let service: ServiceHandle | null = null;
  let client: MongoClient;

  beforeAll(async () => {
    client = await new MongoClient(process.env.MONGO_URL as string).connect();
  });

  afterAll(async () => {
    await service?.stop();
    await client?.close();
  });

  /** How many batches the takeover of this process replayed (from its lifecycle log line). */
  async function replayedBatches(handle: ServiceHandle): Promise<number> {
    let count = -1;
    await waitFor(
      () => {
        const line = handle.output().split('\n').find((l) => l.includes('rebuilt the in-memory lanes from the ledger'));
        if (line) count = (JSON.parse(line) as { batches: number }).batches;
        return line !== undefined;
      },
      { timeoutMs: 5000, message: 'the rebuild was logged' },
    );
    return count;
  }

  async function levels(handle: ServiceHandle): Promise<Record<string, LevelBody>> {
    const out: Record<string, LevelBody> = {};
    for (const lane of MEMORY_LANES) out[lane] = (await peek(handle.url, lane, 'SNAP')).body;
    return out;
  }

  const head = () => client.db(database).collection<{ _id: string; epoch: number; seq: number }>('ledger_snapshots').findOne({ _id: 'head' });
  const batchCount = () => client.db(database).collection('ledger').countDocuments({ tombstone: { $exists: false } });

  test('the next takeover replays only what came after the snapshot, and rebuilds the same levels', async () => {
    service = await startService(env);
    expect((await putSku(service.url, TEST_ADMIN_TOKEN, 'SNAP', 1000)).status).toBe(201);
    for (let i = 0; i < SALES; i++) expect((await buy(service.url, MEMORY_LANES[i % 3] as string, 'SNAP', 1, randomUUID())).status).toBe(200);
    const live = await levels(service);
    const written = await batchCount();
    expect(written).toBeGreaterThanOrEqual(SALES);
    await service.stop();
    const last = await client.db(database).collection<{ epoch: number; seq: number }>('ledger').find({ tombstone: { $exists: false } }).sort({ epoch: -1, seq: -1 }).limit(1).next();

    // The second primary replays the first one's batches, snapshots them, and drops the folded
    // ones older than the TTL (1 s here).
    service = await startService(env);
    expect(await replayedBatches(service)).toBeGreaterThanOrEqual(SALES);
    expect(await levels(service)).toEqual(live);
    await waitFor(
      async () => {
        const at = await head();
        return at?.epoch === last?.epoch && at?.seq === last?.seq;
      },
      { timeoutMs: 10_000, message: 'a snapshot at the takeover' },
    );
    await new Promise((r) => setTimeout(r, 1100)); // let the folded batches pass the 1 s TTL…
    await service.stop();

    // …so the third takeover finds them gone from the ledger, and still rebuilds the same levels
    // from the snapshot, replaying only the few batches written after it.
    service = await startService(env);
    expect(await replayedBatches(service)).toBeLessThan(5);
    expect(await levels(service)).toEqual(live);
    await waitFor(async () => (await batchCount()) < written, { timeoutMs: 10_000, message: 'folded batches past the TTL dropped' });
    // Selling goes on from there.
    expect((await buy(service.url, 'lock', 'SNAP', 1)).status).toBe(200);
  });
});
