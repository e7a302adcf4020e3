// Shared by the k6 scripts: where the service is, and how to read its answers.
import http from 'k6/http';

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
