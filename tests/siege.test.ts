/**
 * The original's siege commands run unchanged against our v1 routes (`siege -c5 -t2s -b
 * '<url> POST'`), and every transaction siege counts is a unit the service really sold.
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
    service = await startService({ ELECTION: 'none', DURABILITY: 'none', MONGO_DB: 'siege_test' });
  });

  afterAll(async () => {
    await service?.stop();
  });

  test.each(['Db', 'Cache/Atomic', 'Cache/Signal', 'Cache/Lock'])('OneStock/%s/Buy: transactions == units sold', async (path) => {
    const peek = async () => (await request<{ stock: number }>('GET', `${service.url}/api/v1/OneStock/${path}/Peek`)).body.stock;
    const before = await peek();
    const output = await siege(`${service.url}/api/v1/OneStock/${path}/Buy`);
    const transactions = Number((/"transactions":\s*(\d+)/.exec(output) ?? /Transactions:\s*(\d+)/.exec(output))?.[1]);
    expect(transactions).toBeGreaterThan(0);
    expect(before - (await peek())).toBe(transactions);
  }, 30_000);
});
