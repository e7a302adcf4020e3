/**
 * The service image, run: three replicas from the image `make image` built from the real
 * Dockerfile, each read-only and non-root as the chart runs them (no writable tmpfs either), with
 * its own STOCK_HOST_ID, beside Redis and the MongoDB wire server from their images. The
 * original's routes answer; one primary is elected; stopping its container (SIGTERM) and then
 * killing one (SIGKILL) under load fails over without losing an acknowledged sale.
 * Run by `make image-test` (budget: about 2 minutes once the images exist).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ContainerSet, type Container, MONGO_WIRE_IMAGE, REDIS_IMAGE, SERVICE_IMAGE } from '../harness/containers.js';
import { freePort } from '../harness/ports.js';
import { accepts } from '../harness/servers.mjs';
import { waitFor } from '../harness/wait.js';
import { sampleOf } from '../support/exposition.js';
import { buy, peek, putSku, request, type Answer, type BuyBody, type ErrorBody } from '../support/http.js';
import { expectLaneAccounting, mongoLeaseHolder, readLedger } from '../support/ledger.js';

const ADMIN_TOKEN = randomBytes(16).toString('hex');
const DATABASE = `image_${randomBytes(4).toString('hex')}`;
const LANES = ['atomic', 'lock', 'signal', 'db', 'redis'] as const;

interface ContainerReplica {
  readonly id: string;
  readonly port: number;
  readonly metricsPort: number;
  readonly container: Container;
  up: boolean;
}

const containers = new ContainerSet();
const replicas: ContainerReplica[] = [];
let mongoUrl = '';

const urlOf = (replica: ContainerReplica) => `http://127.0.0.1:${replica.port}`;
const live = () => replicas.filter((r) => r.up);

async function ready(replica: ContainerReplica): Promise<boolean> {
  try {
    return (await fetch(`${urlOf(replica)}/readyz`)).status === 200;
  } catch {
    return false;
  }
}

async function metricsOf(replica: ContainerReplica): Promise<string> {
  return (await fetch(`http://127.0.0.1:${replica.metricsPort}/metrics`)).text();
}

async function isPrimary(replica: ContainerReplica): Promise<boolean> {
  try {
    return sampleOf(await metricsOf(replica), 'superstock_role{role="primary"}') === 1;
  } catch {
    return false;
  }
}

async function singlePrimary(timeoutMs = 20_000): Promise<ContainerReplica> {
  let found: ContainerReplica | undefined;
  await waitFor(
    async () => {
      const primaries = (await Promise.all(live().map(async (r) => ((await isPrimary(r)) ? r : null)))).filter((r) => r !== null);
      found = primaries.length === 1 ? primaries[0] : undefined;
      return found !== undefined;
    },
    { timeoutMs, intervalMs: 100, message: 'exactly one primary among the running containers' },
  );
  return found as ContainerReplica;
}

async function untilReady(replica: ContainerReplica): Promise<void> {
  await waitFor(() => ready(replica), { timeoutMs: 60_000, intervalMs: 200, message: `${replica.container.name} ready` }).catch(async (error: unknown) => {
    throw new Error(`${(error as Error).message}\n--- logs ---\n${(await replica.container.logs()).slice(-3000)}`, { cause: error });
  });
}

beforeAll(async () => {
  const [redisPort, mongoPort] = [await freePort(), await freePort()];
  await Promise.all([
    containers.start('redis', { image: REDIS_IMAGE, args: ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'] }),
    containers.start('mongo', { image: MONGO_WIRE_IMAGE, args: [String(mongoPort), '127.0.0.1'] }),
  ]);
  await waitFor(async () => (await accepts(redisPort)) && (await accepts(mongoPort)), { timeoutMs: 60_000, message: 'Redis and the wire server accept' });
  mongoUrl = `mongodb://127.0.0.1:${mongoPort}/`;
  for (let i = 0; i < 3; i++) {
    const [port, metricsPort] = [await freePort(), await freePort()];
    const id = `replica-${i}`;
    const container = containers.define(id, {
      image: SERVICE_IMAGE,
      env: {
        STOCK_HOST_ID: id,
        PORT: String(port),
        METRICS_PORT: String(metricsPort),
        HOST: '127.0.0.1',
        ADVERTISE_URL: `http://127.0.0.1:${port}`,
        WORKERS: '2',
        // Primary mode, said outright: this file proves the elected seller's failover in the image;
        // the chart's default, allotments mode, runs the same image in kube-local.test.ts.
        CLUSTER_MODE: 'primary',
        ELECTION: 'mongo',
        MONGO_URL: mongoUrl,
        MONGO_DB: DATABASE,
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        ADMIN_TOKEN,
      },
      // As the chart runs it: read-only root (and, unlike podman's default, no tmpfs on /tmp),
      // every capability dropped, no privilege escalation; the image's own user.
      options: ['--read-only', '--read-only-tmpfs=false', '--cap-drop=all', '--security-opt=no-new-privileges'],
    });
    replicas.push({ id, port, metricsPort, container, up: false });
  }
  await Promise.all(replicas.map(async (r) => {
    await r.container.start();
    r.up = true;
  }));
  await Promise.all(replicas.map(untilReady));
}, 240_000);

afterAll(async () => {
  await containers.removeAll();
});

describe('the service image, three containers', () => {
  test('each runs as the unprivileged node user (uid 1000) on a read-only root filesystem, with its own STOCK_HOST_ID', async () => {
    for (const replica of replicas) {
      expect(await replica.container.inspect('{{.Config.User}}')).toBe('node');
      expect(await replica.container.inspect('{{.HostConfig.ReadonlyRootfs}}')).toBe('true');
      expect((await replica.container.exec('id', '-u')).stdout.trim()).toBe('1000');
      for (const path of ['/app/probe', '/tmp/probe']) {
        const write = await replica.container.exec('sh', '-c', `echo x > ${path}`);
        expect(write.code).not.toBe(0);
        expect(write.stderr).toContain('Read-only file system');
      }
      // Its logs name it by its own id (pino's hostId binding), not the container's hostname.
      expect(await replica.container.logs()).toContain(`"hostId":"${replica.id}"`);
    }
  });

  test("the original's routes answer on every replica", async () => {
    for (const replica of replicas) {
      const base = urlOf(replica);
      for (const path of ['Db', 'Cache/Atomic', 'Cache/Signal', 'Cache/Lock']) {
        const bought = await request('POST', `${base}/api/v1/OneStock/${path}/Buy`);
        expect(bought.status).toBe(200);
        expect(bought.text).toMatch(/^Bought successfully\. Remaining stock: \d+$/);
      }
      await waitFor(async () => (await request<{ id: string; stock: number }>('GET', `${base}/api/v1/OneStock/Cache/Atomic/Peek`)).body.stock < 15000, {
        timeoutMs: 5000,
        message: `${replica.id} sees the sales`,
      });
      const fast = await request('POST', `${base}/api/v1/ManyStock/Cache/BuyFastAtomic/NVDA`);
      expect(fast.status).toBe(200);
      expect(fast.body).toBe(true);
      expect((await request('POST', `${base}/api/v1/ManyStock/Cache/BuyFastAtomic/NOPE`)).status).toBe(404);
      expect((await request('GET', `${base}/api/v1/ManyStock/Cache/PeekFastAtomic/NVDA`)).body).toEqual({ id: 'NVDA', remainingStock: expect.any(Number), soldStock: expect.any(Number) });
      expect((await request('GET', `${base}/healthz`)).status).toBe(200);
      expect((await request<{ openapi: string }>('GET', `${base}/v2/openapi.json`)).body.openapi).toMatch(/^3\.1/);
    }
    // Every OneStock buy above was decided by the primary: 3 replicas × 1 unit on each lane.
    const primary = await singlePrimary();
    expect((await request('GET', `${urlOf(primary)}/api/v1/OneStock/Cache/Lock/Peek`)).body).toEqual({ id: 'STOCK', stock: 15000 - 3 });
  });

  test('exactly one primary is elected, and it holds the lease under its own STOCK_HOST_ID', async () => {
    const primary = await singlePrimary();
    expect(await mongoLeaseHolder(mongoUrl, DATABASE)).toBe(primary.id);
    expect(sampleOf(await metricsOf(primary), 'superstock_epoch')).toBeGreaterThan(0);
  });

  test('stop (SIGTERM), then kill (SIGKILL) the primary container under load: another takes over; no acknowledged sale is lost', async () => {
    const STOCK = 400;
    const SKU = 'IMAGE';
    const first = await singlePrimary();
    expect((await putSku(urlOf(first), ADMIN_TOKEN, SKU, STOCK)).status).toBeLessThan(300);

    const acked = new Map<string, string>();
    const unanswered: Array<{ lane: string; key: string }> = [];
    let stop = false;
    let answered = 0;
    const client = async (n: number) => {
      for (let sent = 0; !stop && sent < 5000; sent++) {
        const lane = LANES[n % LANES.length] as string;
        const targets = live();
        const replica = targets[(n + sent) % Math.max(1, targets.length)];
        if (!replica) continue;
        const key = randomUUID();
        let answer: Answer<BuyBody & ErrorBody> | null;
        try {
          answer = await buy(urlOf(replica), lane, SKU, 1, key);
        } catch {
          answer = null;
        }
        if (answer !== null) answered++;
        if (answer?.status === 200) acked.set(key, lane);
        // No answer, a refusal (503) or an unknown outcome (504): the key's retry below settles it.
        else if (answer === null || answer.status === 503 || answer.status === 504) unanswered.push({ lane, key });
        if (answer?.status !== 200) await new Promise((r) => setTimeout(r, 100));
      }
    };
    const load = Promise.all(Array.from({ length: 20 }, (_, n) => client(n)));

    for (const fault of ['stop', 'kill'] as const) {
      const before = answered;
      await waitFor(() => answered >= before + 50, { timeoutMs: 20_000, message: `traffic flowing before ${fault}` });
      const primary = await singlePrimary();
      primary.up = false;
      await (fault === 'stop' ? primary.container.stop() : primary.container.kill());
      const next = await singlePrimary(15_000);
      expect(next).not.toBe(primary);
      expect(await mongoLeaseHolder(mongoUrl, DATABASE)).toBe(next.id);
      await primary.container.restart();
      primary.up = true;
      await untilReady(primary);
    }
    stop = true;
    await load;

    const primary = await singlePrimary();
    for (let next = unanswered.pop(); next !== undefined; next = unanswered.pop()) {
      const { lane, key } = next;
      await waitFor(
        async () => {
          const answer = await buy(urlOf(primary), lane, SKU, 1, key);
          if (answer.status === 200) acked.set(key, lane);
          return answer.status === 200 || (answer.status === 409 && answer.body.error.code !== 'idempotency_key_in_use');
        },
        { timeoutMs: 10_000, message: `final answer for ${key}` },
      );
    }

    const batches = await readLedger(mongoUrl, DATABASE);
    for (const lane of LANES) {
      const ackedHere = [...acked.entries()].filter(([, l]) => l === lane).map(([key]) => key);
      const level = (await peek(urlOf(primary), lane, SKU)).body;
      expect(ackedHere.length).toBeGreaterThan(0);
      expectLaneAccounting({ lane, sku: SKU, stock: STOCK, level, ackedKeys: ackedHere, batches });
    }
  }, 180_000);
});
