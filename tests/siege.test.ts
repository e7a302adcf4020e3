/**
 * The original's siege commands run unchanged against our v1 routes (`siege -c5 -t2s -b
 * '<url> POST'`), and every transaction siege counts is a unit the service really sold. Siege
 * stops its clock with up to -c requests in flight and does not count them, though the server
 * served them — the "undercounting" the original noticed — so units sold may exceed siege's
 * transactions by at most the concurrency, never fall below them.
 */
import { spawn } from 'node:child_process';
import { startService, type ServiceHandle } from './harness/service.js';
import { request } from './support/http.js';

function siege(url: string): Promise<string> {
  return new Promise((resolve) => {
    let output = '';
    const child = spawn('siege', ['-c5', '-t2s', '-b', `${url} POST`], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('exit', () => resolve(output));
  });
}

describe('siege, as the original ran it', () => {
  let service: ServiceHandle;

  beforeAll(async () => {
    // Enough stock that two seconds of siege cannot sell out (its sold-out answers count as transactions too).
    service = await startService({ ELECTION: 'none', DURABILITY: 'none', MONGO_DB: 'siege_test', INITIAL_STOCK: '1000000' });
  });

  afterAll(async () => {
    await service?.stop();
  });

  test.each(['Db', 'Cache/Atomic', 'Cache/Signal', 'Cache/Lock'])('OneStock/%s/Buy: every transaction siege counts was sold', async (path) => {
    const peek = async () => (await request<{ stock: number }>('GET', `${service.url}/api/v1/OneStock/${path}/Peek`)).body.stock;
    const before = await peek();
    const output = await siege(`${service.url}/api/v1/OneStock/${path}/Buy`);
    const field = (name: string) => Number(new RegExp(`"${name}":\\s*(\\d+)`).exec(output)?.[1]);
    const transactions = field('transactions');
    const failed = field('failed_transactions');
    expect(transactions).toBeGreaterThan(0);
    const sold = before - (await peek());
    expect(sold).toBeGreaterThanOrEqual(transactions);
    // Not counted by siege: up to 5 requests cut off by its clock, and any it gave up on.
    expect(sold).toBeLessThanOrEqual(transactions + failed + 5);
  }, 30_000);
});
