/**
 * The `redis` lane: the usual industry answer and the baseline to beat. Each SKU is a Redis hash;
 * a Lua script checks and decrements in one step, which Redis runs atomically, and records the
 * buyer's idempotency key with the answer in the same step. Commands fail at
 * once while Redis is unreachable (no offline queue) and time out after DEPENDENCY_TIMEOUT_MS,
 * so an outage is a fast 503, never a hang.
 *
 * Every key lives under `superstock:<CLUSTER_NAME>:redis-lane:`, like the cluster's sync channel
 * and snapshot: two deployments sharing one Redis keep their own stock.
 */
import { Redis } from 'ioredis';
import { defineStockCommands } from '../commands/index.js';
import { MAX_STOCK } from '../config.js';
import { DependencyUnavailableError, OutcomeUnknownError, ServiceError, StockLimitError } from '../errors.js';
import { UNKNOWN_SKU, type BuyOutcome, type Lane, type StockLevel } from './lane.js';

/** Commands per pipeline in a bulk put. */
const REDIS_PIPELINE = 250;

/** The Redis keys of one cluster's redis lane. */
interface RedisLaneKeys {
  /** + SKU: the SKU's hash (remaining, sold, initial). */
  readonly sku: string;
  /** The set of every SKU's name (what a reset walks). */
  readonly skus: string;
  /** + a buyer's key: the answer recorded with the sale. */
  readonly idempotency: string;
  /** + an admin's key: a keyed restock's record, kept as long as a buyer's key. */
  readonly restock: string;
  /** KEYS[2] of buy-2.lua for a request without a key: named, never written. */
  readonly noKey: string;
}

function redisLaneKeys(clusterName: string): RedisLaneKeys {
  const base = `superstock:${clusterName}:redis-lane:`;
  return { sku: `${base}sku:`, skus: `${base}skus`, idempotency: `${base}idempotency:`, restock: `${base}restock:`, noKey: `${base}no-key` };
}

export interface RedisLaneOptions {
  readonly url: string;
  /** CLUSTER_NAME: whose keys these are. */
  readonly clusterName: string;
  readonly timeoutMs: number;
  /** How long a buyer's idempotency key and answer are kept in Redis. */
  readonly idempotencyTtlMs: number;
  readonly onStatus?: (status: string) => void;
}

/**
 * @param autoPipelining send every command issued in one event-loop turn as one pipeline (one
 *   write, one read for all of them) — what keeps the redis lane a strong baseline under load.
 */
export function createRedisClient(url: string, timeoutMs: number, autoPipelining = false): Redis {
  return new Redis(url, {
    enableAutoPipelining: autoPipelining,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: timeoutMs,
    connectTimeout: timeoutMs,
    // Keep trying in the background; requests meanwhile fail fast with 503.
    retryStrategy: (attempt) => Math.min(100 * attempt, 1000),
    lazyConnect: false,
  });
}

export class RedisLane implements Lane {
  readonly name = 'redis' as const;
  private readonly redis: Redis;
  private readonly idempotencyTtlSeconds: number;
  private readonly keys: RedisLaneKeys;

  constructor(options: RedisLaneOptions) {
    this.keys = redisLaneKeys(options.clusterName);
    this.idempotencyTtlSeconds = Math.ceil(options.idempotencyTtlMs / 1000);
    this.redis = createRedisClient(options.url, options.timeoutMs, true);
    defineStockCommands(this.redis);
    // Without a listener ioredis reports every failed reconnect as an unhandled error.
    this.redis.on('error', () => {});
    if (options.onStatus) {
      const onStatus = options.onStatus;
      for (const event of ['ready', 'end', 'close'] as const) this.redis.on(event, () => onStatus(event));
    }
  }

  /** `up` is true each time the connection is (re)established, false each time it is lost. */
  onConnectionChange(listener: (up: boolean) => void): void {
    this.redis.on('ready', () => listener(true));
    this.redis.on('close', () => listener(false));
  }

  async tryBuy(sku: string, quantity: number, key: string | null = null): Promise<BuyOutcome> {
    const keys = this.keys;
    const [code, remaining] = await this.write(() =>
      this.redis.stockBuy(keys.sku + sku, key === null ? keys.noKey : keys.idempotency + key, quantity, key === null ? '0' : '1', this.idempotencyTtlSeconds),
    );
    switch (code) {
      case 1:
      case 2: // the same key bought before (perhaps through a primary that has since died)
        return { kind: 'sold', remaining };
      case -2:
        throw new ServiceError('idempotency_key_reused');
      case 0:
        return { kind: 'sold_out', remaining };
      case -1:
        return UNKNOWN_SKU;
      default:
        throw new Error(`buy-2.lua returned unknown code ${code}`);
    }
  }

  async peek(sku: string): Promise<StockLevel | null> {
    const [remaining, sold, initial] = await this.call(() => this.redis.hmget(this.keys.sku + sku, 'remaining', 'sold', 'initial'));
    if (remaining === null || remaining === undefined) return null;
    return { remaining: Number(remaining), sold: Number(sold), initial: Number(initial) };
  }

  async put(sku: string, stock: number): Promise<boolean> {
    if (stock > MAX_STOCK) throw new StockLimitError({ sku, lane: this.name, limit: MAX_STOCK, wouldBe: stock });
    return this.store(sku, stock, 0);
  }

  async putMany(entries: ReadonlyArray<readonly [sku: string, stock: number]>, keepExisting: boolean): Promise<void> {
    // Pipelines of a few hundred commands: one round trip each, and each command's reply well
    // within DEPENDENCY_TIMEOUT_MS (ioredis times every command of a pipeline on its own).
    for (let from = 0; from < entries.length; from += REDIS_PIPELINE) {
      const part = entries.slice(from, from + REDIS_PIPELINE);
      const pipeline = this.redis.pipeline();
      for (const [sku, stock] of part) pipeline.stockPut(this.keys.sku + sku, stock, keepExisting ? 1 : 0);
      pipeline.sadd(this.keys.skus, ...part.map(([sku]) => sku));
      const results = await this.call(() => pipeline.exec());
      const failed = results?.find(([error]) => error !== null);
      if (!results || failed) throw new DependencyUnavailableError('redis', failed?.[0]?.message ?? 'the pipeline was not run');
    }
  }

  /** Create `sku` only if Redis does not have it yet (start-up seeding keeps existing counts). */
  async seed(sku: string, stock: number): Promise<boolean> {
    return this.store(sku, stock, 1);
  }

  /** With a key, at most once per key (recorded in the same script): a retry of a restock whose answer was lost adds nothing. */
  async restock(sku: string, quantity: number, key: string | null = null): Promise<StockLevel | null> {
    const restockKey = key === null ? this.keys.noKey : this.keys.restock + key;
    const [code, remaining, sold, initial] = await this.write(() =>
      this.redis.stockRestock(this.keys.sku + sku, restockKey, quantity, MAX_STOCK, key === null ? '0' : '1', this.idempotencyTtlSeconds),
    );
    if (code === -2) throw new StockLimitError({ sku, lane: this.name, limit: MAX_STOCK, initial, quantity, wouldBe: initial + quantity });
    return code === 1 || code === 2 ? { remaining, sold, initial } : null;
  }

  async resetAll(): Promise<void> {
    const skus = await this.call(() => this.redis.smembers(this.keys.skus));
    for (const sku of skus) await this.write(() => this.redis.stockReset(this.keys.sku + sku));
  }

  /**
   * Resolve once connected, or after `ms` whatever the state: a worker waits this long before it
   * listens, so its first requests do not race the connection — but never waits on an outage.
   */
  whenConnected(ms: number): Promise<void> {
    if (this.redis.status === 'ready') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.redis.off('ready', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.redis.once('ready', done);
    });
  }

  async checkReady(): Promise<void> {
    await this.call(() => this.redis.ping());
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }

  private async store(sku: string, stock: number, keepExisting: 0 | 1): Promise<boolean> {
    const created = await this.write(() => this.redis.stockPut(this.keys.sku + sku, stock, keepExisting));
    await this.write(() => this.redis.sadd(this.keys.skus, sku));
    return created === 1;
  }

  /**
   * A write (the selling script, or an admin change). Refused when it was never sent (no
   * connection: commands fail at once without an offline queue) or Redis answered with an error;
   * otherwise — a timeout, a connection lost after sending — it may have run, and the caller is
   * told the outcome is unknown (a buyer's key is recorded with the sale if it did; an admin
   * change is safe to repeat or check).
   */
  private async write<T>(command: () => Promise<T>): Promise<T> {
    const connected = this.redis.status === 'ready';
    try {
      return await command();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (!connected || (error instanceof Error && error.name === 'ReplyError')) throw new DependencyUnavailableError('redis', reason);
      throw new OutcomeUnknownError('redis', reason, false);
    }
  }

  private async call<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      throw new DependencyUnavailableError('redis', error instanceof Error ? error.message : String(error));
    }
  }
}
