/**
 * The main thread's part in the cluster: runs the election, and on each change of leadership
 * turns this replica into a primary or a secondary.
 *
 * Becoming primary is done in an order that keeps every guarantee: seal the previous epochs'
 * reservations (so nothing a deposed primary still sends can land), rebuild the in-memory lanes
 * from the ledger, learn the answers already given to idempotency keys, and only then open the
 * gate the workers check on every buy. While the lease holds, a timer keeps pushing the gate's
 * deadline one retry period ahead; if renewals stop, the deadline runs out on its own.
 */
import { Redis } from 'ioredis';
import type { Db } from 'mongodb';
import type { Registry } from 'prom-client';
import { MEMORY_LANES, type Config } from '../config.js';
import type { IdempotencyRegistry } from '../idempotency.js';
import type { Logger } from '../logger.js';
import type { SharedStock } from '../memory/shared-stock.js';
import { registerRoleGauges } from '../metrics.js';
import { createRedisClient } from '../lanes/redis-lane.js';
import { ClusterState, monotonicMs } from './cluster-state.js';
import type { Elector, Leadership } from './election/elector.js';
import { Fence, GroupCommit, LedgerKeyLookup } from './ledger/ledger.js';
import { KubeApi, loadKubeConfig } from './election/kube-api.js';
import { KubernetesLeaseElector } from './election/kubernetes-lease-elector.js';
import { MongoLeaseElector } from './election/mongo-lease-elector.js';
import { PrimaryPodLabeler } from './election/pod-labeler.js';
import { Compactor, rebuildFromLedger } from './ledger/rebuild.js';
import { StockPublisher, StockSubscriber, SyncMetrics, syncKeys } from './sync/redis-sync.js';

/** How often a leader folds the ledger into a snapshot (each fold reads only what is new). */
const COMPACT_INTERVAL_MS = 10_000;

/** Deadline for a primary that needs no lease (standalone, or ROLE=primary): ~24 days, renewed never. */
const NO_DEADLINE_MS = 2 ** 31 - 1;
/** Unfenced epochs (DURABILITY=none) count seconds from here. */
const EPOCH_CLOCK_ORIGIN = Date.UTC(2024, 0, 1);

export interface ClusterControllerOptions {
  readonly config: Config;
  readonly stock: SharedStock;
  readonly db: Db | null;
  readonly idempotency: IdempotencyRegistry;
  readonly registry: Registry;
  readonly log: Logger;
  /** Tell the workers where buys go now (null: nowhere, answer 503). */
  readonly onPrimaryUrl: (url: string | null) => void;
}

export class ClusterController {
  readonly state = new ClusterState();
  private readonly fence: Fence | null;
  private readonly syncMetrics: SyncMetrics;
  private elector: (Elector & { currentLeaderUrl(): string | null }) | null = null;
  private publisher: StockPublisher | null = null;
  private subscriber: StockSubscriber | null = null;
  private readonly redisClients: Redis[] = [];
  private publisherClient: Redis | null = null;
  private keepalive: NodeJS.Timeout | null = null;
  private leadingEpoch: number | null = null;
  private fenceCheck = { running: false, at: 0 };
  private compactor: Compactor | null = null;
  private primaryUrl: string | null = null;
  private stopped = false;

  constructor(private readonly o: ClusterControllerOptions) {
    this.fence = o.db ? new Fence(o.db, o.config.dependencyTimeoutMs) : null;
    this.syncMetrics = new SyncMetrics(o.registry);
    const state = this.state;
    // A primary by configuration is taking over from its first moment (workers answer before start() runs).
    if (o.config.role === 'primary' || (o.config.election === 'none' && o.config.role !== 'secondary')) state.setLeadPhase('taking_over');
    registerRoleGauges(o.registry, state, 'primary');
  }

  async start(): Promise<void> {
    const { config } = this.o;
    if (config.redisUrl) await this.startSubscriber(config.redisUrl);
    if (config.role === 'secondary') {
      this.setPrimaryUrl(config.primaryUrl);
      return;
    }
    if (config.role === 'primary' || config.election === 'none') {
      // No lease to renew, but the fence is still read now and then: another primary may take it.
      if (this.fence && config.durability === 'sync') this.keepalive = setInterval(() => this.keepGateOpen(), Math.max(10, config.retryPeriodMs / 2));
      void this.leadWithoutElection();
      return;
    }
    if (!this.fence) throw new Error(`${config.election} election needs MongoDB (epochs)`);
    const common = {
      leaseName: config.leaseName,
      id: config.hostId,
      url: config.advertiseUrl,
      timings: { leaseDurationMs: config.leaseDurationMs, renewDeadlineMs: config.renewDeadlineMs, retryPeriodMs: config.retryPeriodMs },
      epochs: this.fence,
      log: this.o.log,
    };
    if (config.election === 'mongo') {
      if (!this.o.db) throw new Error('mongo election needs MongoDB');
      this.elector = new MongoLeaseElector({ ...common, db: this.o.db });
    } else {
      // loadConfig insists on both for ELECTION=kubernetes.
      if (!config.podName || !config.podNamespace) throw new Error('kubernetes election needs POD_NAME and POD_NAMESPACE');
      const api = new KubeApi(loadKubeConfig(), config.podNamespace);
      const labeler = new PrimaryPodLabeler({ api, podName: config.podName, podSelector: config.podSelector });
      this.elector = new KubernetesLeaseElector({ ...common, api, labeler });
    }
    this.elector.onChange((leadership) => this.onLeadership(leadership));
    this.keepalive = setInterval(() => this.keepGateOpen(), Math.max(10, config.retryPeriodMs / 2));
    await this.elector.start().catch((error: unknown) => this.o.log.warn({ err: error }, 'first election round failed; retrying'));
  }

  /**
   * A primary by configuration takes its epoch and leads as soon as it can: MongoDB (for the
   * fenced epoch and the ledger) may not be up yet, and until then buys answer 503 and /readyz
   * says it is taking over. Every MongoDB call of a takeover is bounded (a connection that went
   * silent mid-call fails it instead of holding it for ever), so a failed attempt is retried
   * with a fresh epoch. Without a ledger the epoch must still rise across restarts, or
   * secondaries would drop the restarted primary's events as stale: it comes from the clock,
   * and above the last one published.
   */
  private async leadWithoutElection(): Promise<void> {
    const { config } = this.o;
    this.state.setLeadPhase('taking_over');
    for (let delay = 100; !this.stopped; delay = Math.min(delay * 2, 1000)) {
      try {
        const epoch = this.fence && config.durability === 'sync' ? await this.fence.beginTerm(config.hostId) : await this.unfencedEpoch();
        await this.lead(epoch, NO_DEADLINE_MS);
        return;
      } catch (error) {
        this.leadingEpoch = null;
        this.o.log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'cannot take over as primary yet; retrying');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Seconds since 2024 (an Int32 for 68 years), or one above the snapshot's epoch if that is higher. */
  private async unfencedEpoch(): Promise<number> {
    const fromClock = Math.floor((Date.now() - EPOCH_CLOCK_ORIGIN) / 1000);
    const published = await this.subscriber?.publishedEpoch().catch(() => 0) ?? 0;
    return Math.max(fromClock, published + 1);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.keepalive) clearInterval(this.keepalive);
    this.compactor?.stop();
    this.state.becomeSecondary(this.state.epoch);
    this.publisher?.stop();
    // Dropping the connections is the unsubscribe; it cannot hang on a Redis that does not answer.
    for (const client of this.redisClients) client.disconnect();
    await this.elector?.stop();
  }

  private onLeadership(leadership: Leadership): void {
    if (leadership.role === 'primary' && this.leadingEpoch === null) {
      this.lead(leadership.epoch, this.o.config.retryPeriodMs).catch((error: unknown) => {
        this.o.log.error({ err: error, epoch: leadership.epoch }, 'could not take over as primary; stepping down');
        this.follow();
        void this.elector?.stop().then(() => this.elector?.start());
      });
    } else if (leadership.role === 'secondary' && this.leadingEpoch !== null) {
      this.follow();
    }
    if (this.leadingEpoch === null) this.setPrimaryUrl(this.elector?.currentLeaderUrl() ?? null);
  }

  /** Take over as primary under `epoch`; the gate opens for `windowMs` and is kept open by the keepalive. */
  private async lead(epoch: number, windowMs: number): Promise<void> {
    this.leadingEpoch = epoch;
    this.state.setLeadPhase('taking_over');
    const started = monotonicMs();
    if (this.fence && this.o.config.durability === 'sync') {
      await this.fence.seal(epoch);
      const { replay, batches } = await rebuildFromLedger(this.fence, this.o.stock);
      // Answers given to keys stay in the ledger; a retry finds its own through the key index.
      this.o.idempotency.useDurableAnswers(new LedgerKeyLookup(this.fence));
      await this.seedMissing(epoch, (lane, sku) => replay.levels.get(lane)?.has(sku) ?? false);
      this.o.log.info({ epoch, ms: Math.round(monotonicMs() - started), batches, from: replay.position }, 'rebuilt the in-memory lanes from the ledger');
      this.compactor?.stop();
      // The first fold snapshots what was just replayed, so the next takeover starts from here.
      this.compactor = new Compactor(this.fence, replay, epoch, COMPACT_INTERVAL_MS, this.o.config.idempotencyTtlMs, this.o.log);
    }
    if (this.leadingEpoch !== epoch || (this.elector && !this.elector.isLeader())) throw new Error('lost the lease while taking over');
    this.state.becomePrimary(epoch, monotonicMs() + windowMs);
    this.state.setLeadPhase('steady');
    if (this.o.config.redisUrl) {
      // One connection serves every term this replica leads.
      this.publisherClient ??= this.track(createRedisClient(this.o.config.redisUrl, this.o.config.dependencyTimeoutMs));
      this.publisher = new StockPublisher(this.publisherClient, syncKeys(this.o.config.clusterName), this.o.stock, this.o.config.hostId, epoch, this.o.config.syncIntervalMs, this.syncMetrics, this.o.log);
      this.publisher.start();
    }
    this.setPrimaryUrl(this.o.config.advertiseUrl);
    this.o.log.info({ epoch }, 'primary: accepting buys');
    if (this.fence && this.compactor) {
      // Off the takeover's critical path: both only make later reads cheaper.
      this.fence.ensureIndexes().catch((error: unknown) => this.o.log.warn({ err: error }, 'could not create the ledger indexes; retried at the next takeover'));
      this.compactor.start();
      void this.compactor.compactOnce();
    }
  }

  /** The ledger knows nothing of a seed SKU yet: it starts at INITIAL_STOCK, logged as such. */
  private async seedMissing(epoch: number, known: (lane: (typeof MEMORY_LANES)[number], sku: string) => boolean): Promise<void> {
    if (!this.fence) return;
    const writer = new GroupCommit(this.fence, () => epoch, () => undefined, { depth: 1, reserveAhead: 1 });
    const { seedSkus, initialStock } = this.o.config;
    const missing = MEMORY_LANES.flatMap((lane) => seedSkus.filter((sku) => !known(lane, sku)).map((sku) => ({ lane, sku })));
    await Promise.all(missing.map(({ lane, sku }) => writer.append({ op: 'seed', lane, sku, stock: initialStock })));
  }

  private follow(): void {
    const epoch = this.leadingEpoch ?? this.state.epoch;
    this.leadingEpoch = null;
    this.compactor?.stop();
    this.compactor = null;
    this.state.becomeSecondary(epoch);
    this.state.setLeadPhase('steady');
    this.publisher?.stop();
    this.publisher = null;
    this.o.log.warn({ epoch }, 'secondary: buys are forwarded to the primary');
    // While it led it ignored the stream; catch up with whoever leads now.
    this.subscriber?.resyncNow();
    this.setPrimaryUrl(this.elector?.currentLeaderUrl() ?? null);
  }

  private keepGateOpen(): void {
    if (this.leadingEpoch === null || !this.state.isPrimary()) return;
    if (this.elector) {
      if (!this.elector.isLeader()) return this.follow();
      this.state.extend(monotonicMs() + this.o.config.retryPeriodMs);
    }
    this.checkFence();
  }

  /**
   * A contender that lost the lease can still have raised the epoch (it stalled inside
   * beginTerm and resumed after another replica won). This leader's reservations then all fail:
   * every buy would be a 503 for as long as it holds the lease. So once per retry period the
   * leader reads the fence; if its epoch is no longer the current one it steps down and hands the
   * lease back, and whoever wins next takes a fresh, higher epoch. A primary by configuration
   * (no election) has nobody to hand over to: another replica configured as primary took the
   * fence, so it closes its gate and stays fenced (/readyz says so) until it is restarted.
   * Until this check runs, /readyz finds the fence moved by itself (see worker-main.ts).
   */
  private checkFence(): void {
    const epoch = this.leadingEpoch;
    const now = monotonicMs();
    if (!this.fence || epoch === null || this.fenceCheck.running || now - this.fenceCheck.at < this.o.config.retryPeriodMs) return;
    this.fenceCheck = { running: true, at: now };
    this.fence
      .currentEpoch()
      .then((current) => {
        if (current > epoch && this.leadingEpoch === epoch) {
          this.state.setLeadPhase('fenced');
          if (!this.elector) {
            this.o.log.error({ epoch, fence: current }, 'fenced off by a newer epoch: another replica is configured as primary too; refusing buys until restarted');
            this.compactor?.stop();
            this.publisher?.stop();
            this.state.becomeSecondary(epoch);
            this.setPrimaryUrl(null); // not forwarding to itself: buys answer 503
            return;
          }
          this.o.log.error({ epoch, fence: current }, 'fenced off by a newer epoch while holding the lease; stepping down');
          this.follow();
          void this.elector?.stop().then(() => this.elector?.start());
        }
      })
      .catch(() => undefined) // MongoDB unreachable: renewals will fail too, and the deadline closes the gate
      .finally(() => (this.fenceCheck = { running: false, at: this.fenceCheck.at }));
  }

  private async startSubscriber(url: string): Promise<void> {
    // The subscriber keeps an offline queue: subscribing must survive a Redis that is not up yet.
    const subscriber = this.track(new Redis(url, { maxRetriesPerRequest: null, retryStrategy: (n) => Math.min(100 * n, 1000) }));
    // The snapshot reader queues while reconnecting, so the resync that follows a reconnect waits
    // for it instead of failing.
    const reader = this.track(new Redis(url, { maxRetriesPerRequest: 1, commandTimeout: this.o.config.dependencyTimeoutMs, retryStrategy: (n) => Math.min(100 * n, 1000) }));
    // Following stops the moment a takeover begins (before the rebuild), not when the gate opens:
    // nothing the old primary published may land on the lanes being rebuilt.
    const following = () => this.leadingEpoch === null && !this.state.isPrimary();
    this.subscriber = new StockSubscriber(subscriber, reader, syncKeys(this.o.config.clusterName), this.o.stock, this.o.config.hostId, following, this.syncMetrics, this.o.log);
    void this.subscriber.start().catch((error: unknown) => this.o.log.warn({ err: error }, 'subscribe failed; ioredis retries'));
  }

  /** Errors surface through the calls that fail; stop() disconnects every tracked client. */
  private track(client: Redis): Redis {
    client.on('error', () => undefined);
    this.redisClients.push(client);
    return client;
  }

  private setPrimaryUrl(url: string | null): void {
    if (url === this.primaryUrl) return;
    this.primaryUrl = url;
    this.o.onPrimaryUrl(url);
  }
}
