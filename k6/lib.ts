// Shared by the k6 scripts: where the service is, and how to read its answers.
import http from 'k6/http';
import { check } from 'k6';

export const BASE_URL: string = __ENV.BASE_URL ?? 'http://localhost:5059';

export interface Level {
  remaining: number;
  sold: number;
  initial: number;
}

export function level(lane: string, sku: string): Level {
  const res = http.get(`${BASE_URL}/v2/lanes/${lane}/skus/${sku}`);
  return res.json() as unknown as Level;
}

/** A unique idempotency key per request (VU, iteration, time). */
export function idempotencyKey(prefix: string): string {
  return `${prefix}-${__VU}-${__ITER}-${Date.now()}`;
}

/** The end-of-run invariant: nothing sold beyond what there was, never below zero. */
export function checkNoOversell(lane: string, sku: string, before: Level): void {
  const after = level(lane, sku);
  check(after, {
    'remaining + sold == initial': (l) => l.remaining + l.sold === l.initial,
    'never below zero': (l) => l.remaining >= 0,
    'never more sold than stocked': (l) => l.sold - before.sold <= before.remaining,
  });
}
