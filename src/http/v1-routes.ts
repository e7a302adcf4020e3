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
import type { Response } from 'express';
import type { LaneName } from '../config.js';
import { ServiceError } from '../errors.js';
import type { BuyOutcome } from '../lanes/lane.js';
import { JSON_TYPE, TEXT_TYPE, sendAnswer } from './answer.js';
import type { AppDeps } from './app-deps.js';
import { buyAndRecord } from './buy.js';
import type { Operations } from './contract.js';
import type { OperationRouter } from './operation-router.js';

export const ONE_STOCK_SKU = 'STOCK';

const ONE_STOCK_LANES: readonly LaneName[] = ['db', 'atomic', 'signal', 'lock'];

function sendText(res: Response, status: number, text: string): void {
  sendAnswer(res, status, TEXT_TYPE, text);
}

export function v1Routes(routes: OperationRouter, ops: Operations, deps: AppDeps): void {
  ONE_STOCK_LANES.forEach((lane, i) => {
    const unknown = () => new ServiceError('unknown_sku', `The ${lane} lane has no ${ONE_STOCK_SKU} SKU (see SEED_SKUS).`);
    const buyOp = ops.oneStock[i * 2];
    const peekOp = ops.oneStock[i * 2 + 1];
    if (!buyOp || !peekOp || !buyOp.path.endsWith('/Buy') || !peekOp.path.endsWith('/Peek')) throw new Error('the OneStock operations are out of order');
    const answer = (res: Response, outcome: BuyOutcome): void => {
      if (outcome.kind === 'unknown_sku') throw unknown();
      if (outcome.kind === 'sold') sendText(res, 200, `Bought successfully. Remaining stock: ${outcome.remaining}`);
      else sendText(res, 400, `Already sold out. Stock: ${outcome.remaining}`);
    };
    // Not an async function: a lane that decides synchronously is answered in the same turn.
    routes.add(buyOp, (_input, _req, res) => {
      const outcome = buyAndRecord(deps, lane, ONE_STOCK_SKU, 1);
      if (outcome instanceof Promise) return outcome.then((decided) => answer(res, decided));
      answer(res, outcome);
    });
    routes.add(peekOp, async (_input, _req, res) => {
      const level = await deps.lanes[lane].peek(ONE_STOCK_SKU);
      if (!level) throw unknown();
      res.json({ id: ONE_STOCK_SKU, stock: level.remaining });
    });
  });

  const manyStockAnswer = (res: Response, product: string, outcome: BuyOutcome): void => {
    if (outcome.kind === 'unknown_sku') throw new ServiceError('unknown_sku', `Unknown product ${product}.`);
    sendAnswer(res, 200, JSON_TYPE, outcome.kind === 'sold' ? 'true' : 'false');
  };
  routes.add(ops.manyStockBuy, ({ params: { product } }, _req, res) => {
    const outcome = buyAndRecord(deps, 'atomic', product, 1);
    if (outcome instanceof Promise) return outcome.then((decided) => manyStockAnswer(res, product, decided));
    manyStockAnswer(res, product, outcome);
  });

  routes.add(ops.manyStockPeek, async ({ params: { product } }, _req, res) => {
    const level = await deps.lanes.atomic.peek(product);
    if (!level) throw new ServiceError('unknown_sku', `Unknown product ${product}.`);
    res.json({ id: product, remainingStock: level.remaining, soldStock: level.sold });
  });
}
