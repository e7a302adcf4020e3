// Failover under load: buy continuously through the all-replicas Service while you delete the
// primary's pod (kubectl delete pod -l superstock.io/role=primary). Unanswered requests are retried with the same
// idempotency key; at the end no lane may have sold more than it had.
//   k6 run -e LANE=atomic k6/failover.ts
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';
import { BASE_URL, checkNoOversell, idempotencyKey, level, type Level } from './lib.ts';

const LANE = __ENV.LANE ?? 'atomic';
const SKU = __ENV.SKU ?? 'STOCK';
const retried = new Counter('retried_with_same_key');

export const options = {
  scenarios: { buyers: { executor: 'constant-vus', vus: 30, duration: '60s' } },
  thresholds: { checks: ['rate==1'] },
};

http.setResponseCallback(http.expectedStatuses(200, 409, 503));

export function setup(): Level {
  return level(LANE, SKU);
}

export default function (): void {
  const key = idempotencyKey('failover');
  for (let attempt = 0; attempt < 20; attempt++) {
    const res = http.post(`${BASE_URL}/v2/lanes/${LANE}/skus/${SKU}/buy`, null, { headers: { 'idempotency-key': key }, timeout: '10s' });
    if (res.status === 200 || (res.status === 409 && !String(res.body).includes('idempotency_key_in_use'))) return;
    retried.add(1);
    sleep(0.25);
  }
  check(key, { 'a final answer within 20 attempts': () => false });
}

export function teardown(before: Level): void {
  checkNoOversell(LANE, SKU, before);
}
