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
import { Router, type IRouter, type Response } from 'express';
import type { LaneName } from '../config.js';
import { ServiceError } from '../errors.js';
import type { BuyOutcome } from '../lanes/lane.js';
import { JSON_TYPE, TEXT_TYPE, sendAnswer } from './answer.js';
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
  sendAnswer(res, status, TEXT_TYPE, text);
}

/** Registers on `router` — the app itself for the hot routes, so a buy walks no nested router. */
export function v1Routes(deps: AppDeps, router: IRouter = Router()): IRouter {

  for (const [path, lane] of ONE_STOCK_PATHS) {
    const answer = (res: Response, outcome: BuyOutcome): void => {
      if (outcome.kind === 'unknown_sku') throw new ServiceError('unknown_sku', `The ${lane} lane has no ${ONE_STOCK_SKU} SKU (see SEED_SKUS).`);
      if (outcome.kind === 'sold') sendText(res, 200, `Bought successfully. Remaining stock: ${outcome.remaining}`);
      else sendText(res, 400, `Already sold out. Stock: ${outcome.remaining}`);
    };
    router.post(`/api/v1/OneStock/${path}/Buy`, (_req, res, next) => {
      const outcome = buyAndRecord(deps, lane, ONE_STOCK_SKU, 1);
      if (outcome instanceof Promise) return void outcome.then((decided) => answer(res, decided)).catch(next);
      answer(res, outcome);
    });
    router.get(`/api/v1/OneStock/${path}/Peek`, async (_req, res) => {
      const level = await deps.lanes[lane].peek(ONE_STOCK_SKU);
      if (!level) throw new ServiceError('unknown_sku', `The ${lane} lane has no ${ONE_STOCK_SKU} SKU (see SEED_SKUS).`);
      res.json({ id: ONE_STOCK_SKU, stock: level.remaining });
    });
  }

  const manyStockAnswer = (res: Response, product: string, outcome: BuyOutcome): void => {
    if (outcome.kind === 'unknown_sku') throw new ServiceError('unknown_sku', `Unknown product ${product}.`);
    sendAnswer(res, 200, JSON_TYPE, outcome.kind === 'sold' ? 'true' : 'false');
  };
  router.post('/api/v1/ManyStock/Cache/BuyFastAtomic/:product', (req, res, next) => {
    const product = parseSku(req.params.product);
    const outcome = buyAndRecord(deps, 'atomic', product, 1);
    if (outcome instanceof Promise) return void outcome.then((decided) => manyStockAnswer(res, product, decided)).catch(next);
    manyStockAnswer(res, product, outcome);
  });

  router.get('/api/v1/ManyStock/Cache/PeekFastAtomic/:product', async (req, res) => {
    const product = parseSku(req.params.product);
    const level = await deps.lanes.atomic.peek(product);
    if (!level) throw new ServiceError('unknown_sku', `Unknown product ${product}.`);
    res.json({ id: product, remainingStock: level.remaining, soldStock: level.sold });
  });

  return router;
}
