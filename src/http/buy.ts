/**
 * The buy step shared by the v1 and v2 routes: run the lane's tryBuy and count the outcome and
 * its latency. Counting here, once, is the only per-request record — nothing is logged. A lane
 * that answers synchronously (atomic, lock) gets its answer back synchronously, so the route can
 * reply in the same turn without a promise in between.
 */
import { performance } from 'node:perf_hooks';
import type { LaneName } from '../config.js';
import type { BuyOutcome } from '../lanes/lane.js';
import type { AppDeps } from './app-deps.js';

export function buyAndRecord(deps: AppDeps, lane: LaneName, sku: string, quantity: number, key: string | null = null): BuyOutcome | Promise<BuyOutcome> {
  const started = performance.now();
  const failed = (error: unknown): never => {
    deps.metrics.recordBuy(lane, 'unavailable', (performance.now() - started) / 1000, 0, -1);
    throw error;
  };
  let result: BuyOutcome | Promise<BuyOutcome>;
  try {
    result = deps.lanes[lane].tryBuy(sku, quantity, key);
  } catch (error) {
    return failed(error);
  }
  if (result instanceof Promise) return result.then((outcome) => record(deps, lane, quantity, started, outcome), failed);
  return record(deps, lane, quantity, started, result);
}

function record(deps: AppDeps, lane: LaneName, quantity: number, started: number, outcome: BuyOutcome): BuyOutcome {
  const seconds = (performance.now() - started) / 1000;
  switch (outcome.kind) {
    case 'sold':
      deps.metrics.recordBuy(lane, 'sold', seconds, quantity, outcome.remaining);
      break;
    case 'sold_out':
      deps.metrics.recordBuy(lane, 'sold_out', seconds, 0, outcome.remaining);
      break;
    case 'unknown_sku':
      deps.metrics.recordBuy(lane, 'not_found', seconds, 0, -1);
      break;
  }
  return outcome;
}
