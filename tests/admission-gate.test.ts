/**
 * Issue 10, item 7: the admission gate. With ADMISSION_LIMIT=4 (per worker thread) and the queues'
 * QUEUE_LIMIT left at its default (so no queue refuses), 1,200 buys sent at once on their own
 * connections to one real replica (MongoDB ledger, DURABILITY=sync): every 503 is the gate's —
 * the catalogue's `overloaded` body byte for byte, with Retry-After, each one counted in
 * superstock_admission_refused_total; /healthz and /readyz answer 200 throughout the flood; a
 * keep-alive connection whose buy was refused serves its next request; and what Peek says was
 * sold is what was acknowledged (nothing refused changed anything).
 * Budget: ~10 s (≤ 20 s under heavy machine load).
 */
import { Agent, request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { ServiceError } from '../src/errors.js';
import { errorBody } from '../src/http/app-deps.js';
import { startService, type ServiceHandle } from './harness/service.js';
import { buy, peek, putSku, type Answer, type BuyBody, type ErrorBody } from './support/http.js';
import { sampleOf } from './support/exposition.js';
import { TEST_ADMIN_TOKEN } from './support/local-app.js';

const LANES = ['atomic', 'db'] as const;
const FLOOD = 1200;
const KEEP_ALIVE_CLIENTS = 100;
const SKU = 'GATE';
const REFUSAL_TEXT = errorBody(new ServiceError('overloaded'));

interface RawAnswer {
  readonly status: number;
  readonly text: string;
  readonly retryAfter: string | undefined;
  readonly reusedSocket: boolean;
}

/** One request through `agent` (node:http, so we can see whether the socket was reused). */
function send(agent: Agent, port: number, method: string, path: string, body?: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ agent, host: '127.0.0.1', port, method, path, headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, retryAfter: res.headers['retry-after'], reusedSocket: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('the admission gate, ADMISSION_LIMIT=4', () => {
  let service: ServiceHandle;

  beforeAll(async () => {
    service = await startService({ ADMISSION_LIMIT: '4', ADMIN_TOKEN: TEST_ADMIN_TOKEN, MONGO_DB: `gate_${randomBytes(4).toString('hex')}` });
  });

  afterAll(async () => {
    await service?.stop();
  });

  test('refuses past the limit with the catalogue\'s 503 before Express; probes and keep-alive connections keep working; sold == acknowledged', async () => {
    expect((await putSku(service.url, TEST_ADMIN_TOKEN, SKU, 1_000_000)).status).toBe(201);

    let flooding = true;
    const probes: number[] = [];
    const probing = (async () => {
      while (flooding) {
        for (const path of ['/healthz', '/readyz']) {
          const res = await fetch(`${service.url}${path}`);
          await res.arrayBuffer();
          probes.push(res.status);
        }
      }
    })();

    const flood = Promise.all(
      Array.from({ length: FLOOD }, async (_, n): Promise<{ lane: string; answer: Answer<BuyBody & ErrorBody> | null }> => {
        const lane = LANES[n % LANES.length] as string;
        return { lane, answer: await buy(service.url, lane, SKU, 1).catch(() => null) };
      }),
    );
    // Keep-alive clients, one socket each: a buy (with a body the gate does not read), then a probe on the same socket.
    const keepAlive = Promise.all(
      Array.from({ length: KEEP_ALIVE_CLIENTS }, async () => {
        const agent = new Agent({ keepAlive: true, maxSockets: 1 });
        try {
          const first = await send(agent, service.port, 'POST', `/v2/lanes/atomic/skus/${SKU}/buy`, JSON.stringify({ quantity: 1 }));
          const second = await send(agent, service.port, 'GET', '/healthz');
          return { first, second };
        } finally {
          agent.destroy();
        }
      }),
    );
    const [answers, keptAlive] = await Promise.all([flood, keepAlive]);
    flooding = false;
    await probing;

    // Every answer is a sale or the gate's refusal (QUEUE_LIMIT is far above 1,200, so no queue
    // refuses); a sale whose ledger write outlasted the timeout may be a 504 under heavy load.
    const refusals = answers.filter((a) => a.answer?.status === 503);
    expect(refusals.length).toBeGreaterThan(0);
    expect(answers.filter((a) => a.answer?.status === 200).length).toBeGreaterThan(0);
    for (const { answer } of answers) expect([200, 503, 504]).toContain(answer?.status);
    for (const { answer } of refusals) {
      expect(answer?.text).toBe(REFUSAL_TEXT);
      expect(answer?.headers.get('retry-after')).toBe('1');
      expect(answer?.headers.get('content-type')).toBe('application/json; charset=utf-8');
    }

    // The probes were never refused, and some ran while the flood was on.
    expect(probes.length).toBeGreaterThanOrEqual(2);
    expect(probes.every((status) => status === 200)).toBe(true);

    // A refused keep-alive connection served its next request on the same socket.
    const refusedKeepAlive = keptAlive.filter(({ first }) => first.status === 503);
    expect(refusedKeepAlive.length).toBeGreaterThan(0);
    for (const { first, second } of keptAlive) {
      expect([200, 503, 504]).toContain(first.status);
      if (first.status === 503) expect([first.text, first.retryAfter]).toEqual([REFUSAL_TEXT, '1']);
      expect([second.status, second.reusedSocket]).toEqual([200, true]);
    }

    // Each refusal was counted once, and only refusals were.
    const metrics = await (await fetch(service.metricsUrl)).text();
    expect(sampleOf(metrics, 'superstock_admission_refused_total')).toBe(refusals.length + refusedKeepAlive.length);

    // Sold == acknowledged: a refusal changed nothing (504s may or may not have sold).
    for (const lane of LANES) {
      const acked = answers.filter((a) => a.lane === lane && a.answer?.status === 200).length + (lane === 'atomic' ? keptAlive.filter(({ first }) => first.status === 200).length : 0);
      const unknown = answers.filter((a) => a.lane === lane && a.answer?.status === 504).length + (lane === 'atomic' ? keptAlive.filter(({ first }) => first.status === 504).length : 0);
      const { sold } = (await peek(service.url, lane, SKU)).body;
      expect(sold).toBeGreaterThanOrEqual(acked);
      expect(sold).toBeLessThanOrEqual(acked + unknown);
    }

    // Once the flood is over, nothing is refused.
    expect((await buy(service.url, 'atomic', SKU, 1)).status).toBe(200);
  }, 20_000);
});
