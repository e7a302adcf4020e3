/**
 * Redis pub/sub replication of the in-memory lanes, primary → secondaries.
 *
 * The primary drains the shared table's dirty bits every SYNC_INTERVAL_MS and publishes one
 * message with the current level of every SKU that changed — coalesced per SKU, not one message
 * per buy — stamped with its host id, its epoch and a version that rises by one per attempt (one
 * that failed leaves a gap, never a version used twice). In the same MULTI it writes those levels
 * into a snapshot hash, so the snapshot and the stream can never disagree about a version.
 *
 * Secondaries apply a message only if it is newer than what they hold ((epoch, version) order),
 * count and drop stale ones and their own echoes (the primary hears itself too), and resync from
 * the snapshot whenever they (re)subscribe or see a gap — pub/sub forgets what it sent while
 * nobody listened. After a Redis restart the snapshot is gone too, so the primary republishes
 * every SKU as soon as its connection is back.
 */
import type { Redis } from 'ioredis';
import { Counter, Histogram, type Registry } from 'prom-client';
import { MEMORY_LANES, type MemoryLaneName } from '../../config.js';
import type { Logger } from '../../logger.js';
import { INITIAL, REMAINING, STRIDE, type SharedStock } from '../../memory/shared-stock.js';
import { PREFIX } from '../../metrics.js';

/** Redis names of one cluster's replication: the channel, and the snapshot and its version. */
export function syncKeys(clusterName: string): { channel: string; snapshot: string; meta: string } {
  const base = `superstock:${clusterName}`;
  return { channel: `${base}:stock-events`, snapshot: `${base}:snapshot`, meta: `${base}:snapshot:meta` };
}

/** [lane index, sku, remaining, sold, initial] */
type Update = [number, string, number, number, number];

interface StockEvent {
  readonly host: string;
  readonly epoch: number;
  readonly version: number;
  /** Wall-clock ms when published, for the lag histogram (clocks of one cluster, roughly synced). */
  readonly at: number;
  readonly updates: Update[];
}

export class SyncMetrics {
  readonly events: Counter<'kind'>;
  readonly lag: Histogram;

  constructor(registry: Registry) {
    this.events = new Counter({
      name: `${PREFIX}sync_events_total`,
      help: 'Replication events by kind: published, publish_failed (sent again with everything next time), applied, echo (own), stale (older than held), resync (snapshot read on (re)subscribe or a gap).',
      labelNames: ['kind'],
      registers: [registry],
    });
    for (const kind of ['published', 'publish_failed', 'applied', 'echo', 'stale', 'resync']) this.events.labels(kind).inc(0);
    this.lag = new Histogram({
      name: `${PREFIX}replication_lag_seconds`,
      help: 'Time from a stock event being published to a secondary applying it.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
  }
}

function levelOf(stock: SharedStock, lane: MemoryLaneName, slot: number): [number, number, number] {
  const w = stock.words(lane);
  const base = slot * STRIDE;
  const initial = Atomics.load(w, base + INITIAL);
  const remaining = Atomics.load(w, base + REMAINING);
  return [remaining, initial - remaining, initial];
}

/** `sold` travels in the event for readers, but the table derives it (initial − remaining). */
function writeLevel(stock: SharedStock, lane: MemoryLaneName, sku: string, remaining: number, _sold: number, initial: number): void {
  const { slot } = stock.ensure(sku, initial);
  const w = stock.words(lane);
  const base = slot * STRIDE;
  Atomics.store(w, base + REMAINING, remaining);
  Atomics.store(w, base + INITIAL, initial);
}

export class StockPublisher {
  private version = 0;
  private timer: NodeJS.Timeout | null = null;
  private republishAll = true;
  private publishing = false;

  constructor(
    private readonly redis: Redis,
    private readonly keys: ReturnType<typeof syncKeys>,
    private readonly stock: SharedStock,
    private readonly hostId: string,
    private readonly epoch: number,
    private readonly intervalMs: number,
    private readonly metrics: SyncMetrics,
    private readonly log: Logger,
  ) {
    redis.on('ready', this.onReady);
  }

  start(): void {
    this.republishAll = true;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.redis.off('ready', this.onReady);
  }

  /** A (re)connected Redis may have lost the snapshot: send everything next time. */
  private readonly onReady = (): void => {
    this.republishAll = true;
  };

  private async tick(): Promise<void> {
    if (this.publishing || this.redis.status !== 'ready') return;
    this.publishing = true;
    const all = this.republishAll;
    this.republishAll = false;
    const updates: Update[] = [];
    MEMORY_LANES.forEach((lane, laneIndex) => {
      const take = (slot: number) => updates.push([laneIndex, this.stock.skuAt(slot), ...levelOf(this.stock, lane, slot)]);
      if (!all) return this.stock.drainDirty(lane, take);
      this.stock.drainDirty(lane, () => undefined);
      for (let slot = 0; slot < this.stock.count; slot++) take(slot);
    });
    try {
      if (updates.length === 0) return;
      // Every attempt takes a version of its own, failed or not: a MULTI whose answer timed out may
      // still have landed, and a retry under the same version would be dropped as already seen.
      // One that did not land leaves a gap, and a gap makes the secondaries read the snapshot.
      this.version += 1;
      const event: StockEvent = { host: this.hostId, epoch: this.epoch, version: this.version, at: Date.now(), updates };
      const multi = this.redis.multi();
      const { snapshot, meta, channel } = this.keys;
      if (all) multi.del(snapshot);
      const fields: string[] = [];
      for (const [lane, sku, remaining, sold, initial] of updates) fields.push(`${lane}:${sku}`, `${remaining}:${sold}:${initial}`);
      multi.hset(snapshot, ...fields);
      multi.hset(meta, 'epoch', event.epoch, 'version', event.version, 'host', this.hostId);
      multi.publish(channel, JSON.stringify(event));
      await multi.exec();
      this.metrics.events.labels('published').inc();
    } catch (error) {
      // Lost updates are not lost: their SKUs go out again with everything next time.
      this.republishAll = true;
      this.metrics.events.labels('publish_failed').inc();
      this.log.warn({ err: error }, 'could not publish stock events');
    } finally {
      this.publishing = false;
    }
  }
}

export class StockSubscriber {
  private held = { epoch: 0, version: 0 };
  private resyncing: StockEvent[] | null = null;

  constructor(
    private readonly subscriber: Redis,
    private readonly reader: Redis,
    private readonly keys: ReturnType<typeof syncKeys>,
    private readonly stock: SharedStock,
    private readonly hostId: string,
    /** False while this replica is primary: its own memory is the truth then. */
    private readonly following: () => boolean,
    private readonly metrics: SyncMetrics,
    private readonly log: Logger,
  ) {
    subscriber.on('message', (_channel: string, message: string) => this.onMessage(message));
    // ioredis resubscribes by itself after a reconnect; each time, what was missed must be read.
    subscriber.on('ready', () => void this.resync());
  }

  async start(): Promise<void> {
    await this.subscriber.subscribe(this.keys.channel);
    await this.resync();
  }

  /** The epoch of the last snapshot published to Redis (0 if none): a new unfenced term goes above it. */
  async publishedEpoch(): Promise<number> {
    return Number((await this.reader.hget(this.keys.meta, 'epoch')) ?? 0);
  }

  /** Forget what is held, so a new primary's first message is taken whatever its version. */
  reset(): void {
    this.held = { epoch: 0, version: 0 };
  }

  private onMessage(message: string): void {
    const event = JSON.parse(message) as StockEvent;
    if (event.host === this.hostId) {
      this.metrics.events.labels('echo').inc();
      return;
    }
    if (!this.following()) {
      // A deposed primary's late message must never overwrite the new primary's counts.
      this.metrics.events.labels('stale').inc();
      return;
    }
    if (this.resyncing) {
      this.resyncing.push(event);
      return;
    }
    this.take(event);
  }

  private take(event: StockEvent): void {
    // Checked again here: an event buffered during a resync may be applied after this replica
    // took over, and must not overwrite the counts it rebuilt from the ledger.
    if (!this.following()) {
      this.metrics.events.labels('stale').inc();
      return;
    }
    const { epoch, version } = this.held;
    if (event.epoch < epoch || (event.epoch === epoch && event.version <= version)) {
      this.metrics.events.labels('stale').inc();
      return;
    }
    if ((event.epoch === epoch && event.version > version + 1) || (event.epoch > epoch && event.version > 1)) {
      // Missed messages — of this term, or the first ones of a new term (each term counts from
      // 1): the snapshot has everything up to at least this version.
      void this.resync();
      return;
    }
    this.apply(event.updates);
    this.held = { epoch: event.epoch, version: event.version };
    this.metrics.events.labels('applied').inc();
    this.metrics.lag.observe(Math.max(0, Date.now() - event.at) / 1000);
  }

  private apply(updates: readonly Update[]): void {
    for (const [laneIndex, sku, remaining, sold, initial] of updates) {
      const lane = MEMORY_LANES[laneIndex];
      if (lane) writeLevel(this.stock, lane, sku, remaining, sold, initial);
    }
  }

  /** Catch up from the snapshot now (a replica that stops leading has missed the new primary's events). */
  resyncNow(): void {
    void this.resync();
  }

  private async resync(): Promise<void> {
    if (this.resyncing || !this.following()) return;
    this.resyncing = [];
    try {
      const [meta, snapshot] = await this.reader.multi().hgetall(this.keys.meta).hgetall(this.keys.snapshot).exec().then((r) => (r ?? []).map(([, v]) => v as Record<string, string>));
      const epoch = Number(meta?.epoch ?? 0);
      const version = Number(meta?.version ?? 0);
      // The read may have taken long enough for this replica to take over meanwhile: a snapshot
      // of the old primary must then never land on the lanes rebuilt from the ledger.
      const stillFollowing = this.following();
      if (stillFollowing && meta?.host !== this.hostId && snapshot && (epoch > this.held.epoch || (epoch === this.held.epoch && version >= this.held.version))) {
        const updates: Update[] = [];
        for (const [field, value] of Object.entries(snapshot)) {
          const cut = field.indexOf(':');
          const [remaining, sold, initial] = value.split(':').map(Number);
          updates.push([Number(field.slice(0, cut)), field.slice(cut + 1), remaining ?? 0, sold ?? 0, initial ?? 0]);
        }
        this.apply(updates);
        this.held = { epoch, version };
      }
      // Counted per snapshot read, newer or not: every (re)subscribe reads one.
      this.metrics.events.labels('resync').inc();
    } catch (error) {
      // Usually Redis is still connecting; the next (re)connect or gap triggers another resync.
      this.log.debug({ reason: error instanceof Error ? error.message : String(error) }, 'resync from snapshot failed');
    } finally {
      const buffered = this.resyncing ?? [];
      this.resyncing = null;
      for (const event of buffered) this.take(event);
    }
  }
}
