/**
 * The bulk admin route: a whole SKU list in one streamed request, with the meaning of one
 * `PUT /v2/admin/skus/{sku}` per line, in order, on every lane.
 *   POST /v2/admin/skus:bulk   body: NDJSON (application/x-ndjson) or CSV (text/csv), see sku-list.ts
 * The operation is declared in the contract (contract.ts) with its media types; the operation
 * router checks the token and the media type and leaves the body unread, so it is parsed here as
 * it streams in. The body is read and checked to its end before anything is applied: one bad line
 * refuses the whole list (400, every bad line's number in `details.errors`) and changes nothing.
 * Like PUT, it is safe to repeat after a dependency failed half-way, and it runs under the
 * replica's admin lock like every admin change. Parsing lives in src/bulk/, so this route owns
 * only HTTP.
 */
import type { Request } from 'express';
import { putSkus } from '../bulk/apply-skus.js';
import { SkuListParser, StagedSkus, type SkuListFormat } from '../bulk/sku-list.js';
import { ServiceError } from '../errors.js';
import type { AdminLock } from '../memory/admin-lock.js';
import type { AppDeps } from './app-deps.js';
import { BULK_LIST_TYPES, type Operations } from './contract.js';
import type { OperationRouter } from './operation-router.js';

const FORMAT_OF: Readonly<Record<keyof typeof BULK_LIST_TYPES, SkuListFormat>> = {
  'application/x-ndjson': 'ndjson',
  'text/csv': 'csv',
};

/** The router has checked the media type is one of the declared ones. */
function formatOf(req: Request): SkuListFormat {
  return req.is('text/csv') ? FORMAT_OF['text/csv'] : FORMAT_OF['application/x-ndjson'];
}

export function bulkRoutes(routes: OperationRouter, ops: Operations, deps: AppDeps, lock: AdminLock): void {
  routes.add(ops.putSkusInBulk, async (_input, req, res) => {
    const skus = new StagedSkus();
    try {
      // Lines go straight into the compact staging, as bytes: no string or object per SKU.
      const parser = new SkuListParser(formatOf(req), deps.config.maxSkus, skus);
      // Read as the parser goes: the async iterator pauses the request between chunks.
      for await (const chunk of req) parser.push(chunk as Buffer);
      const { errors, errorCount } = parser.end();
      if (errorCount > 0) throw new ServiceError('invalid_request', `${errorCount} bad line(s) in the SKU list; nothing was changed.`, { errors, errorCount });
      await Promise.all(deps.dependencies.map((d) => d.check()));
      const created = await lock.run(() => putSkus(deps.lanes, skus, deps.memoryAdmin ?? null));
      res.status(200).json({ skus: skus.count, created });
    } finally {
      skus.release();
    }
  });
}
