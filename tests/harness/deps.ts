/**
 * Private instances of the real dependencies — redis-server (Debian) and a MongoDB wire-protocol
 * server (mongo-java-server, fetched by scripts/setup.sh) — for tests that stop, pause or
 * restart one. Each gets a free port; a restart reuses it. Neither keeps data across a restart
 * (no Redis persistence; the wire server is in-memory), as a crashed, non-durable store would —
 * unless a Redis is asked to be persistent (an append-only file synced on every write), as a
 * production Redis holding the redis lane's stock would be.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';
import { REPO_ROOT, spawnServer, untilAccepting } from './servers.mjs';

export { REPO_ROOT };

export interface Dependency {
  readonly url: string;
  readonly port: number;
  /** Stop (SIGTERM) and wait for the exit. */
  stop(): Promise<void>;
  /** Start again on the same port (empty). */
  start(): Promise<void>;
  /** SIGSTOP / SIGCONT: the server keeps its connections but answers nothing. */
  pause(): void;
  resume(): void;
  /** Redis only: run one command on this instance. */
  command(...args: string[]): Promise<unknown>;
}

class ManagedServer implements Dependency {
  private child: ChildProcess | null = null;
  readonly url: string;

  constructor(
    private readonly kind: 'redis' | 'mongo',
    readonly port: number,
    private readonly dir: string,
    private readonly persistent = false,
  ) {
    this.url = kind === 'redis' ? `redis://127.0.0.1:${port}` : `mongodb://127.0.0.1:${port}/`;
  }

  async start(): Promise<void> {
    const { child } = spawnServer(this.kind, this.port, this.dir, this.persistent);
    this.child = child;
    await untilAccepting(this.port, child);
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    await exited;
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  async command(...args: string[]): Promise<unknown> {
    const client = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await client.connect();
      const [name, ...rest] = args;
      return await client.call(name as string, ...rest);
    } finally {
      client.disconnect();
    }
  }
}

const started: ManagedServer[] = [];

async function privateServer(kind: 'redis' | 'mongo', startNow: boolean, persistent = false): Promise<Dependency> {
  const server = new ManagedServer(kind, await freePort(), mkdtempSync(join(tmpdir(), `superstock-${kind}-`)), persistent);
  started.push(server);
  if (startNow) await server.start();
  return server;
}

export const startRedis = (options: { persistent?: boolean } = {}): Promise<Dependency> => privateServer('redis', true, options.persistent);
export const startMongo = (): Promise<Dependency> => privateServer('mongo', true);
/** A port and URL for a server not started yet (nothing listens there until `start()`). */
export const reserveRedis = (options: { persistent?: boolean } = {}): Promise<Dependency> => privateServer('redis', false, options.persistent);
export const reserveMongo = (): Promise<Dependency> => privateServer('mongo', false);

/** Stop and remove every private instance this test file started. */
export async function stopAll(): Promise<void> {
  await Promise.all(started.splice(0).map((s) => s.dispose()));
}
