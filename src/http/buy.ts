/**
 * The buy step shared by the v1 and v2 routes: run the lane's tryBuy and count the outcome and
 * its latency. Counting here, once, is the only per-request record — nothing is logged.
 */
import { performance } from 'node:perf_hooks';
import type { LaneName } from '../config.js';
import type { BuyOutcome } from '../lanes/lane.js';
import type { AppDeps } from './app.js';

export async function buyAndRecord(deps: AppDeps, lane: LaneName, sku: string, quantity: number, key: string | null = null): Promise<BuyOutcome> {
  const started = performance.now();
  let outcome: BuyOutcome;
  try {
    outcome = await deps.lanes[lane].tryBuy(sku, quantity, key);
  } catch (error) {
    deps.metrics.recordBuy(lane, 'unavailable', (performance.now() - started) / 1000, 0, -1);
    throw error;
  }
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
