// The original's Phase 2 check (its k6.js), on the ManyStock routes: random tickers, and in the
// teardown remaining + sold must be exactly what it was — no oversell, no undersell.
import http from 'k6/http';
import { check } from 'k6';
import { BASE_URL } from './lib.ts';

const TICKERS = ['NVDA', 'TSLA', 'AMD'];

interface Peek {
  id: string;
  remainingStock: number;
  soldStock: number;
}

export const options = {
  stages: [
    { duration: '10s', target: 50 },
    { duration: '20s', target: 50 },
    { duration: '5s', target: 0 },
  ],
  thresholds: { checks: ['rate==1'], http_req_failed: ['rate<0.01'] },
};

const peek = (ticker: string) => http.get(`${BASE_URL}/api/v1/ManyStock/Cache/PeekFastAtomic/${ticker}`).json() as unknown as Peek;

export function setup(): Record<string, number> {
  return Object.fromEntries(TICKERS.map((t) => [t, peek(t).remainingStock + peek(t).soldStock]));
}

export default function (): void {
  const ticker = TICKERS[Math.floor(Math.random() * TICKERS.length)] as string;
  const res = http.post(`${BASE_URL}/api/v1/ManyStock/Cache/BuyFastAtomic/${ticker}`);
  check(res, { 'bought or sold out (200 true/false)': (r) => r.status === 200 && (r.body === 'true' || r.body === 'false') });
}

export function teardown(totals: Record<string, number>): void {
  for (const ticker of TICKERS) {
    const p = peek(ticker);
    console.log(`[${ticker}] sold ${p.soldStock}, remaining ${p.remainingStock}`);
    check(p, { 'No Oversell / Undersell': (x) => x.remainingStock + x.soldStock === totals[ticker] && x.remainingStock >= 0 });
  }
}
