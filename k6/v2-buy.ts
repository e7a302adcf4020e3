// The v2 API on one lane with quantities and idempotency keys:
//   k6 run -e LANE=lock -e SKU=NVDA k6/v2-buy.ts
// Every 200 is counted; at the end the units the clients were sold must equal what the lane
// says it sold, and never more than it had.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { BASE_URL, checkNoOversell, idempotencyKey, level, type Level } from './lib.ts';

const LANE = __ENV.LANE ?? 'atomic';
const SKU = __ENV.SKU ?? 'NVDA';
const units = new Counter('units_acknowledged');

export const options = {
  scenarios: { buyers: { executor: 'constant-vus', vus: 100, duration: '30s' } },
  thresholds: { checks: ['rate==1'], http_req_failed: ['rate<0.01'] },
};

http.setResponseCallback(http.expectedStatuses(200, 409));

export function setup(): Level {
  return level(LANE, SKU);
}

export default function (): void {
  const quantity = 1 + Math.floor(Math.random() * 3);
  const res = http.post(`${BASE_URL}/v2/lanes/${LANE}/skus/${SKU}/buy`, JSON.stringify({ quantity }), {
    headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey('v2') },
  });
  if (res.status === 200) units.add(quantity);
  check(res, { 'sold (200) or refused (409)': (r) => r.status === 200 || r.status === 409 });
}

export function teardown(before: Level): void {
  checkNoOversell(LANE, SKU, before);
}
