/**
 * Admin routes, guarded by `Authorization: Bearer $ADMIN_TOKEN` (the operation router checks it;
 * without ADMIN_TOKEN they are disabled). Each applies to every lane, so the strategies always
 * sell the same catalogue:
 *   PUT  /v2/admin/skus/{sku}          {"stock": n}      create (201), or reset to n with nothing sold (200)
 *   POST /v2/admin/skus/{sku}/restock  {"quantity": n}   add n to remaining and initial
 *   POST /v2/admin/reset                                 every SKU back to its initial stock
 * All or nothing: configured dependencies are checked first, so an outage refuses the request up
 * front instead of applying it to some lanes only; a restock is checked against the stock limit
 * on every lane before any lane changes, under the replica's admin lock so no other admin change
 * slips in between. PUT is idempotent: repeating it after a failure heals. Restock takes an
 * Idempotency-Key: repeated, it is applied once (see README, "Admin during a sale").
 *
 * With DURABILITY=sync the three in-memory lanes change together, as one ledger batch, behind a
 * barrier that holds sales off for the moment it takes (`DurableMemoryAdmin`); that change is the
 * commit point, and the db and redis lanes follow it.
 */
import { LANE_NAMES, MAX_STOCK, MEMORY_LANES } from '../config.js';
import { DependencyUnavailableError, OutcomeUnknownError, ServiceError, StockLimitError } from '../errors.js';
import type { StockLevel } from '../lanes/lane.js';
import { UnconfiguredLane } from '../lanes/unconfigured-lane.js';
import type { AdminLock } from '../memory/admin-lock.js';
import type { AppDeps } from './app-deps.js';
import type { Operations } from './contract.js';
import type { OperationRouter } from './operation-router.js';

const isMemoryLane = (name: string): boolean => (MEMORY_LANES as readonly string[]).includes(name);

/**
 * A change to several lanes is not one atomic write (each store changes on its own): once one lane
 * has changed, a failure of another leaves the call half applied, and its answer must not claim
 * "nothing changed" (503): it is an unknown outcome (504).
 */
function halfApplied(error: unknown): never {
  const dependency = error instanceof DependencyUnavailableError || error instanceof OutcomeUnknownError ? error.dependency : 'mongo';
  throw new OutcomeUnknownError(dependency, `part of the change was applied before another lane failed (${error instanceof Error ? error.message : String(error)})`, false);
}

async function allOrUnknown<T>(changes: ReadonlyArray<Promise<T>>, alreadyChanged: boolean): Promise<T[]> {
  const settled = await Promise.allSettled(changes);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (!failed) return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
  if (alreadyChanged || settled.some((s) => s.status === 'fulfilled')) halfApplied(failed.reason);
  throw failed.reason;
}

export function adminRoutes(routes: OperationRouter, ops: Operations, deps: AppDeps, lock: AdminLock): void {
  const lanes = LANE_NAMES.map((name) => deps.lanes[name]);
  // Lanes whose store is configured: the others hold no stock and have nothing to check.
  const stocked = lanes.filter((lane) => !(lane instanceof UnconfiguredLane));
  const memoryAdmin = deps.memoryAdmin ?? null;
  // With a memory admin, the in-memory lanes change through it (once for all three), the others one by one.
  const separately = LANE_NAMES.filter((name) => memoryAdmin === null || !isMemoryLane(name));
  const allReady = () => Promise.all(deps.dependencies.map((d) => d.check()));

  routes.add(ops.putSku, async ({ params: { sku }, body: { stock } }, _req, res) => {
    await allReady();
    const created = await lock.run(async () => {
      const createdInMemory = memoryAdmin ? await memoryAdmin.put(sku, stock) : false;
      const createdElsewhere = await allOrUnknown(separately.map((name) => deps.lanes[name].put(sku, stock)), memoryAdmin !== null);
      return createdInMemory || createdElsewhere.some(Boolean);
    });
    res.status(created ? 201 : 200).json({ sku, stock });
  });

  routes.add(ops.restock, async ({ params: { sku }, body: { quantity }, idempotencyKey: key }, _req, res) => {
    if (key !== null) {
      const claim = await deps.idempotency.claim(key, `admin/restock/${sku}/${quantity}`);
      switch (claim.kind) {
        case 'replay':
          res.setHeader('Idempotent-Replayed', 'true');
          res.status(claim.response.status).type('application/json').send(claim.response.body);
          return;
        case 'in_progress':
          throw new ServiceError('idempotency_key_in_use');
        case 'mismatch':
          throw new ServiceError('idempotency_key_reused');
        case 'unavailable':
          throw new DependencyUnavailableError('mongo', claim.reason);
        case 'new':
          break;
      }
    }
    let body: string;
    let replayed: boolean;
    try {
      await allReady();
      let byLane: Record<string, StockLevel | null>;
      ({ byLane, replayed } = await lock.run(async () => {
        const current = await Promise.all(stocked.map((lane) => lane.peek(sku)));
        if (current.every((level) => level === null)) throw new ServiceError('unknown_sku');
        current.forEach((level, i) => {
          if (level !== null && level.initial + quantity > MAX_STOCK) {
            const lane = stocked[i]?.name;
            throw new StockLimitError({ sku, ...(lane ? { lane } : {}), limit: MAX_STOCK, initial: level.initial, quantity, wouldBe: level.initial + quantity });
          }
        });
        const levels: Record<string, StockLevel | null> = {};
        // Exactly once per key on every lane, each lane on its own record of the key: the durable
        // in-memory lanes first (their ledger batch records it: the commit point), then the stores
        // (db, redis: the key in the restock's own atomic update), and in-memory lanes without a
        // ledger last, since nothing of theirs survives a failure to say it was done (they cannot
        // fail once the limit was checked above). A retry after any cut-off applies what is
        // missing and nothing twice.
        const inMemory = memoryAdmin ? await memoryAdmin.restock(sku, quantity, key) : null;
        if (inMemory) Object.assign(levels, inMemory.levels);
        const alreadyApplied = inMemory !== null && !inMemory.applied;
        let changedSome = inMemory !== null && inMemory.applied;
        const ordered = [...separately.filter((name) => !isMemoryLane(name)), ...separately.filter(isMemoryLane)];
        for (const name of ordered) {
          try {
            levels[name] = await deps.lanes[name].restock(sku, quantity, key);
          } catch (error) {
            if (changedSome) halfApplied(error);
            throw error;
          }
          changedSome = true;
        }
        for (const name of LANE_NAMES) levels[name] ??= null;
        return { byLane: levels, replayed: alreadyApplied };
      }));
      body = JSON.stringify({ sku, lanes: byLane });
    } catch (error) {
      if (key !== null) await deps.idempotency.release(key);
      throw error;
    }
    if (key !== null) await deps.idempotency.complete(key, { status: 200, body });
    if (replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.status(200).type('application/json').send(body);
  });

  routes.add(ops.reset, async (_input, _req, res) => {
    await allReady();
    await lock.run(async () => {
      if (memoryAdmin) await memoryAdmin.resetAll();
      await allOrUnknown(separately.map((name) => deps.lanes[name].resetAll()), memoryAdmin !== null);
    });
    res.status(204).end();
  });
}
