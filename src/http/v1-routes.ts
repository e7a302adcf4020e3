/**
 * The original project's routes, with its paths, methods, status codes and JSON field names, so
 * its siege commands and k6 script run unchanged:
 *   OneStock: one counter per strategy (the SKU named STOCK in each lane). Buy answers 200 or
 *     400 with a text message, as ASP.NET's Ok(string)/BadRequest(string) did; Peek answers
 *     {"id","stock"}.
 *   ManyStock: the atomic lane by product. Buy answers 200 with the JSON body true or false;
 *     Peek answers {"id","remainingStock","soldStock"}; an unknown product is a 404 (the
 *     original crashed there).
 */
import { Router, type Response } from 'express';
import type { LaneName } from '../config.js';
import { ServiceError } from '../errors.js';
import type { AppDeps } from './app.js';
import { buyAndRecord } from './buy.js';
import { parseSku } from './validation.js';

export const ONE_STOCK_SKU = 'STOCK';

const ONE_STOCK_PATHS: ReadonlyArray<readonly [string, LaneName]> = [
  ['Db', 'db'],
  ['Cache/Atomic', 'atomic'],
  ['Cache/Signal', 'signal'],
  ['Cache/Lock', 'lock'],
];

function sendText(res: Response, status: number, text: string): void {
  res.status(status).type('text/plain; charset=utf-8').send(text);
}

export function v1Routes(deps: AppDeps): Router {
  const router = Router();

  for (const [path, lane] of ONE_STOCK_PATHS) {
    router.post(`/api/v1/OneStock/${path}/Buy`, async (_req, res) => {
      const outcome = await buyAndRecord(deps, lane, ONE_STOCK_SKU, 1);
      if (outcome.kind === 'unknown_sku') throw new ServiceError('unknown_sku', `The ${lane} lane has no ${ONE_STOCK_SKU} SKU (see SEED_SKUS).`);
      if (outcome.kind === 'sold') sendText(res, 200, `Bought successfully. Remaining stock: ${outcome.remaining}`);
      else sendText(res, 400, `Already sold out. Stock: ${outcome.remaining}`);
    });
    router.get(`/api/v1/OneStock/${path}/Peek`, async (_req, res) => {
      const level = await deps.lanes[lane].peek(ONE_STOCK_SKU);
      if (!level) throw new ServiceError('unknown_sku', `The ${lane} lane has no ${ONE_STOCK_SKU} SKU (see SEED_SKUS).`);
      res.json({ id: ONE_STOCK_SKU, stock: level.remaining });
    });
  }

  router.post('/api/v1/ManyStock/Cache/BuyFastAtomic/:product', async (req, res) => {
    const outcome = await buyAndRecord(deps, 'atomic', parseSku(req.params.product), 1);
    if (outcome.kind === 'unknown_sku') throw new ServiceError('unknown_sku', `Unknown product ${req.params.product}.`);
    res.json(outcome.kind === 'sold');
  });

  router.get('/api/v1/ManyStock/Cache/PeekFastAtomic/:product', async (req, res) => {
    const product = parseSku(req.params.product);
    const level = await deps.lanes.atomic.peek(product);
    if (!level) throw new ServiceError('unknown_sku', `Unknown product ${product}.`);
    res.json({ id: product, remainingStock: level.remaining, soldStock: level.sold });
  });

  return router;
}
