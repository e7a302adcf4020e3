/**
 * The main thread: owns the shared stock and everything that must be one per replica — the
 * signal lane's single owner, the idempotency registry, seeding of the stores, the cluster
 * controller (election, rebuild, replication), the merged /metrics endpoint — and supervises the
 * worker threads that serve HTTP, replacing any that dies. On SIGTERM it steps down, drains the
 * workers and exits.
 */
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { MessageChannel, Worker } from 'node:worker_threads';
import { ClusterController } from './cluster/controller.js';
import { AllotmentController } from './cluster/allotments/allotment-controller.js';
import type { AllotmentAnswer, AllotmentRequest } from './cluster/allotments/protocol.js';
import { MEMORY_LANES, type Config, type LaneName } from './config.js';
import { readSeedFile, readSeedFileInChunks } from './bulk/seed-file.js';
import { IdempotencyRegistry } from './idempotency.js';
import { buildLanes, type LaneSet } from './lanes/index.js';
import type { DbLane } from './lanes/db-lane.js';
import type { StockLevel } from './lanes/lane.js';
import type { RedisLane } from './lanes/redis-lane.js';
import { OP_SET, applyStockOp } from './lanes/stock-ops.js';
import { SignalOwner } from './lanes/signal-lane.js';
import { createLogger, type Logger } from './logger.js';
import { STRIDE, SharedStock } from './memory/shared-stock.js';
import { SupervisorMetrics, type StockSource } from './metrics.js';
import { answerAsks, type IdempotencyAsk } from './worker/idempotency-batch.js';
import type { WorkerApi, WorkerData } from './worker/protocol.js';
import { RpcPeer } from './worker/rpc.js';

/**
 * Each worker's V8 young generation, capped. Left to itself V8 grows it to its maximum (tens of
 * MiB per isolate) under any sustained load and keeps it resident; a worker's live set between
 * scavenges is only its requests in flight, so a small one costs a few more, cheap scavenges and
 * saves tens of MiB per worker (a million SKUs loaded in bulk: 294 -> under 250 MiB resident).
 *
 * Twice that with DURABILITY=sync: there a sale's request, answer and promise stay alive for the
 * group commit's round trip, so every scavenge that falls inside it copies them (and promotes what
 * survives two). Scavenging half as often halves that copying: at 256 connections the workers'
 * GC pauses went from 3.3–4.3 to 2.2–2.8 µs per buy, the replica's resident set within its
 * run-to-run spread (bench/ANALYSIS.md, "Young generation"). `NODE_OPTIONS=--max-semi-space-size`
 * overrides either.
 */
const WORKER_YOUNG_GENERATION_MB = { none: 12, sync: 24 } as const;
const WORKER_URL = new URL('./worker/worker-main.js', import.meta.url);
const SEED_RETRY_MS = 1000;
const SNAPSHOT_TIMEOUT_MS = 2000;
const SCRAPE_STORE_BUDGET_MS = 500;

interface WorkerHandle {
  readonly thread: Worker;
  readonly rpc: RpcPeer<WorkerApi>;
}

/** A port this replica must listen on is held by another process (EADDRINUSE). */
export class PortInUseError extends Error {
  constructor(
    readonly port: number,
    readonly variable: 'PORT' | 'METRICS_PORT',
  ) {
    super(`port ${port} (${variable}) is already in use by another process: stop it, or set ${variable} to a free port`);
    this.name = 'PortInUseError';
  }
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export class Supervisor {
  private readonly log: Logger;
  private readonly stock: SharedStock;
  private readonly owner: SignalOwner;
  private readonly laneSet: LaneSet;
  private readonly idempotency: IdempotencyRegistry;
  private readonly metrics: SupervisorMetrics;
  private readonly cluster: ClusterController | AllotmentController;
  private primaryUrl: string | null = null;
  private readonly workers = new Map<number, WorkerHandle>();
  private metricsServer: Server | null = null;
  private stopping = false;

  constructor(private readonly config: Config) {
    this.log = createLogger(config.logLevel, { hostId: config.hostId, thread: 'main' });
    this.stock = SharedStock.allocate(config.maxSkus);
    for (const sku of config.seedSkus) this.stock.ensure(sku, config.initialStock);
    if (config.seedFile !== null) this.loadSeedFile(config.seedFile);
    this.owner = new SignalOwner(this.stock);
    this.laneSet = buildLanes(config, this.stock, this.owner.localChannel(), `superstock-${config.hostId}-main`, undefined, (reason) =>
      this.log.warn({ reason }, 'MongoDB client connected afresh'),
    );
    this.idempotency = new IdempotencyRegistry(config.idempotencyTtlMs, config.idempotencyMaxKeys);
    this.metrics = new SupervisorMetrics({ stock: this.stockSource(), metricsMaxSkus: config.metricsMaxSkus, workers: () => this.workers.size });
    const mongoDb = this.laneSet.mongoDb;
    this.cluster = config.clusterMode === 'allotments' && mongoDb
      ? new AllotmentController({ config, stock: this.stock, lanes: this.laneSet.memory, db: mongoDb, idempotency: this.idempotency, registry: this.metrics.registry, log: this.log })
      : new ClusterController({
      config,
      stock: this.stock,
      db: this.laneSet.mongoDb,
      idempotency: this.idempotency,
      registry: this.metrics.registry,
      log: this.log,
      onPrimaryUrl: (url) => {
        this.primaryUrl = url;
        for (const { rpc } of this.workers.values()) void rpc.call('setPrimary', url).catch(() => undefined);
      },
    });
  }

  async start(): Promise<void> {
    // The metrics port first: a taken port stops the replica before it seeds, serves or stands
    // for election.
    this.metricsServer = await this.serveMetrics();
    await this.assertPortFree();
    this.seedStores();
    await Promise.all(Array.from({ length: this.config.workers }, (_, i) => this.spawn(i)));
    await this.cluster.start();
    this.log.info(
      { port: this.config.port, metricsPort: this.config.metricsPort, workers: this.config.workers, mongo: !!this.config.mongoUrl, redis: !!this.config.redisUrl },
      'SuperStock is listening',
    );
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info('shutting down: stepping down, draining workers');
    this.metricsServer?.close();
    // Releasing the lease first lets another replica take over while this one drains. The release
    // may take as long as a renewal may (the electors bound it by the renew deadline).
    const releaseMs = Math.max(this.config.dependencyTimeoutMs, this.config.renewDeadlineMs) + 1000;
    await withTimeout(this.cluster.stop(), releaseMs, 'stepping down').catch((error: unknown) =>
      this.log.warn({ err: error }, 'could not step down cleanly; the lease will expire instead'),
    );
    await Promise.allSettled(
      [...this.workers.values()].map(async ({ thread, rpc }) => {
        await withTimeout(rpc.call('shutdown'), this.config.shutdownTimeoutMs + 2000, 'worker shutdown').catch((error: unknown) =>
          this.log.warn({ err: error }, 'worker did not drain in time'),
        );
        await thread.terminate();
      }),
    );
    await this.laneSet.close();
    this.log.info('stopped');
  }

  /** Start worker `index` and resolve once it listens. A worker that dies unexpectedly is replaced. */
  private spawn(index: number): Promise<void> {
    const { port1, port2 } = new MessageChannel();
    this.owner.serve(port1);
    const data: WorkerData = {
      index,
      config: this.config,
      buffer: this.stock.buffer,
      capacity: this.stock.capacity,
      signalPort: port2,
      clusterBuffer: this.cluster.state.buffer,
      clusterOrigin: this.cluster.state.origin,
    };
    const thread = new Worker(WORKER_URL, { workerData: data, transferList: [port2], resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB[this.config.durability] } });
    // A worker that cannot bind the HTTP port fails the start; replacing it would only fail again.
    let cannotListen = false;
    return new Promise((resolve, reject) => {
      const rpc: RpcPeer<WorkerApi> = new RpcPeer<WorkerApi>(thread, {
        listening: () => {
          void rpc.call('setPrimary', this.primaryUrl).catch(() => undefined);
          resolve();
        },
        idempotencyBatch: (asks: IdempotencyAsk[]) => answerAsks(this.idempotency, asks),
        allotment: (request: AllotmentRequest): Promise<AllotmentAnswer> =>
          this.cluster instanceof AllotmentController ? this.cluster.handle(request) : Promise.resolve({ kind: 'error', code: 'internal', message: 'not in allotments mode' }),
        cannotListen: (_index: number, code: string) => {
          cannotListen = true;
          reject(code === 'EADDRINUSE' ? new PortInUseError(this.config.port, 'PORT') : new Error(`worker ${index} cannot listen on port ${this.config.port}: ${code}`));
        },
      });
      this.workers.set(index, { thread, rpc });
      thread.on('error', (error) => {
        this.log.error({ err: error, worker: index }, 'worker failed');
        reject(error);
      });
      thread.on('exit', (code) => {
        rpc.abandon('worker exited');
        port1.close();
        // Its sales in flight will never be settled by it; an admin change must not wait for them.
        this.cluster.state.clearSales(index);
        if (this.workers.get(index)?.thread === thread) this.workers.delete(index);
        // A worker that died mid admin change must not hold the catalogue forever.
        this.stock.unlockAdmin(index + 1);
        if (this.stopping || cannotListen) return;
        this.log.error({ worker: index, code }, 'worker exited unexpectedly; starting a new one');
        this.spawn(index).catch((error: unknown) => this.log.error({ err: error, worker: index }, 'could not restart worker'));
      });
    });
  }

  /**
   * SEED_FILE into the shared table, before any worker exists (so plain writes are safe). A SKU
   * that is also in SEED_SKUS takes the file's stock. Throws SeedFileError on a bad file.
   */
  private loadSeedFile(file: string): void {
    const started = performance.now();
    const count = readSeedFile(file, this.config.maxSkus, (sku, stock) => {
      const { slot, created } = this.stock.ensure(sku, stock);
      if (!created) for (const lane of MEMORY_LANES) applyStockOp(this.stock.words(lane), slot * STRIDE, OP_SET, stock);
    });
    this.log.info({ file, skus: count, ms: Math.round(performance.now() - started) }, 'SEED_FILE loaded');
  }

  /**
   * Make sure the seed SKUs exist in MongoDB and Redis, without touching existing counts (a
   * restart must not refill a lane). Retries in the background while a store is down; /readyz
   * and the store's lane answer 503 until it is done. A Redis connection that drops may come back
   * to an empty Redis (no persistence), so each reconnect seeds again before the lane serves.
   */
  private seedStores(): void {
    const { seedFile } = this.config;
    const seeding = new Set<'mongo' | 'redis'>();
    const again = new Set<'mongo' | 'redis'>();
    const seedOne = async (name: 'mongo' | 'redis', lane: DbLane | RedisLane, seed: (sku: string, stock: number) => Promise<boolean>): Promise<void> => {
      if (seeding.has(name)) {
        again.add(name); // the store may have been lost since this round wrote: one more round
        return;
      }
      seeding.add(name);
      try {
        while (!this.stopping) {
          try {
            // The file first: a SKU in both lists gets the file's stock, as in memory.
            if (seedFile !== null) await readSeedFileInChunks(seedFile, this.config.maxSkus, (entries) => lane.putMany(entries, true));
            for (const sku of this.config.seedSkus) await seed(sku, this.config.initialStock);
            this.stock.markSeeded(name);
            this.log.info({ dependency: name }, 'seed SKUs present');
            return;
          } catch (error) {
            this.log.info({ dependency: name, reason: error instanceof Error ? error.message : String(error) }, 'cannot seed yet; retrying');
            await new Promise((r) => setTimeout(r, SEED_RETRY_MS));
          }
        }
      } finally {
        seeding.delete(name);
        if (again.delete(name) && !this.stopping) void seedOne(name, lane, seed);
      }
    };
    const { db, redis } = this.laneSet;
    if (db) void seedOne('mongo', db, (sku, stock) => db.seed(sku, stock));
    if (redis) {
      const seedRedis = () => seedOne('redis', redis, (sku, stock) => redis.seed(sku, stock));
      redis.onConnectionChange((up) => {
        if (!up) this.stock.markUnseeded('redis');
        else void seedRedis();
      });
      void seedRedis();
    }
  }

  private stockSource(): StockSource {
    return {
      skus: (limit) => {
        const count = Math.min(this.stock.count, limit);
        return Array.from({ length: count }, (_, slot) => this.stock.skuAt(slot));
      },
      levels: async (lane: LaneName, skus) => {
        const levels = new Map<string, StockLevel>();
        // A scrape must not hang on a store that hangs: give it a short, fixed budget.
        const budget = Math.min(this.config.dependencyTimeoutMs, SCRAPE_STORE_BUDGET_MS);
        const results = await Promise.allSettled(skus.map(async (sku) => withTimeout(Promise.resolve(this.laneSet.lanes[lane].peek(sku)), budget, 'stock read')));
        results.forEach((result, i) => {
          const sku = skus[i];
          if (sku !== undefined && result.status === 'fulfilled' && result.value) levels.set(sku, result.value);
        });
        return levels;
      },
    };
  }

  /**
   * The workers share PORT through SO_REUSEPORT, which shares it as gladly with another process of
   * the same user: a replica started on the port of one still running would silently take part of
   * its connections. One bind without that option first makes it a PortInUseError instead.
   */
  private assertPortFree(): Promise<void> {
    if (this.config.port === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const probe = createTcpServer();
      probe.once('error', (error) => reject(errorCode(error) === 'EADDRINUSE' ? new PortInUseError(this.config.port, 'PORT') : error));
      probe.listen({ port: this.config.port, host: this.config.host, exclusive: true }, () => probe.close(() => resolve()));
    });
  }

  private serveMetrics(): Promise<Server> {
    const server = createServer(async (req, res) => {
      if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
        return;
      }
      try {
        const snapshots = await Promise.all([...this.workers.values()].map(({ rpc }) => withTimeout(rpc.call('snapshot'), SNAPSHOT_TIMEOUT_MS, 'metrics snapshot')));
        const { contentType, body } = await this.metrics.render(snapshots);
        res.writeHead(200, { 'content-type': contentType }).end(body);
      } catch (error) {
        this.log.error({ err: error }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      }
    });
    return new Promise((resolve, reject) => {
      server.once('error', (error) => reject(errorCode(error) === 'EADDRINUSE' ? new PortInUseError(this.config.metricsPort, 'METRICS_PORT') : error));
      server.listen(this.config.metricsPort, this.config.host, () => resolve(server));
    });
  }
}
