/**
 * Assembles the five lanes for one thread from the configuration: the three memory lanes over
 * the shared table, and the `db` and `redis` lanes over their own clients — or a clear 503
 * stand-in when their URL is not set. Until the main thread has written the seed SKUs into a
 * store (it retries until the store is there), that store's lane answers 503: a missing
 * dependency is never a 404.
 */
import type { Db } from 'mongodb';
import type { Config, LaneName, MemoryLaneName } from '../config.js';
import type { DependencyCheck } from './dependency-check.js';
import type { SharedStock } from '../memory/shared-stock.js';
import { DependencyUnavailableError } from '../errors.js';
import { createMongoClient, MongoConnection } from '../mongo.js';
import { AtomicLane } from './atomic-lane.js';
import { DbLane } from './db-lane.js';
import type { BuyOutcome, Lane, StockLevel } from './lane.js';
import type { MemoryLane } from './memory-lane.js';
import { LockLane } from './lock-lane.js';
import { RedisLane } from './redis-lane.js';
import { SignalLane, type SignalChannel } from './signal-lane.js';
import { UnconfiguredLane } from './unconfigured-lane.js';

export interface LaneSet {
  readonly lanes: Readonly<Record<LaneName, Lane>>;
  /** The in-memory lanes themselves (what `lanes` holds for them may wrap them). */
  readonly memory: Readonly<Record<MemoryLaneName, MemoryLane>>;
  readonly mongoDb: Db | null;
  readonly db: DbLane | null;
  readonly redis: RedisLane | null;
  readonly dependencies: readonly DependencyCheck[];
  close(): Promise<void>;
}

/**
 * @param wrapMemory lets the caller put durability around the in-memory lanes (it gets the
 *   MongoDB handle, since the ledger lives there).
 * @param onMongoRestart told when the MongoDB client had to be connected afresh (src/mongo.ts).
 */
export function buildLanes(
  config: Config,
  stock: SharedStock,
  signal: SignalChannel,
  appName: string,
  wrapMemory?: (lane: MemoryLane, db: Db) => Lane,
  onMongoRestart?: (reason: string) => void,
): LaneSet {
  const mongo = config.mongoUrl ? new MongoConnection(createMongoClient(config.mongoUrl, config.dependencyTimeoutMs, appName, config.mongoWriteConcern), onMongoRestart) : null;
  const mongoDb = mongo ? mongo.db(config.mongoDb) : null;
  const db = mongoDb ? new DbLane(mongoDb, config.dependencyTimeoutMs, config.dbLaneMode, config.queueLimit, config.idempotencyTtlMs) : null;
  const redis = config.redisUrl ? new RedisLane({ url: config.redisUrl, clusterName: config.clusterName, timeoutMs: config.dependencyTimeoutMs, idempotencyTtlMs: config.idempotencyTtlMs }) : null;
  const dependencies: DependencyCheck[] = [];
  // A 503 like any missing dependency: admin routes check these before changing anything.
  const seeded = (name: 'mongo' | 'redis') => {
    if (!stock.isSeeded(name)) throw new DependencyUnavailableError(name, 'seed SKUs not yet written');
  };
  if (db) dependencies.push({ name: 'mongo', check: () => db.checkReady().then(() => seeded('mongo')) });
  if (redis) dependencies.push({ name: 'redis', check: () => redis.checkReady().then(() => seeded('redis')) });
  const memory = { atomic: new AtomicLane('atomic', stock), signal: new SignalLane(stock, signal), lock: new LockLane('lock', stock) };
  const wrap = (lane: MemoryLane): Lane => (wrapMemory && mongoDb ? wrapMemory(lane, mongoDb) : lane);
  return {
    lanes: {
      db: db ? new SeededGate(db, 'mongo', stock) : new UnconfiguredLane('db', 'MONGO_URL'),
      atomic: wrap(memory.atomic),
      signal: wrap(memory.signal),
      lock: wrap(memory.lock),
      redis: redis ? new SeededGate(redis, 'redis', stock) : new UnconfiguredLane('redis', 'REDIS_URL'),
    },
    memory,
    mongoDb,
    db,
    redis,
    dependencies,
    async close() {
      await redis?.close();
      await mongo?.close();
    },
  };
}

/**
 * A store's lane as the HTTP routes see it: while the seed SKUs are not (or no longer) written to
 * the store — it is not up yet, or came back empty — every call answers 503, not "unknown SKU".
 */
class SeededGate implements Lane {
  readonly name: LaneName;

  constructor(
    private readonly inner: Lane,
    private readonly dependency: 'mongo' | 'redis',
    private readonly stock: SharedStock,
  ) {
    this.name = inner.name;
  }

  private check(): void {
    if (!this.stock.isSeeded(this.dependency)) throw new DependencyUnavailableError(this.dependency, 'not reached yet (seed SKUs not written)');
  }

  async tryBuy(sku: string, quantity: number, key: string | null = null): Promise<BuyOutcome> {
    this.check();
    return this.inner.tryBuy(sku, quantity, key);
  }

  async peek(sku: string): Promise<StockLevel | null> {
    this.check();
    return this.inner.peek(sku);
  }

  async put(sku: string, stock: number): Promise<boolean> {
    this.check();
    return this.inner.put(sku, stock);
  }

  /** A bulk load's chunk in one round trip (the inner lane's bulk write), not one call per SKU. */
  async putMany(entries: ReadonlyArray<readonly [sku: string, stock: number]>, keepExisting: boolean): Promise<void> {
    this.check();
    if (this.inner.putMany) return this.inner.putMany(entries, keepExisting);
    await Promise.all(entries.map(([sku, stock]) => this.inner.put(sku, stock)));
  }

  async restock(sku: string, quantity: number, key: string | null = null): Promise<StockLevel | null> {
    this.check();
    return this.inner.restock(sku, quantity, key);
  }

  async resetAll(): Promise<void> {
    this.check();
    return this.inner.resetAll();
  }

  checkReady(): Promise<void> {
    return this.inner.checkReady();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
