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
 * slips in between. PUT is idempotent: repeating it after a failure heals.
 */
import { LANE_NAMES, MAX_STOCK } from '../config.js';
import { ServiceError, StockLimitError } from '../errors.js';
import type { StockLevel } from '../lanes/lane.js';
import { UnconfiguredLane } from '../lanes/unconfigured-lane.js';
import type { AdminLock } from './admin-lock.js';
import type { AppDeps } from './app.js';
import type { Operations } from './contract.js';
import type { OperationRouter } from './operation-router.js';

export function adminRoutes(routes: OperationRouter, ops: Operations, deps: AppDeps, lock: AdminLock): void {
  const lanes = LANE_NAMES.map((name) => deps.lanes[name]);
  // Lanes whose store is configured: the others hold no stock and have nothing to check.
  const stocked = lanes.filter((lane) => !(lane instanceof UnconfiguredLane));
  const allReady = () => Promise.all(deps.dependencies.map((d) => d.check()));

  routes.add(ops.putSku, async ({ params: { sku }, body: { stock } }, _req, res) => {
    await allReady();
    const created = await lock.run(() => Promise.all(lanes.map((lane) => lane.put(sku, stock))));
    res.status(created.some(Boolean) ? 201 : 200).json({ sku, stock });
  });

  routes.add(ops.restock, async ({ params: { sku }, body: { quantity } }, _req, res) => {
    await allReady();
    const levels = await lock.run(async () => {
      const current = await Promise.all(stocked.map((lane) => lane.peek(sku)));
      if (current.every((level) => level === null)) throw new ServiceError('unknown_sku');
      current.forEach((level, i) => {
        if (level !== null && level.initial + quantity > MAX_STOCK) {
          const lane = stocked[i]?.name;
          throw new StockLimitError({ sku, ...(lane ? { lane } : {}), limit: MAX_STOCK, initial: level.initial, quantity, wouldBe: level.initial + quantity });
        }
      });
      return Promise.all(lanes.map((lane) => lane.restock(sku, quantity)));
    });
    const byLane: Record<string, StockLevel | null> = {};
    LANE_NAMES.forEach((name, i) => (byLane[name] = levels[i] ?? null));
    res.json({ sku, lanes: byLane });
  });

  routes.add(ops.reset, async (_input, _req, res) => {
    await allReady();
    await lock.run(() => Promise.all(lanes.map((lane) => lane.resetAll())));
    res.status(204).end();
  });
}
