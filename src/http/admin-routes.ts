/**
 * Admin routes, guarded by `Authorization: Bearer $ADMIN_TOKEN` (compared in constant time);
 * without ADMIN_TOKEN they are disabled. Each applies to every lane, so the strategies always
 * sell the same catalogue:
 *   PUT  /v2/admin/skus/{sku}          {"stock": n}      create (201), or reset to n with nothing sold (200)
 *   POST /v2/admin/skus/{sku}/restock  {"quantity": n}   add n to remaining and initial
 *   POST /v2/admin/reset                                 every SKU back to its initial stock
 * Configured dependencies are checked first, so an outage refuses the request up front instead
 * of applying it to some lanes only. PUT is idempotent: repeating it after a failure heals.
 */
import { timingSafeEqual } from 'node:crypto';
import { Router, type RequestHandler } from 'express';
import { LANE_NAMES, MAX_STOCK } from '../config.js';
import { ServiceError } from '../errors.js';
import type { StockLevel } from '../lanes/lane.js';
import type { AppDeps } from './app.js';
import { parseCount, parseObjectBody, parseSku } from './validation.js';

export function requireAdmin(token: string | null): RequestHandler {
  const expected = token === null ? null : Buffer.from(token);
  return (req, _res, next) => {
    if (expected === null) return next(new ServiceError('admin_disabled'));
    const header = req.get('authorization') ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return next(new ServiceError('unauthorized'));
    next();
  };
}

export function adminRoutes(deps: AppDeps): Router {
  const router = Router();
  const lanes = LANE_NAMES.map((name) => deps.lanes[name]);
  const allReady = () => Promise.all(deps.dependencies.map((d) => d.check()));

  router.use('/v2/admin', requireAdmin(deps.config.adminToken));

  router.put('/v2/admin/skus/:sku', async (req, res) => {
    const sku = parseSku(req.params.sku);
    const stock = parseCount(parseObjectBody(req.body, ['stock']).stock, 'stock', 0, MAX_STOCK);
    await allReady();
    const created = await Promise.all(lanes.map((lane) => lane.put(sku, stock)));
    res.status(created.some(Boolean) ? 201 : 200).json({ sku, stock });
  });

  router.post('/v2/admin/skus/:sku/restock', async (req, res) => {
    const sku = parseSku(req.params.sku);
    const quantity = parseCount(parseObjectBody(req.body, ['quantity']).quantity, 'quantity', 1, MAX_STOCK);
    await allReady();
    const levels = await Promise.all(lanes.map((lane) => lane.restock(sku, quantity)));
    if (levels.every((l) => l === null)) throw new ServiceError('unknown_sku');
    const byLane: Record<string, StockLevel | null> = {};
    LANE_NAMES.forEach((name, i) => (byLane[name] = levels[i] ?? null));
    res.json({ sku, lanes: byLane });
  });

  router.post('/v2/admin/reset', async (req, res) => {
    parseObjectBody(req.body, []);
    await allReady();
    await Promise.all(lanes.map((lane) => lane.resetAll()));
    res.status(204).end();
  });

  return router;
}
