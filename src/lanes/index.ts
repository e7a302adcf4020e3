/**
 * Assembles the five lanes for one thread from the configuration: the three memory lanes over
 * the shared table, and the `db` and `redis` lanes over their own clients — or a clear 503
 * stand-in when their URL is not set.
 */
import type { Db } from 'mongodb';
import type { Config, LaneName, MemoryLaneName } from '../config.js';
import type { DependencyCheck } from '../http/probe-routes.js';
import type { SharedStock } from '../memory/shared-stock.js';
import { createMongoClient } from '../mongo.js';
import { AtomicLane } from './atomic-lane.js';
import { DbLane } from './db-lane.js';
import type { Lane } from './lane.js';
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
 */
export function buildLanes(
  config: Config,
  stock: SharedStock,
  signal: SignalChannel,
  appName: string,
  wrapMemory?: (lane: MemoryLane, db: Db) => Lane,
): LaneSet {
  const mongo = config.mongoUrl ? createMongoClient(config.mongoUrl, config.dependencyTimeoutMs, appName) : null;
  const mongoDb = mongo ? mongo.db(config.mongoDb) : null;
  const db = mongoDb ? new DbLane(mongoDb, config.dependencyTimeoutMs, config.dbLaneMode, config.queueLimit) : null;
  const redis = config.redisUrl ? new RedisLane({ url: config.redisUrl, timeoutMs: config.dependencyTimeoutMs, idempotencyTtlMs: config.idempotencyTtlMs }) : null;
  const dependencies: DependencyCheck[] = [];
  const seeded = (name: 'mongo' | 'redis') => {
    if (!stock.isSeeded(name)) throw new Error(`seed SKUs not yet written to ${name}`);
  };
  if (db) dependencies.push({ name: 'mongo', check: () => db.checkReady().then(() => seeded('mongo')) });
  if (redis) dependencies.push({ name: 'redis', check: () => redis.checkReady().then(() => seeded('redis')) });
  const memory = { atomic: new AtomicLane('atomic', stock), signal: new SignalLane(stock, signal), lock: new LockLane('lock', stock) };
  const wrap = (lane: MemoryLane): Lane => (wrapMemory && mongoDb ? wrapMemory(lane, mongoDb) : lane);
  return {
    lanes: {
      db: db ?? new UnconfiguredLane('db', 'MONGO_URL'),
      atomic: wrap(memory.atomic),
      signal: wrap(memory.signal),
      lock: wrap(memory.lock),
      redis: redis ?? new UnconfiguredLane('redis', 'REDIS_URL'),
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
