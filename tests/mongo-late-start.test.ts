/**
 * MongoDB that comes up after the replica — the usual order when a cluster starts, and what the
 * chart on the local Kubernetes node showed: the driver closes its topology when the first server
 * selection times out and then fails every later operation with "Topology is closed", so the
 * replica stayed unready for ever. It must become ready by itself once MongoDB is there.
 * Budget: about 15 s.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './harness/ports.js';
import { spawnServer, untilAccepting } from './harness/servers.mjs';
import { startService, type ServiceHandle } from './harness/service.js';
import { waitFor } from './harness/wait.js';
import { buy } from './support/http.js';

let wire: ChildProcess | null = null;
let service: ServiceHandle | null = null;
const dir = mkdtempSync(join(tmpdir(), 'superstock-mongo-late-'));

afterAll(async () => {
  await service?.stop();
  wire?.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

test('a replica started before MongoDB becomes ready once MongoDB is up, and sells', async () => {
  const [port, httpPort] = [await freePort(), await freePort()];
  const starting = startService({ PORT: String(httpPort), MONGO_URL: `mongodb://127.0.0.1:${port}/`, MONGO_DB: `late_${port}`, ELECTION: 'mongo', REDIS_URL: '' });
  starting.catch(() => undefined); // judged below, once MongoDB is up
  // Until the replica has tried MongoDB and failed at least once, starting MongoDB proves nothing.
  await waitFor(
    async () => {
      const answer = await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => null);
      return answer !== null && answer.status === 503 && JSON.stringify(await answer.json()).includes('mongo');
    },
    { timeoutMs: 15_000, intervalMs: 100, message: 'the replica reports MongoDB unavailable' },
  );
  const started = spawnServer('mongo', port, dir);
  wire = started.child;
  await untilAccepting(port, wire);
  service = await starting;
  expect((await buy(service.url, 'db', 'NVDA', 1)).status).toBe(200);
  expect((await buy(service.url, 'atomic', 'NVDA', 1)).status).toBe(200);
}, 60_000);
