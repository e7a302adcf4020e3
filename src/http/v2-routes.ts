/**
 * The v2 API: one JSON shape for every lane and SKU, a quantity, and idempotency keys.
 *   POST /v2/lanes/{lane}/skus/{sku}/buy   {"quantity": n}   Idempotency-Key: <key>
 *   GET  /v2/lanes/{lane}/skus/{sku}
 *   GET  /v2/openapi.json
 * A repeated Idempotency-Key gets the first answer (200 or 409) replayed byte for byte, with
 * `Idempotent-Replayed: true`, and never sells twice. Inputs arrive validated (contract.ts).
 */
import type { Response } from 'express';
import { DependencyUnavailableError, OutcomeUnknownError, ServiceError } from '../errors.js';
import { buyFingerprint, soldBody, type StoredResponse } from '../idempotency.js';
import type { LaneName } from '../config.js';
import type { BuyOutcome } from '../lanes/lane.js';
import { JSON_TYPE, sendAnswer } from './answer.js';
import { errorBody, type AppDeps } from './app-deps.js';
import { buyAndRecord } from './buy.js';
import type { Operations } from './contract.js';
import type { OperationRouter } from './operation-router.js';

function sendStored(res: Response, stored: StoredResponse): void {
  sendAnswer(res, stored.status, JSON_TYPE, stored.body);
}

export function v2Routes(routes: OperationRouter, ops: Operations, deps: AppDeps, openApi: () => string): void {
  const { idempotency } = deps;

  /** The final answer to a buy: 200 with the sale, or 409 with what is left. */
  const answerOf = (lane: LaneName, sku: string, quantity: number, outcome: BuyOutcome): StoredResponse => {
    switch (outcome.kind) {
      case 'unknown_sku':
        throw new ServiceError('unknown_sku', `The ${lane} lane has no SKU ${sku}.`);
      case 'sold':
        return { status: 200, body: soldBody(lane, sku, quantity, outcome.remaining) };
      case 'sold_out': {
        const error =
          outcome.remaining === 0
            ? new ServiceError('sold_out', `${sku} is sold out on the ${lane} lane.`, { remaining: 0 })
            : new ServiceError('insufficient_stock', `Only ${outcome.remaining} of ${sku} left on the ${lane} lane.`, { remaining: outcome.remaining });
        return { status: error.status, body: errorBody(error) };
      }
    }
  };

  /** With an Idempotency-Key: claim it, buy, record the answer under it. */
  const keyedBuy = async (res: Response, lane: LaneName, sku: string, quantity: number, key: string): Promise<void> => {
    const claim = await idempotency.claim(key, buyFingerprint(lane, sku, quantity));
    switch (claim.kind) {
      case 'replay':
        deps.metrics.recordBuy(lane, 'replayed', 0, 0, -1);
        res.setHeader('Idempotent-Replayed', 'true');
        return sendStored(res, claim.response);
      case 'in_progress':
        throw new ServiceError('idempotency_key_in_use');
      case 'mismatch':
        throw new ServiceError('idempotency_key_reused');
      case 'unavailable':
        throw new DependencyUnavailableError('mongo', `cannot read this key's record: ${claim.reason}`);
      case 'new':
        break;
    }
    let answer: StoredResponse;
    try {
      answer = answerOf(lane, sku, quantity, await buyAndRecord(deps, lane, sku, quantity, key));
    } catch (error) {
      // Not a final answer: the client may retry with the same key — unless the sale's fate is
      // still being settled here, in which case the settling frees or answers the key.
      if (!(error instanceof OutcomeUnknownError && error.settledHere)) await idempotency.release(key);
      throw error;
    }
    await idempotency.complete(key, answer);
    sendStored(res, answer);
  };

  // Not an async function: a lane that decides synchronously is answered in the same turn.
  routes.add(ops.buy, ({ params: { lane, sku }, body: { quantity }, idempotencyKey: key }, _req, res) => {
    if (key !== null) return keyedBuy(res, lane, sku, quantity, key);
    const outcome = buyAndRecord(deps, lane, sku, quantity);
    if (outcome instanceof Promise) return outcome.then((decided) => sendStored(res, answerOf(lane, sku, quantity, decided)));
    sendStored(res, answerOf(lane, sku, quantity, outcome));
  });

  routes.add(ops.peek, async ({ params: { lane, sku } }, _req, res) => {
    const level = await deps.lanes[lane].peek(sku);
    if (!level) throw new ServiceError('unknown_sku', `The ${lane} lane has no SKU ${sku}.`);
    res.json({ lane, sku, ...level });
  });

  routes.add(ops.openapi, (_input, _req, res) => {
    res.type('application/json').send(openApi());
  });
}
