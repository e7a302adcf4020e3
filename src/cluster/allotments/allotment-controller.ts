/**
 * The main thread's part in allotments mode (CLUSTER_MODE=allotments): every replica sells, each
 * from its own allotment of every in-memory lane's stock, and this controller keeps that safe.
 *
 * - **Term.** The replica's sales go to a ledger stream of its own (`replicaStream`), fenced by an
 *   epoch. At start — and whenever it finds its epoch fenced by someone else — it closes the gate
 *   (workers answer 503), waits for sales in flight to settle, zeroes its in-memory allotments,
 *   takes a new epoch, seals the old ones and closes its old allotments (`Reclaimer`), then opens
 *   the gate. A heartbeat on the stream's fence document every RETRY_PERIOD_MS is its lease: it
 *   keeps the gate's deadline RENEW_DEADLINE_MS ahead, so a replica that stalls stops selling by
 *   itself before any other replica may fence it (LEASE_DURATION_MS of silence).
 * - **Chunks.** A worker whose allotment runs dry asks for more (`replenish`); a sweep every
 *   SYNC_INTERVAL_MS also refills ahead of demand. A chunk is ALLOTMENT_CHUNK_MS of this replica's
 *   recent sell rate, at most a fair share (pool ÷ 2 × replicas) so it shrinks as the pool runs
 *   low, and never less than the buy asks for. Units unsold for ALLOTMENT_IDLE_MS go back.
 * - **No undersell.** With the pool empty, the replica asks the other holders (Redis) to give
 *   their spare units back and takes them from the pool; it answers sold out only when every
 *   other holder's level, heard within FRESH_MS, cannot make up the quantity. Units held by a
 *   replica not heard from are not sold out: the buyer gets a 503 until that replica answers or
 *   its units are reclaimed.
 * - **Unknown outcomes.** A grant or give-back whose update timed out may or may not have landed:
 *   the replica keeps, per SKU, the units it has moved into memory, and the next read of the
 *   document reconciles the two (a grant that landed is added; a give-back that did not is put back).
 * - **Admin.** Restock adds to the pool. PUT (and reset) set a SKU afresh: every allotment handed
 *   out before is closed first — its holder is fenced, its sales settled from its ledger — and
 *   allotments taken after the call began are kept, counted against the new stock.
 */
import { Redis } from 'ioredis';
import type { Db } from 'mongodb';
import { Counter, Gauge, type Registry } from 'prom-client';
import { MEMORY_LANES, type Config, type MemoryLaneName } from '../../config.js';
import { DependencyUnavailableError, OutcomeUnknownError, ServiceError } from '../../errors.js';
import type { IdempotencyRegistry } from '../../idempotency.js';
import type { StockLevel } from '../../lanes/lane.js';
import type { MemoryLane } from '../../lanes/memory-lane.js';
import type { Logger } from '../../logger.js';
import { INITIAL, REMAINING, STRIDE, type SharedStock } from '../../memory/shared-stock.js';
import { PREFIX, registerRoleGauges } from '../../metrics.js';
import { ClusterState, monotonicMs } from '../cluster-state.js';
import { Fence, dropInterval, replicaStream } from '../ledger/ledger.js';
import { GlobalKeyClaims } from './global-keys.js';
import { FRESH_MS, FULL_EVERY_MS, PeerLevels, allotmentChannel, levelKey, type LevelUpdate, type PeerLevel } from './levels.js';
import { hostField, hostOfField, type PoolDocument, PoolStore } from './pool-store.js';
import type { AllotmentAnswer, AllotmentRequest } from './protocol.js';
import { Reclaimer } from './reclaimer.js';

/** The smallest chunk taken while the sell rate is not known yet. */
const MIN_CHUNK = 8;
/** How long a buy may wait for other replicas to hand units back before it is told to retry (503). */
const RELEASE_WAIT_MS = 1500;
/** How often a replica that waits repeats its request for units. */
const RELEASE_ASK_EVERY_MS = 100;
const RATE_SAMPLE_MS = 100;
/**
 * Chunks one grant takes while the pool holds at least 2 × replicas × that many chunks (`takeAmple`).
 * A grant costs the main thread a MongoDB round trip (~0.3 ms of CPU with the driver): at one chunk
 * per ALLOTMENT_CHUNK_MS of sales that was ~6 grants per 1,000 buys, ~1.8 µs of a buy's CPU in the
 * cluster bench. Units held this way are never ones another replica is waiting for — the pool still
 * has 2 × replicas × as many — and below that bound grants shrink back to one chunk, then to the
 * fair share, so the end of a sale is sized as before.
 */
export const AMPLE_CHUNKS = 4;
/** How often a SKU's sales are published at most while its pool is ample (see `publishDue`). */
export const AMPLE_PUBLISH_MS = 100;
/** How long a stopping replica spends handing its unsold units back (the lease reclaims the rest). */
const STOP_HANDBACK_MS = 1500;
/** How long one attempt at a new term may take before it is given up and tried again. */
const TERM_ATTEMPT_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Held {
  readonly lane: MemoryLaneName;
  readonly sku: string;
  readonly slot: number;
  /** Units moved into memory in this epoch (granted − given back), as this replica knows it. */
  believed: number;
  lastChange: number;
  /** The counters as the sweep last saw them: a change between sweeps is a sale, a grant or a give-back. */
  seenGranted: number;
  seenRemaining: number;
  /** Units sold as last published, and when (see `publishDue`). */
  publishedSold: number;
  publishedAt: number;
  /** Until when a peer's request for units makes this SKU's sales go out every sweep. */
  askedUntil: number;
  soldAtSample: number;
  sampledAt: number;
  /** Units per second, smoothed. */
  rate: number;
  /** The document as last read, for the sold-out decision. */
  doc: PoolDocument | null;
}

export interface AllotmentControllerOptions {
  readonly config: Config;
  readonly stock: SharedStock;
  /** The main thread's own in-memory lanes (their admin ops are exclusive with the workers' buys). */
  readonly lanes: Readonly<Record<MemoryLaneName, MemoryLane>>;
  readonly db: Db;
  readonly idempotency: IdempotencyRegistry;
  readonly registry: Registry;
  readonly log: Logger;
}

function errorAnswer(error: unknown): AllotmentAnswer {
  if (error instanceof ServiceError) return { kind: 'error', code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) };
  return { kind: 'error', code: 'dependency_unavailable', message: `MongoDB is unavailable: ${error instanceof Error ? error.message : String(error)}`, details: { dependency: 'mongo' } };
}

export class AllotmentController {
  readonly state = new ClusterState();
  private readonly store: PoolStore;
  private readonly own: Fence;
  private readonly reclaimer: Reclaimer;
  private levels: PeerLevels | null = null;
  private readonly redisClients: Redis[] = [];
  private epoch = 0;
  private retaking: Promise<void> | null = null;
  private termAttempt = 0;
  private refillsInFlight = 0;
  private readonly held = new Map<string, Held>();
  private readonly serialised = new Map<string, Promise<unknown>>();
  private readonly uncertain = new Set<string>();
  private timers: NodeJS.Timeout[] = [];
  private beating = false;
  private sweeping = false;
  private lastFull = 0;
  private lastReconcile = 0;
  private stopped = false;
  private seeded = false;
  private readonly metrics: {
    granted: Counter<'lane'>;
    returned: Counter<'reason'>;
    heldElsewhere: Counter<'lane'>;
    staleness: Gauge;
    terms: Counter;
    drainedAt: Gauge;
  };

  constructor(private readonly o: AllotmentControllerOptions) {
    const { config, db, registry } = o;
    this.store = new PoolStore(db, config.dependencyTimeoutMs);
    this.own = new Fence(db, config.dependencyTimeoutMs, replicaStream(config.hostId));
    this.reclaimer = new Reclaimer({
      db,
      store: this.store,
      hostId: config.hostId,
      timeoutMs: config.dependencyTimeoutMs,
      leaseDurationMs: config.leaseDurationMs,
      log: o.log,
      registry,
    });
    const state = this.state;
    const registers = [registry];
    registerRoleGauges(registry, state, 'allotments');
    this.metrics = {
      granted: new Counter({ name: `${PREFIX}allotment_units_granted_total`, help: 'Units taken from the pool into this replica\'s allotments, by lane.', labelNames: ['lane'], registers }),
      returned: new Counter({
        name: `${PREFIX}allotment_units_returned_total`,
        help: 'Unsold units this replica handed back to the pool: idle (unsold for ALLOTMENT_IDLE_MS), asked (a peer ran out), shutdown (SIGTERM).',
        labelNames: ['reason'],
        registers,
      }),
      heldElsewhere: new Counter({
        name: `${PREFIX}allotment_held_elsewhere_total`,
        help: 'Buys answered 503 because the units left were held by replicas that did not hand them back in time.',
        labelNames: ['lane'],
        registers,
      }),
      staleness: new Gauge({
        name: `${PREFIX}allotment_peek_staleness_seconds`,
        help: 'Age of the oldest peer level the last global Peek counted (0: every holder was this replica).',
        registers,
      }),
      drainedAt: new Gauge({
        name: `${PREFIX}allotment_pool_drained_timestamp_seconds`,
        help: 'Unix time when this replica last took the last units of a pool (the last chunk of a sale): with the time of the last sale, how long the end of a sale took.',
        registers,
      }),
      terms: new Counter({ name: `${PREFIX}allotment_terms_total`, help: 'Terms this replica began on its ledger stream (start, and after being fenced).', registers }),
    };
    for (const lane of MEMORY_LANES) this.metrics.granted.labels(lane).inc(0);
    for (const reason of ['idle', 'asked', 'shutdown']) this.metrics.returned.labels(reason).inc(0);
  }

  async start(): Promise<void> {
    const { config } = this.o;
    const url = config.redisUrl as string; // loadConfig insists on it in this mode
    const subscriber = this.track(new Redis(url, { maxRetriesPerRequest: null, retryStrategy: (n) => Math.min(100 * n, 1000) }));
    const publisher = this.track(new Redis(url, { maxRetriesPerRequest: 1, commandTimeout: config.dependencyTimeoutMs, retryStrategy: (n) => Math.min(100 * n, 1000) }));
    this.levels = new PeerLevels(publisher, subscriber, allotmentChannel(config.clusterName), config.hostId, (lane, sku) => this.onReleaseAsked(lane, sku));
    void this.levels.subscribe(subscriber).catch((error: unknown) => this.o.log.warn({ err: error }, 'subscribe failed; ioredis retries'));
    this.timers.push(setInterval(() => void this.beat(), config.retryPeriodMs));
    this.timers.push(setInterval(() => void this.sweep(), config.syncIntervalMs));
    this.timers.push(setInterval(() => void this.reclaimer.watch(), config.retryPeriodMs));
    this.timers.push(
      setInterval(() => {
        if (this.epoch !== 0 && !this.retaking) void this.dropClosedBatches(this.epoch);
      }, dropInterval(config.idempotencyTtlMs)),
    );
    void this.retake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.state.becomeSecondary(this.state.epoch);
    // Hand back what is unsold, so the others need not wait for this replica's lease to expire.
    // Best effort, once the sales in flight are settled (a sale given back after its units went
    // would put them in memory twice); whatever is left is reclaimed after the lease anyway.
    const deadline = monotonicMs() + STOP_HANDBACK_MS;
    while (this.state.salesInFlight() > 0 && monotonicMs() < deadline) await sleep(5);
    if (this.state.salesInFlight() === 0 && this.epoch !== 0) {
      const handedBack = Promise.allSettled([...this.held.values()].map((held) => this.giveBack(held.lane, held.sku, 'shutdown')));
      await Promise.race([handedBack, sleep(Math.max(0, deadline - monotonicMs()))]);
    }
    for (const client of this.redisClients) client.disconnect();
  }

  /** A worker's question (see protocol.ts). */
  async handle(request: AllotmentRequest): Promise<AllotmentAnswer> {
    try {
      switch (request.op) {
        case 'replenish':
          return await this.replenish(request.lane, request.sku, request.quantity);
        case 'peek':
          return { kind: 'level', level: await this.peek(request.lane, request.sku) };
        case 'put':
          return { kind: 'created', created: await this.put(request.lane, request.sku, request.stock) };
        case 'restock': {
          const doc = await this.store.restock(request.lane, request.sku, request.quantity, request.key);
          return { kind: 'level', level: doc && (await this.peek(request.lane, request.sku)) };
        }
        case 'reset':
          await this.resetLane(request.lane);
          return { kind: 'done' };
      }
    } catch (error) {
      return errorAnswer(error);
    }
  }

  // ---- the term -------------------------------------------------------------------------------

  /**
   * Begin a (new) term; concurrent callers share one. Retries until it succeeds or the replica
   * stops. The gate stays closed and the barrier up throughout; an attempt that has not finished
   * in TERM_ATTEMPT_MS (a call on a connection that died without a word can wait forever) is given
   * up, and whatever it does later is refused by its attempt number.
   */
  private retake(): Promise<void> {
    this.retaking ??= (async () => {
      const { state } = this;
      state.becomeSecondary(this.epoch);
      this.epoch = 0;
      while (!state.raiseAdminBarrier()) await sleep(1);
      try {
        for (let delay = 100; !this.stopped; delay = Math.min(delay * 2, 1000)) {
          const attempt = ++this.termAttempt;
          let timer: NodeJS.Timeout | undefined;
          try {
            const givenUp = new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new Error(`no term within ${TERM_ATTEMPT_MS} ms`)), TERM_ATTEMPT_MS);
            });
            const begun = this.beginTerm(attempt);
            begun.catch(() => undefined);
            await Promise.race([begun, givenUp]);
            return;
          } catch (error) {
            this.o.log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'cannot begin an allotment term yet; retrying');
            await sleep(delay);
          } finally {
            clearTimeout(timer);
          }
        }
      } finally {
        state.lowerAdminBarrier();
      }
    })().finally(() => (this.retaking = null));
    return this.retaking;
  }

  /** One attempt at a new term (the caller holds the barrier); throws once a later attempt has begun. */
  private async beginTerm(attempt: number): Promise<void> {
    const { state } = this;
    const current = () => {
      if (attempt !== this.termAttempt || this.stopped) throw new Error('a later attempt took over');
    };
    // Sales of the old epoch settle (or are given back) into the old counts before they go.
    // A sale of unknown outcome settles once MongoDB answers; nothing here goes on without it.
    while (state.salesInFlight() > 0 || this.refillsInFlight > 0) {
      current();
      await sleep(1);
    }
    await this.zeroAllotments();
    current();
    if (!this.seeded) await this.seed();
    current();
    const epoch = await this.own.beginTerm(this.o.config.hostId);
    current();
    await this.own.beat(epoch);
    current();
    await this.own.seal(epoch);
    current();
    // What this replica held under earlier epochs: sold units settled, the rest back to the pool.
    await this.reclaimer.closeAllotments(this.o.config.hostId, epoch);
    current();
    const claims = new GlobalKeyClaims(this.o.db, this.o.config.hostId, () => this.epoch, this.o.config.dependencyTimeoutMs);
    this.o.idempotency.useDurableAnswers(claims);
    // Off the critical path: they only make later reads cheaper (and old claims go).
    void Promise.all([this.own.ensureIndexes(), claims.ensureIndexes(this.o.config.idempotencyTtlMs)]).catch((error: unknown) =>
      this.o.log.warn({ err: error }, 'allotments: could not create the ledger and claim indexes; retried at the next term'),
    );
    this.epoch = epoch;
    this.lastFull = 0;
    state.becomePrimary(epoch, monotonicMs() + this.o.config.renewDeadlineMs);
    this.metrics.terms.inc();
    this.o.log.info({ epoch }, 'allotments: selling from this replica\'s allotments');
    void this.dropClosedBatches(epoch);
  }

  /**
   * Keep this replica's ledger stream from growing without end: drop its batches of earlier epochs
   * once past the idempotency TTL. Nothing reads them again — every allotment of an epoch below
   * the open one was closed (its sales settled into the pool) before the term opened, and a close
   * still racing it compares the pool document's version, which the close that happened changed.
   * The open epoch's batches stay: another replica settles them if this one is fenced.
   */
  private async dropClosedBatches(epoch: number): Promise<void> {
    try {
      const dropped = await this.own.dropFolded({ epoch, seq: 0 }, new Date(Date.now() - this.o.config.idempotencyTtlMs));
      if (dropped > 0) this.o.log.info({ epoch, dropped }, 'allotments: dropped ledger batches of closed epochs past the idempotency TTL');
    } catch (error) {
      this.o.log.warn({ err: error }, 'allotments: could not drop old ledger batches; retrying later');
    }
  }

  /** The seed SKUs exist in the pool (created with INITIAL_STOCK if missing; counts never touched). */
  private async seed(): Promise<void> {
    const { seedSkus, initialStock } = this.o.config;
    for (const lane of MEMORY_LANES) for (const sku of seedSkus) await this.store.create(lane, sku, initialStock);
    this.seeded = true;
  }

  private async zeroAllotments(): Promise<void> {
    for (let slot = 0; slot < this.o.stock.count; slot++) {
      const sku = this.o.stock.skuAt(slot);
      for (const lane of MEMORY_LANES) await this.o.lanes[lane].put(sku, 0);
    }
    this.held.clear();
    this.uncertain.clear();
  }

  private async beat(): Promise<void> {
    const epoch = this.epoch;
    if (this.beating || epoch === 0 || this.retaking) return;
    this.beating = true;
    const started = monotonicMs();
    try {
      if (await this.own.beat(epoch)) {
        if (this.epoch === epoch) this.state.extend(started + this.o.config.renewDeadlineMs);
      } else if (this.epoch === epoch) {
        this.o.log.warn({ epoch }, 'allotments: this replica\'s epoch was fenced; beginning a new term');
        void this.retake();
      }
    } catch {
      // MongoDB unreachable: the deadline runs out by itself and the gate closes.
    } finally {
      this.beating = false;
    }
  }

  // ---- chunks -----------------------------------------------------------------------------------

  /** Run `job` after every earlier job on the same SKU of the same lane (memory and `believed` change together). */
  private serial<T>(key: string, job: () => Promise<T>): Promise<T> {
    const previous = this.serialised.get(key) ?? Promise.resolve();
    const next = previous.then(job, job);
    const tail = next.catch(() => undefined);
    this.serialised.set(key, tail);
    void tail.then(() => {
      if (this.serialised.get(key) === tail) this.serialised.delete(key);
    });
    return next;
  }

  private local(lane: MemoryLaneName, sku: string): { remaining: number; granted: number } {
    const slot = this.o.stock.slotOf(sku);
    if (slot < 0) return { remaining: 0, granted: 0 };
    const words = this.o.stock.words(lane);
    return { remaining: Atomics.load(words, slot * STRIDE + REMAINING), granted: Atomics.load(words, slot * STRIDE + INITIAL) };
  }

  private heldOf(lane: MemoryLaneName, sku: string): Held {
    const key = levelKey(lane, sku);
    let held = this.held.get(key);
    if (!held) {
      const { slot } = this.o.stock.ensure(sku, 0);
      held = { lane, sku, slot, believed: 0, lastChange: monotonicMs(), seenGranted: 0, seenRemaining: 0, publishedSold: 0, publishedAt: 0, askedUntil: 0, soldAtSample: 0, sampledAt: monotonicMs(), rate: 0, doc: null };
      this.held.set(key, held);
    }
    return held;
  }

  /**
   * Units the document says this replica holds beyond what it moved into memory came from a grant
   * whose answer was lost (or a give-back that did not land): they are this replica's, add them.
   */
  private async reconcile(held: Held, doc: PoolDocument): Promise<void> {
    const mine = doc.allot[hostField(this.o.config.hostId)];
    if (!mine || mine.epoch !== this.epoch) return;
    const surplus = mine.granted - held.believed;
    if (surplus > 0) {
      await this.o.lanes[held.lane].restock(held.sku, surplus);
      held.believed += surplus;
      this.o.log.info({ lane: held.lane, sku: held.sku, units: surplus }, 'allotments: reconciled units an unanswered update had moved');
    } else if (surplus < 0) {
      this.o.log.error({ lane: held.lane, sku: held.sku, units: surplus }, 'allotments: memory holds more than the pool granted');
    }
    this.uncertain.delete(levelKey(held.lane, held.sku));
  }

  /** ALLOTMENT_CHUNK_MS of this replica's recent sales of the SKU (at least MIN_CHUNK). */
  private chunkByRate(held: Held): number {
    return Math.max(MIN_CHUNK, Math.ceil((held.rate * this.o.config.allotmentChunkMs) / 1000));
  }

  private chunkFor(held: Held, doc: PoolDocument, quantity: number): number {
    const byRate = this.chunkByRate(held);
    const replicas = 1 + (this.levels?.liveCount() ?? 0);
    const fairShare = Math.ceil(doc.pool / (2 * replicas));
    return Math.max(quantity, Math.min(byRate, fairShare));
  }

  /**
   * While this replica's allotment is open in this epoch and the pool, as last read, is far from
   * running low, a chunk is one conditional update: the chunk `chunkFor` gives when the pool holds
   * at least 2 × replicas × chunk (then the fair share does not cut it), with that as the update's
   * condition — AMPLE_CHUNKS chunks at once while it holds 2 × replicas × that many. Null: take the
   * long way (read, size, swap).
   */
  private takeAmple(held: Held, epoch: number, quantity: number): Promise<{ granted: number; doc: PoolDocument } | null> {
    const known = held.doc;
    if (!known || known.allot[hostField(this.o.config.hostId)]?.epoch !== epoch) return Promise.resolve(null);
    const chunk = Math.max(quantity, this.chunkByRate(held));
    const replicas = 1 + (this.levels?.liveCount() ?? 0);
    // Far from the end of the pool, AMPLE_CHUNKS chunks in one grant: each grant is a MongoDB round
    // trip on the main thread, and nobody waits for units the pool still has plenty of.
    const units = known.pool >= 2 * replicas * AMPLE_CHUNKS * chunk ? AMPLE_CHUNKS * chunk : chunk;
    const poolAtLeast = 2 * replicas * units;
    if (known.pool < poolAtLeast) return Promise.resolve(null);
    return this.store.takeIfAmple(held.lane, held.sku, this.o.config.hostId, epoch, units, poolAtLeast);
  }

  /**
   * Take one chunk from the pool into memory: 'granted', 'empty' (pool empty), 'unknown_sku', or
   * 'retry' (the term changed). With `unlessHolding`, a buyer's refill: when its turn comes,
   * memory already holds that many units (an earlier refill landed while it queued) and the pool
   * is ample, it takes nothing and answers 'granted' — every buyer that found the allotment dry at
   * once asks, and each of them took a chunk of its own. Near the end of the pool the chunks are
   * small fair shares, and there each waiting buyer still takes one (as many buyers as units
   * arrive for, rather than sending them round again).
   */
  private refill(lane: MemoryLaneName, sku: string, quantity: number, unlessHolding?: number): Promise<'granted' | 'empty' | 'unknown_sku' | 'retry'> {
    return this.serial(levelKey(lane, sku), async () => {
      const epoch = this.epoch;
      if (epoch === 0 || this.retaking) return 'retry';
      const held = this.held.get(levelKey(lane, sku)) ?? null;
      if (unlessHolding !== undefined && held && this.poolIsAmple(held) && this.local(lane, sku).remaining >= unlessHolding) return 'granted';
      this.refillsInFlight++;
      try {
        let taken: { granted: number; doc: PoolDocument } | 'closed' | null;
        try {
          taken =
            (held && (await this.takeAmple(held, epoch, quantity))) ??
            (await this.store.take(lane, sku, this.o.config.hostId, epoch, (doc) => (held ? this.chunkFor(held, doc, quantity) : Math.max(quantity, Math.min(MIN_CHUNK, Math.ceil(doc.pool / 6))))));
        } catch (error) {
          // The grant may have landed: the next read reconciles it. The buy itself changed nothing.
          this.uncertain.add(levelKey(lane, sku));
          if (error instanceof OutcomeUnknownError) throw new DependencyUnavailableError('mongo', 'could not take units from the pool');
          throw error;
        }
        if (taken === null) return 'unknown_sku';
        if (taken === 'closed') {
          // This epoch was fenced and its allotment closed: this replica must begin a new term.
          if (this.epoch === epoch) void this.retake();
          return 'retry';
        }
        if (epoch !== this.epoch) return 'retry'; // granted to an epoch now gone: closed with it
        const mine = this.heldOf(lane, sku);
        await this.reconcile(mine, taken.doc);
        mine.doc = taken.doc;
        if (taken.granted === 0) return 'empty';
        await this.o.lanes[lane].restock(sku, taken.granted);
        mine.believed += taken.granted;
        mine.doc = { ...taken.doc, pool: taken.doc.pool - taken.granted };
        this.metrics.granted.labels(lane).inc(taken.granted);
        if (taken.doc.pool === taken.granted) this.metrics.drainedAt.set(Date.now() / 1000);
        return 'granted';
      } finally {
        this.refillsInFlight--;
      }
    });
  }

  /** Hand every unsold unit of this replica's allotment of a SKU back to the pool. */
  private giveBack(lane: MemoryLaneName, sku: string, reason: 'idle' | 'asked' | 'shutdown'): Promise<void> {
    return this.serial(levelKey(lane, sku), async () => {
      const epoch = this.epoch;
      const held = this.held.get(levelKey(lane, sku));
      if (epoch === 0 || this.retaking || !held) return;
      this.refillsInFlight++;
      try {
        const taken = await this.o.lanes[lane].release(sku, Number.MAX_SAFE_INTEGER);
        if (taken === 0) return;
        held.believed -= taken;
        try {
          if (await this.store.giveBack(lane, sku, this.o.config.hostId, epoch, taken)) this.metrics.returned.labels(reason).inc(taken);
        } catch {
          // Landed or not: the next read of the document says, and the units come back if not.
          this.uncertain.add(levelKey(lane, sku));
        }
      } finally {
        this.refillsInFlight--;
      }
    });
  }

  private onReleaseAsked(lane: MemoryLaneName, sku: string): void {
    const held = this.held.get(levelKey(lane, sku));
    if (held) held.askedUntil = monotonicMs() + FRESH_MS;
    if (this.local(lane, sku).remaining > 0) void this.giveBack(lane, sku, 'asked').catch(() => undefined);
  }

  /**
   * A worker found this replica's allotment of a SKU short of `quantity`: take units from the
   * pool; with the pool empty, ask the other holders for theirs; answer sold out only when every
   * other holder is known (heard within FRESH_MS) to be short too.
   */
  private async replenish(lane: MemoryLaneName, sku: string, quantity: number): Promise<AllotmentAnswer> {
    const deadline = monotonicMs() + RELEASE_WAIT_MS;
    let askedAt = -Infinity;
    for (;;) {
      if (this.epoch === 0 || this.retaking) return errorAnswer(new ServiceError('dependency_unavailable', 'This replica is beginning a new allotment term; retry shortly.', { dependency: 'mongo' }));
      if (this.local(lane, sku).remaining >= quantity) return { kind: 'granted' };
      // What each peer has sold is read before the document: a peer's unsold units are what the
      // document says it holds less what it had sold by then (a lower bound on its sales, so never
      // an undercount of what is left), whatever grants or give-backs landed in between.
      const heard = new Map<string, PeerLevel | null>();
      for (const host of this.levels?.hosts() ?? []) heard.set(host, this.levels?.level(host, lane, sku) ?? null);
      const refilled = await this.refill(lane, sku, quantity - this.local(lane, sku).remaining, quantity);
      if (refilled === 'unknown_sku') return { kind: 'unknown_sku' };
      if (refilled !== 'empty') continue;
      const doc = this.held.get(levelKey(lane, sku))?.doc;
      if (!doc) continue;
      let othersKnown = true;
      let others = 0;
      for (const [field, allotment] of Object.entries(doc.allot)) {
        const host = hostOfField(field);
        if (host === this.o.config.hostId) continue;
        const peer = heard.get(host) ?? null;
        if (!peer || peer.ageMs > FRESH_MS || peer.epoch !== allotment.epoch) othersKnown = false;
        else others += Math.max(0, allotment.granted - peer.sold);
      }
      const mine = this.local(lane, sku).remaining;
      if (othersKnown && others + mine + doc.pool < quantity) return { kind: 'sold_out', remaining: others + mine + doc.pool };
      if (monotonicMs() > deadline) {
        this.metrics.heldElsewhere.labels(lane).inc();
        return errorAnswer(new ServiceError('dependency_unavailable', `The units of ${sku} left are held by other replicas that have not handed them back yet; retry shortly.`, { dependency: 'allotments' }));
      }
      if (monotonicMs() - askedAt >= RELEASE_ASK_EVERY_MS) {
        this.levels?.requestRelease(lane, sku);
        askedAt = monotonicMs();
      }
      await sleep(10);
    }
  }

  // ---- the sweep: publish levels, refill ahead, give idle units back -----------------------------

  private async sweep(): Promise<void> {
    const epoch = this.epoch;
    if (this.sweeping || epoch === 0 || this.retaking || !this.levels) return;
    this.sweeping = true;
    try {
      const now = monotonicMs();
      const full = now - this.lastFull >= FULL_EVERY_MS;
      const updates: LevelUpdate[] = [];
      // Only this replica's allotments can change (every unit it sells was granted into one), so
      // the sweep looks at those counters, not at the whole table's dirty bits: a quiet replica's
      // tick costs a few reads, whatever MAX_SKUS is.
      for (const held of this.held.values()) {
        const words = this.o.stock.words(held.lane);
        const granted = Atomics.load(words, held.slot * STRIDE + INITIAL);
        const remaining = Atomics.load(words, held.slot * STRIDE + REMAINING);
        if (granted !== held.seenGranted || remaining !== held.seenRemaining) {
          held.lastChange = now;
          held.seenGranted = granted;
          held.seenRemaining = remaining;
        }
        const sold = granted - remaining;
        if (full || (sold !== held.publishedSold && this.publishDue(held, now))) {
          held.publishedSold = sold;
          held.publishedAt = now;
          updates.push([MEMORY_LANES.indexOf(held.lane), held.sku, sold]);
        }
      }
      if (updates.length > 0 || full) {
        if (await this.levels.publish(epoch, full, updates)) {
          if (full) this.lastFull = now;
        } else this.lastFull = 0;
      }
      for (const held of this.held.values()) this.tend(held, now);
      if (this.uncertain.size > 0 && now - this.lastReconcile > 500) {
        this.lastReconcile = now;
        for (const key of [...this.uncertain]) {
          const held = this.held.get(key);
          if (held) void this.serial(key, async () => {
            const doc = await this.store.read(held.lane, held.sku);
            if (doc && this.epoch === epoch) await this.reconcile(held, doc);
          }).catch(() => undefined);
        }
      }
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Whether a SKU's new sales go out in this sweep. Every sweep (SYNC_INTERVAL_MS) near the end of
   * its pool — the pool as last read holds less than the fast grant's bound, 2 × replicas × a
   * chunk — or while a peer asks for units: that is when peers decide "sold out" on these figures.
   * While the pool is ample, at most every AMPLE_PUBLISH_MS: nobody's sold-out answer depends on
   * them then, Peek counts at most that much more of this replica's sales as unsold, and the
   * publications (a Redis round trip here, a parse on every peer) were the largest cost of a
   * replica's main thread under load.
   */
  private publishDue(held: Held, now: number): boolean {
    if (now - held.publishedAt >= AMPLE_PUBLISH_MS || now < held.askedUntil) return true;
    return !this.poolIsAmple(held);
  }

  /** The SKU's pool, as last read, holds at least 2 × replicas × a chunk: far from the end of the sale. */
  private poolIsAmple(held: Held): boolean {
    const replicas = 1 + (this.levels?.liveCount() ?? 0);
    return (held.doc?.pool ?? 0) >= 2 * replicas * this.chunkByRate(held);
  }

  /** Sample the sell rate; refill ahead of a selling SKU; give back a SKU's units once idle. */
  private tend(held: Held, now: number): void {
    const { remaining, granted } = this.local(held.lane, held.sku);
    if (now - held.sampledAt >= RATE_SAMPLE_MS) {
      const sold = granted - remaining;
      const rate = Math.max(0, (sold - held.soldAtSample) / ((now - held.sampledAt) / 1000));
      held.rate = held.rate * 0.5 + rate * 0.5;
      // A fading average never reaches zero by itself: below one unit a second the SKU is not selling.
      if (held.rate < 1) held.rate = 0;
      held.soldAtSample = sold;
      held.sampledAt = now;
    }
    if (remaining > 0 && now - held.lastChange > this.o.config.allotmentIdleMs) {
      void this.giveBack(held.lane, held.sku, 'idle').catch(() => undefined);
      return;
    }
    // Ahead of demand only while the SKU is selling now: a quiet SKU is refilled on demand, so
    // units do not shuttle between the pool and an idle replica.
    const ahead = Math.ceil((held.rate * this.o.config.allotmentChunkMs) / 2000);
    const selling = now - held.lastChange < 2 * this.o.config.allotmentChunkMs;
    if (selling && held.rate > 0 && remaining < ahead && (held.doc?.pool ?? 1) > 0 && !this.serialised.has(levelKey(held.lane, held.sku))) {
      void this.refill(held.lane, held.sku, 1).catch(() => undefined);
    }
  }

  // ---- reads and admin --------------------------------------------------------------------------

  /**
   * The global view: the pool, plus what each holder has left — what the document says it was
   * granted less what it has sold: this replica's sales from memory, the others' as they last
   * published them (none, if they never said: all they hold counts as unsold).
   */
  private async peek(lane: MemoryLaneName, sku: string): Promise<StockLevel | null> {
    // Sales first, the document after (as in `replenish`): grants and give-backs are all in the
    // document, and a peer's sales only grow, so a quiet cluster reads exactly, and a selling one
    // at worst counts a peer's sales since its last publication as still unsold.
    const heard = new Map<string, PeerLevel | null>();
    for (const host of this.levels?.hosts() ?? []) heard.set(host, this.levels?.level(host, lane, sku) ?? null);
    const doc = await this.store.read(lane, sku);
    if (!doc) return null;
    let remaining = doc.pool;
    let oldestMs = 0;
    for (const [field, allotment] of Object.entries(doc.allot)) {
      const host = hostOfField(field);
      if (host === this.o.config.hostId && allotment.epoch === this.epoch) {
        const { remaining: left, granted } = this.local(lane, sku);
        remaining += Math.max(0, allotment.granted - (granted - left));
        continue;
      }
      const peer = heard.get(host) ?? null;
      if (peer && peer.epoch === allotment.epoch) {
        remaining += Math.max(0, allotment.granted - peer.sold);
        oldestMs = Math.max(oldestMs, peer.ageMs);
      } else remaining += allotment.granted;
    }
    this.metrics.staleness.set(oldestMs / 1000);
    return { remaining, sold: doc.initial - remaining, initial: doc.initial };
  }

  /**
   * Fence every holder of an allotment `fresh` refuses, and close what it held: this replica by
   * beginning a new term, another by taking its stream over. `fencedBelow` records, per host, the
   * epoch from which its allotments are fresh.
   */
  private async fenceHolders(doc: PoolDocument, fresh: (host: string, epoch: number) => boolean, fencedBelow: Map<string, number>): Promise<void> {
    for (const [field, allotment] of Object.entries(doc.allot)) {
      const host = hostOfField(field);
      if (fresh(host, allotment.epoch)) continue;
      if (host === this.o.config.hostId) {
        await this.retake();
        fencedBelow.set(host, this.epoch);
      } else {
        fencedBelow.set(host, await this.reclaimer.fence(host, allotment.epoch));
      }
    }
  }

  /** PUT: create the SKU with `stock` in the pool, or set it afresh (see the module comment). */
  private async put(lane: MemoryLaneName, sku: string, stock: number): Promise<boolean> {
    if (await this.store.create(lane, sku, stock)) {
      this.o.stock.ensure(sku, 0);
      return true;
    }
    await this.setAfresh(lane, sku, stock, new Map());
    return false;
  }

  private async resetLane(lane: MemoryLaneName): Promise<void> {
    const fencedBelow = new Map<string, number>();
    for (const doc of await this.store.list(lane)) await this.setAfresh(lane, doc.sku, 'initial', fencedBelow);
  }

  private async setAfresh(lane: MemoryLaneName, sku: string, stock: number | 'initial', fencedBelow: Map<string, number>): Promise<void> {
    const first = await this.store.read(lane, sku);
    // Holders when the call began: their allotments may hold sales from before it, so they are closed.
    const before = new Set(Object.keys(first?.allot ?? {}).map(hostOfField));
    const fresh = (host: string, epoch: number) => !before.has(host) || epoch >= (fencedBelow.get(host) ?? Infinity);
    for (let attempt = 0; attempt < 10; attempt++) {
      const doc = await this.store.read(lane, sku);
      if (!doc) return;
      await this.fenceHolders(doc, fresh, fencedBelow);
      if (await this.store.setStock(lane, sku, stock, (host, allotment) => fresh(host, allotment.epoch))) return;
      // A fresh allotment holds more than the new stock: close those too, and try again.
      const again = await this.store.read(lane, sku);
      for (const field of Object.keys(again?.allot ?? {})) before.add(hostOfField(field));
      for (const host of before) if (!fencedBelow.has(host)) fencedBelow.set(host, Infinity);
    }
    throw new ServiceError('admin_busy', `The allotments of ${sku} kept changing; retry shortly.`);
  }

  private track(client: Redis): Redis {
    client.on('error', () => undefined);
    this.redisClients.push(client);
    return client;
  }
}
