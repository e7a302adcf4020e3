/**
 * Three real replicas on this machine, as `make cluster` runs them: the MongoDB lease elects the
 * primary, Redis carries the stock events, each replica advertises its own URL for forwarding.
 */
import { randomBytes } from 'node:crypto';
import { freePort } from '../harness/ports.js';
import { startService, waitFor, type ServiceHandle } from '../harness/service.js';
import { sampleOf } from './exposition.js';
import { TEST_ADMIN_TOKEN } from './local-app.js';

export interface Replica {
  readonly id: string;
  readonly port: number;
  readonly metricsPort: number;
  service: ServiceHandle | null;
}

export class TestCluster {
  readonly replicas: Replica[];
  readonly database = `cluster_${randomBytes(4).toString('hex')}`;

  private constructor(
    replicas: Replica[],
    private readonly env: Record<string, string>,
    private readonly envFor: (index: number) => Record<string, string>,
    private readonly until: 'ready' | 'alive',
    private readonly startTimeoutMs: number,
  ) {
    this.replicas = replicas;
  }

  /**
   * @param envFor per-replica overrides (an `STOCK_HOST_ID` there also names the replica).
   * @param until `alive` when the dependencies are not up yet, so the replicas cannot be ready.
   * @param startTimeoutMs how long each replica may take to get there (three replicas starting at
   *   once on two busy cores, each electing, seeding and rebuilding, can take longer than one).
   */
  static async start(
    size: number,
    env: Record<string, string> = {},
    envFor: (index: number) => Record<string, string> = () => ({}),
    until: 'ready' | 'alive' = 'ready',
    startTimeoutMs = 30_000,
  ): Promise<TestCluster> {
    const replicas: Replica[] = [];
    for (let i = 0; i < size; i++) {
      replicas.push({ id: envFor(i).STOCK_HOST_ID ?? `replica-${i}`, port: await freePort(), metricsPort: await freePort(), service: null });
    }
    const cluster = new TestCluster(replicas, env, envFor, until, startTimeoutMs);
    const started = await Promise.allSettled(replicas.map((r) => cluster.startReplica(r)));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      // Leave nothing running behind a failed start.
      await cluster.stop();
      throw failed.reason;
    }
    return cluster;
  }

  async startReplica(replica: Replica): Promise<ServiceHandle> {
    replica.service = await startService({
      WORKERS: '2',
      PORT: String(replica.port),
      METRICS_PORT: String(replica.metricsPort),
      HOST: '127.0.0.1',
      STOCK_HOST_ID: replica.id,
      ADVERTISE_URL: `http://127.0.0.1:${replica.port}`,
      ELECTION: 'mongo',
      MONGO_DB: this.database,
      ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      ...this.env,
      ...this.envFor(this.replicas.indexOf(replica)),
    }, { until: this.until, startTimeoutMs: this.startTimeoutMs });
    return replica.service;
  }

  url(replica: Replica): string {
    return `http://127.0.0.1:${replica.port}`;
  }

  live(): Replica[] {
    return this.replicas.filter((r) => r.service !== null);
  }

  /** The replicas whose metrics say they may sell now (read from each live one). */
  async primaries(): Promise<Replica[]> {
    const roles = await Promise.all(this.live().map(async (r) => ((await roleOf(r)) === 'primary' ? r : null)));
    return roles.filter((r): r is Replica => r !== null);
  }

  async waitForSinglePrimary(timeoutMs = 15_000): Promise<Replica> {
    let found: Replica | null = null;
    await waitFor(
      async () => {
        const primaries = await this.primaries();
        found = primaries.length === 1 ? (primaries[0] ?? null) : null;
        return found !== null;
      },
      { timeoutMs, intervalMs: 50, message: 'exactly one primary' },
    );
    if (!found) throw new Error('unreachable');
    return found;
  }

  /** Allotments mode: every live replica says it may sell; resolves with the first of them. */
  async waitForSellers(timeoutMs = 15_000): Promise<Replica> {
    await waitFor(async () => (await Promise.all(this.live().map(roleOf))).every((role) => role === 'primary'), { timeoutMs, intervalMs: 50, message: 'every live replica selling' });
    const first = this.live()[0];
    if (!first) throw new Error('no live replica');
    return first;
  }

  async stop(): Promise<void> {
    await Promise.all(this.live().map(async (r) => {
      await r.service?.stop().catch(() => undefined);
      r.service = null;
    }));
  }
}

export async function metricsText(replica: Replica): Promise<string> {
  return (await fetch(`http://127.0.0.1:${replica.metricsPort}/metrics`)).text();
}

export async function roleOf(replica: Replica): Promise<'primary' | 'secondary' | 'unreachable'> {
  try {
    return sampleOf(await metricsText(replica), 'superstock_role{role="primary"}') === 1 ? 'primary' : 'secondary';
  } catch {
    return 'unreachable';
  }
}
