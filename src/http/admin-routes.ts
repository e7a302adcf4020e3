/**
 * Admin routes, guarded by `Authorization: Bearer $ADMIN_TOKEN` (compared in constant time);
 * without ADMIN_TOKEN they are disabled. Each applies to every lane, so the strategies always
 * sell the same catalogue:
 *   PUT  /v2/admin/skus/{sku}          {"stock": n}      create (201), or reset to n with nothing sold (200)
 *   POST /v2/admin/skus/{sku}/restock  {"quantity": n}   add n to remaining and initial
 *   POST /v2/admin/reset                                 every SKU back to its initial stock
 * Configured dependencies are checked first, so an outage refuses the request up front instead
 * of applying it to some lanes only. PUT is idempotent: repeating it after a failure heals.
 * Restock takes an Idempotency-Key: repeated, it is applied once (see README, "Admin during a sale").
 *
 * With DURABILITY=sync the three in-memory lanes change together, as one ledger batch, behind a
 * barrier that holds sales off for the moment it takes (`DurableMemoryAdmin`); that change is the
 * commit point, and the db and redis lanes follow it.
 */
import { timingSafeEqual } from 'node:crypto';
import { Router, type RequestHandler } from 'express';
import { LANE_NAMES, MEMORY_LANES } from '../config.js';
import { DependencyUnavailableError, ServiceError } from '../errors.js';
import type { StockLevel } from '../lanes/lane.js';
import type { AppDeps } from './app.js';
import { parseCount, parseIdempotencyKey, parseObjectBody, parseSku } from './validation.js';

const MAX_STOCK = 2_000_000_000;

function requireAdmin(token: string | null): RequestHandler {
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
  const memoryAdmin = deps.memoryAdmin ?? null;
  // With a memory admin, the in-memory lanes change through it (once for all three), the others one by one.
  const separately = LANE_NAMES.filter((name) => memoryAdmin === null || !(MEMORY_LANES as readonly string[]).includes(name));
  const allReady = () => Promise.all(deps.dependencies.map((d) => d.check()));

  router.use('/v2/admin', requireAdmin(deps.config.adminToken));

  router.put('/v2/admin/skus/:sku', async (req, res) => {
    const sku = parseSku(req.params.sku);
    const stock = parseCount(parseObjectBody(req.body, ['stock']).stock, 'stock', 0, MAX_STOCK);
    await allReady();
    const createdInMemory = memoryAdmin ? await memoryAdmin.put(sku, stock) : false;
    const created = await Promise.all(separately.map((name) => deps.lanes[name].put(sku, stock)));
    res.status(createdInMemory || created.some(Boolean) ? 201 : 200).json({ sku, stock });
  });

  router.post('/v2/admin/skus/:sku/restock', async (req, res) => {
    const sku = parseSku(req.params.sku);
    const quantity = parseCount(parseObjectBody(req.body, ['quantity']).quantity, 'quantity', 1, MAX_STOCK);
    const key = parseIdempotencyKey(req.get('idempotency-key'));
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
      const byLane: Record<string, StockLevel | null> = {};
      // The in-memory lanes first: their ledger batch records the key, so a retry after a
      // failover finds the restock made and applies it nowhere again.
      const inMemory = memoryAdmin ? await memoryAdmin.restock(sku, quantity, key) : null;
      if (inMemory) Object.assign(byLane, inMemory.levels);
      replayed = inMemory !== null && !inMemory.applied;
      for (const name of separately) byLane[name] = replayed ? await deps.lanes[name].peek(sku) : await deps.lanes[name].restock(sku, quantity);
      if (LANE_NAMES.every((name) => (byLane[name] ?? null) === null)) throw new ServiceError('unknown_sku');
      for (const name of LANE_NAMES) byLane[name] ??= null;
      body = JSON.stringify({ sku, lanes: byLane });
    } catch (error) {
      if (key !== null) await deps.idempotency.release(key);
      throw error;
    }
    if (key !== null) await deps.idempotency.complete(key, { status: 200, body });
    if (replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.status(200).type('application/json').send(body);
  });

  router.post('/v2/admin/reset', async (req, res) => {
    parseObjectBody(req.body, []);
    await allReady();
    if (memoryAdmin) await memoryAdmin.resetAll();
    await Promise.all(separately.map((name) => deps.lanes[name].resetAll()));
    res.status(204).end();
  });

  return router;
}
