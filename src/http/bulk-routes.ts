/**
 * The bulk admin route: a whole SKU list in one streamed request, with the meaning of one
 * `PUT /v2/admin/skus/{sku}` per line, in order, on every lane.
 *   POST /v2/admin/skus:bulk   body: NDJSON (application/x-ndjson) or CSV (text/csv), see sku-list.ts
 * The body is read and checked to its end before anything is applied: one bad line refuses the
 * whole list (400, every bad line's number in `details.errors`) and changes nothing. Like PUT, it
 * is safe to repeat after a dependency failed half-way. Parsing lives in src/bulk/, so this route
 * owns only HTTP: the token, the content type and the answer. It is mounted before the JSON body
 * parser, which would refuse these content types.
 */
import { Router, type Request } from 'express';
import { putSkus } from '../bulk/apply-skus.js';
import { SkuListParser, StagedSkus, type SkuListFormat } from '../bulk/sku-list.js';
import { ServiceError } from '../errors.js';
import { requireAdmin } from './admin-routes.js';
import type { AppDeps } from './app.js';

const FORMATS: ReadonlyArray<readonly [string, SkuListFormat]> = [
  ['application/x-ndjson', 'ndjson'],
  ['application/ndjson', 'ndjson'],
  ['application/jsonl', 'ndjson'],
  ['text/csv', 'csv'],
];

function formatOf(req: Request): SkuListFormat {
  for (const [type, format] of FORMATS) if (req.is(type)) return format;
  throw new ServiceError('unsupported_media_type', 'Send the SKU list as application/x-ndjson or text/csv.');
}

/** Mounted at /v2/admin (app.ts). */
export function bulkRoutes(deps: AppDeps): Router {
  const router = Router();
  router.post('/skus\\:bulk', requireAdmin(deps.config.adminToken), async (req, res) => {
    const skus = new StagedSkus();
    const parser = new SkuListParser(formatOf(req), deps.config.maxSkus, (sku, stock) => skus.add(sku, stock));
    for await (const chunk of req) parser.push(chunk as Buffer);
    const { errors, errorCount } = parser.end();
    if (errorCount > 0) throw new ServiceError('invalid_request', `${errorCount} bad line(s) in the SKU list; nothing was changed.`, { errors, errorCount });
    await Promise.all(deps.dependencies.map((d) => d.check()));
    const created = await putSkus(deps.lanes, skus);
    res.status(200).json({ skus: skus.count, created });
  });
  return router;
}
