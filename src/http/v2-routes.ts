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
import { errorBody, type AppDeps } from './app.js';
import { buyAndRecord } from './buy.js';
import type { Operations } from './contract.js';
import type { OperationRouter } from './operation-router.js';

function sendStored(res: Response, stored: StoredResponse): void {
  res.status(stored.status).setHeader('content-type', 'application/json; charset=utf-8');
  res.send(stored.body);
}

export function v2Routes(routes: OperationRouter, ops: Operations, deps: AppDeps, openApi: () => string): void {
  const { idempotency } = deps;

  routes.add(ops.buy, async ({ params: { lane, sku }, body: { quantity }, idempotencyKey: key }, _req, res) => {
    if (key !== null) {
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
    }

    let answer: StoredResponse;
    try {
      const outcome = await buyAndRecord(deps, lane, sku, quantity, key);
      switch (outcome.kind) {
        case 'unknown_sku':
          throw new ServiceError('unknown_sku', `The ${lane} lane has no SKU ${sku}.`);
        case 'sold':
          answer = { status: 200, body: soldBody(lane, sku, quantity, outcome.remaining) };
          break;
        case 'sold_out': {
          const error =
            outcome.remaining === 0
              ? new ServiceError('sold_out', `${sku} is sold out on the ${lane} lane.`, { remaining: 0 })
              : new ServiceError('insufficient_stock', `Only ${outcome.remaining} of ${sku} left on the ${lane} lane.`, { remaining: outcome.remaining });
          answer = { status: error.status, body: errorBody(error) };
          break;
        }
      }
    } catch (error) {
      // Not a final answer: the client may retry with the same key — unless the sale's fate is
      // still being settled here, in which case the settling frees or answers the key.
      if (key !== null && !(error instanceof OutcomeUnknownError && error.settledHere)) await idempotency.release(key);
      throw error;
    }
    if (key !== null) await idempotency.complete(key, answer);
    sendStored(res, answer);
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
