// The original's Phase 1 route for one lane, through the v1 compatibility routes:
//   k6 run -e LANE=Cache/Atomic k6/one-stock.ts     (Db | Cache/Atomic | Cache/Signal | Cache/Lock)
// 200 is a sale and 400 "sold out" is a correct answer; anything else fails the run.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { BASE_URL } from './lib.ts';

const LANE = __ENV.LANE ?? 'Cache/Atomic';
const sold = new Counter('units_sold');

export const options = {
  scenarios: { buyers: { executor: 'constant-vus', vus: 50, duration: '30s' } },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    checks: ['rate==1'],
  },
};

http.setResponseCallback(http.expectedStatuses(200, 400));

export function setup(): { before: number } {
  return { before: (http.get(`${BASE_URL}/api/v1/OneStock/${LANE}/Peek`).json() as { stock: number }).stock };
}

export default function (): void {
  const res = http.post(`${BASE_URL}/api/v1/OneStock/${LANE}/Buy`);
  if (res.status === 200) sold.add(1);
  check(res, { 'sold (200) or sold out (400)': (r) => r.status === 200 || r.status === 400 });
}

export function teardown(data: { before: number }): void {
  const after = (http.get(`${BASE_URL}/api/v1/OneStock/${LANE}/Peek`).json() as { stock: number }).stock;
  check(after, { 'never below zero': (stock) => stock >= 0 });
  console.log(`[${LANE}] stock ${data.before} → ${after}`);
}
