/**
 * Applying a checked SKU list (sku-list.ts) to every lane, with the meaning of the same admin PUTs
 * one by one, in list order: each SKU is created, or reset to its stock with nothing sold, in
 * every lane. It goes in chunks, so each store gets one round trip per chunk (a MongoDB bulkWrite,
 * a Redis pipeline, one ledger batch) and no batch grows past what a store takes in one go.
 *
 * New SKUs reach the three in-memory lanes through one insert into the table they share. With
 * DURABILITY=sync those lanes change through the memory admin instead (cluster/ledger/durable-lane.ts):
 * each chunk is one ledger batch behind the sales barrier, so it is in the ledger before it is in
 * memory — as a PUT would be. In allotments mode each in-memory lane's PUT is a change of the SKU's
 * pool in MongoDB (cluster/allotments/), made a few SKUs at a time. The caller holds the replica's
 * admin lock.
 */
import { MEMORY_LANES, type LaneName } from '../config.js';
import type { DurableMemoryAdmin } from '../cluster/ledger/durable-lane.js';
import type { Lane } from '../lanes/lane.js';
import { MemoryLane } from '../lanes/memory-lane.js';
import { UnconfiguredLane } from '../lanes/unconfigured-lane.js';
import type { StagedSkus } from './sku-list.js';

/** SKUs per round trip: 2,000 × 3 in-memory lanes keeps a ledger batch well under MongoDB's 16 MB. */
export const SKU_CHUNK = 2000;
/**
 * In-memory lanes whose PUT is a call elsewhere (allotments mode: the main thread, then a MongoDB
 * compare-and-swap on the SKU's pool) take this many SKUs at a time. A whole chunk at once was
 * 6,000 calls in flight, and MongoDB's answers came later than the calls' own timeouts (503).
 */
const REMOTE_PUTS_IN_FLIGHT = 16;

/** Put every SKU of `skus` into every lane; resolves with how many were new to the in-memory table. */
export async function putSkus(lanes: Readonly<Record<LaneName, Lane>>, skus: StagedSkus, memoryAdmin: DurableMemoryAdmin | null = null): Promise<number> {
  const memory = MEMORY_LANES.map((name) => lanes[name]);
  const plain = memory.filter((lane): lane is MemoryLane => lane instanceof MemoryLane);
  const shared = plain.length === memory.length ? plain[0] : undefined;
  // A lane whose store is not configured keeps nothing: no batches are built for it.
  const stores = [lanes.db, lanes.redis].filter((lane) => !(lane instanceof UnconfiguredLane));
  let created = 0;
  for (let from = 0; from < skus.count; from += SKU_CHUNK) {
    const to = Math.min(from + SKU_CHUNK, skus.count);
    const entries = stores.length > 0 || !shared ? skus.slice(from, to) : [];
    const work: Array<Promise<unknown>> = stores.map((lane) => putEach(lane, entries));
    if (memoryAdmin) {
      work.push(memoryAdmin.putMany(entries).then((isNew) => (created += isNew)));
    } else if (shared) {
      // Names go from the staging bytes into the table: a string only for a SKU that exists.
      skus.each(from, to, (names, start, end, stock) => {
        if (shared.createIfNewFromBytes(names, start, end, stock)) {
          created++;
          return;
        }
        const sku = String.fromCharCode(...names.subarray(start, end));
        work.push(...plain.map((lane) => lane.put(sku, stock)));
      });
    } else {
      // After the stores' part of the chunk: their one big round trip would hold the pool's small
      // updates back past their timeouts.
      const stored = Promise.allSettled([...work]);
      work.push(stored.then(() => putFewAtATime(memory, entries)).then((isNew) => (created += isNew)));
    }
    // Every store's part settles before the next chunk (or the error) goes out: none is left unawaited.
    const failed = (await Promise.allSettled(work)).find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
  }
  return created;
}

/** PUT each entry in every lane of `memory`, a few SKUs at a time; resolves with how many were new to the first lane. */
async function putFewAtATime(memory: readonly Lane[], entries: ReadonlyArray<readonly [string, number]>): Promise<number> {
  let next = 0;
  let created = 0;
  const putNext = async (): Promise<void> => {
    for (let entry = entries[next++]; entry !== undefined; entry = entries[next++]) {
      const [sku, stock] = entry;
      const [isNew] = await Promise.all(memory.map((lane) => lane.put(sku, stock)));
      if (isNew === true) created++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(REMOTE_PUTS_IN_FLIGHT, entries.length) }, putNext));
  return created;
}

function putEach(lane: Lane, entries: ReadonlyArray<readonly [string, number]>): Promise<unknown> {
  return lane.putMany ? lane.putMany(entries, false) : Promise.all(entries.map(([sku, stock]) => lane.put(sku, stock)));
}
