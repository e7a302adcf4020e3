/**
 * What both lease electors share, whatever holds the lease (a MongoDB document, a Kubernetes
 * Lease) — the parts of client-go's leaderelection that do not depend on the store:
 *  - the round loop on a jittered retry period, one loop per start();
 *  - the followers' clock: the lease counts as expired only after a whole lease duration in which
 *    this replica saw it unchanged, timed on its own monotonic clock (no wall clocks compared);
 *  - the renew-deadline clock: a leader stops leading on a timer of its own once a renew deadline
 *    has passed without a successful renewal, even while its requests hang — before any follower
 *    can have waited out the longer lease duration;
 *  - taking a term: a new epoch from the EpochStore, and leading only if still allowed to;
 *  - stepping down, and handing the lease back on stop() so a successor need not wait it out.
 * Subclasses say how one round acquires or renews, and how the lease is released.
 */
import type { Logger } from '../../logger.js';
import { monotonicMs } from '../cluster-state.js';
import { validateElectorTimings, type Elector, type ElectorTimings, type EpochStore, type Leadership } from './elector.js';

/** What every lease elector is told, whatever holds its lease. */
export interface LeaseElectorOptions {
  readonly leaseName: string;
  readonly id: string;
  /** Where other replicas reach this one (forwarded buys go there while it leads). */
  readonly url: string;
  readonly timings: ElectorTimings;
  readonly epochs: EpochStore;
  readonly log: Logger;
}

export abstract class LeaseElectorBase implements Elector {
  readonly id: string;
  protected readonly timings: ElectorTimings;
  protected readonly log: Logger;
  protected leadership: Leadership = { role: 'secondary', epoch: 0, leaderId: null };
  protected stopped = false;
  private leaderUrl: string | null = null;
  /** Monotonic time the last successful renewal was sent; -Infinity when not leading. */
  private renewedAt = -Infinity;
  /** The lease as a follower last saw it change (`key` identifies its state), and when. */
  private observed: { key: string; at: number } | null = null;
  private readonly listeners = new Set<(l: Leadership) => void>();
  private roundTimer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;
  /** Bumped by every start(), so a round still running from before a stop() cannot start a second loop. */
  private loop = 0;
  /** The round running now, if any: stop() lets it land before handing the lease back. */
  private running: Promise<void> | null = null;

  constructor(private readonly base: LeaseElectorOptions) {
    this.id = base.id;
    this.log = base.log;
    this.timings = validateElectorTimings(base.timings);
  }

  /** One acquisition or renewal attempt. */
  protected abstract round(): Promise<void>;

  /** Hand the held lease back (no holder), best effort; called once this replica stopped leading. */
  protected abstract release(): Promise<void>;

  /** Called after stepping down (e.g. to take the role label off the pod); errors are ignored. */
  protected async afterStepDown(): Promise<void> {}

  async start(): Promise<void> {
    this.stopped = false;
    const loop = ++this.loop;
    try {
      await this.runRound();
    } finally {
      this.schedule(loop);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.roundTimer) clearTimeout(this.roundTimer);
    // A renewal in flight moves the lease past the version release() would hand back: released
    // before it lands, the release is refused as stale and the successor waits the lease out.
    // Every round's requests are bounded (by the renew deadline at most), so this wait is too.
    await this.running?.catch(() => undefined);
    if (this.leadership.role !== 'primary') return;
    await Promise.all([this.stepDown('shutting down'), this.release()]);
  }

  isLeader(): boolean {
    return this.leadership.role === 'primary' && this.remainingMs() > 0;
  }

  current(): Leadership {
    return this.leadership;
  }

  /** The URL of the replica believed to lead, or null. */
  currentLeaderUrl(): string | null {
    return this.leaderUrl;
  }

  onChange(listener: (l: Leadership) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** How long this replica may still act as leader without another renewal. */
  protected remainingMs(): number {
    return this.renewedAt + this.timings.renewDeadlineMs - monotonicMs();
  }

  /**
   * The followers' clock. `key` identifies the lease's state as just read at `now`; true once
   * that state has not changed for a whole lease duration on this replica's clock. A lease still
   * naming this replica (from before a restart or a lost renewal) is waited out like any other.
   */
  protected silentForLeaseDuration(key: string, now: number): boolean {
    if (this.observed?.key !== key) this.observed = { key, at: now };
    return now - this.observed.at >= this.timings.leaseDurationMs;
  }

  /** A renewal sent at `at` succeeded: leading may go on until `at` + the renew deadline. */
  protected renewed(at: number): void {
    this.renewedAt = at;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(() => {
      if (this.leadership.role === 'primary' && !this.isLeader()) void this.stepDown('renew deadline passed');
    }, Math.max(0, this.remainingMs()) + 1);
  }

  /**
   * The lease was won by a write sent at `at`: take a new epoch and lead — unless stopped meanwhile
   * (the lease goes straight back) or the renew deadline passed while the epoch was taken.
   * @returns whether this replica now leads.
   */
  protected async lead(at: number): Promise<boolean> {
    this.renewed(at);
    // A contender that stalled after winning must not raise the epoch once its lease may have
    // lapsed: that would fence off whoever leads by then. (A stall inside beginTerm can still do
    // it; the leader then sees the fence move and steps down — see ClusterController.checkFence.)
    if (this.stopped || this.remainingMs() <= 0) {
      this.forgetTerm();
      if (this.stopped) await this.release();
      return false;
    }
    const epoch = await this.base.epochs.beginTerm(this.id);
    if (this.stopped || this.remainingMs() <= 0) {
      this.forgetTerm();
      if (this.stopped) await this.release();
      return false;
    }
    this.leaderUrl = this.base.url;
    this.log.info({ epoch, lease: this.base.leaseName }, 'became primary');
    this.update({ role: 'primary', epoch, leaderId: this.id });
    return true;
  }

  /** Stop leading at once; resolves when afterStepDown() has run. */
  protected stepDown(reason: string): Promise<void> {
    this.forgetTerm();
    this.leaderUrl = null;
    if (this.leadership.role !== 'primary') return Promise.resolve();
    this.log.warn({ reason, epoch: this.leadership.epoch }, 'stepping down');
    this.update({ role: 'secondary', epoch: this.leadership.epoch, leaderId: null });
    return this.afterStepDown().catch(() => undefined);
  }

  protected noteLeader(holder: string | null, url: string | null): void {
    if (holder === this.leadership.leaderId && url === this.leaderUrl) return;
    this.leaderUrl = url;
    this.update({ role: this.leadership.role, epoch: this.leadership.epoch, leaderId: holder });
  }

  private runRound(): Promise<void> {
    const run: Promise<void> = this.round().finally(() => {
      if (this.running === run) this.running = null;
    });
    this.running = run;
    return run;
  }

  private forgetTerm(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.renewedAt = -Infinity;
    this.observed = null;
  }

  private update(next: Leadership): void {
    this.leadership = next;
    for (const listener of this.listeners) listener(next);
  }

  private schedule(loop: number): void {
    if (this.stopped || loop !== this.loop) return;
    // client-go jitters retries by up to 1.2×; validateElectorTimings accounts for it.
    const delay = this.timings.retryPeriodMs * (1 + Math.random() * 0.2);
    this.roundTimer = setTimeout(() => {
      this.runRound()
        .catch((error: unknown) => this.log.warn({ err: error }, 'lease round failed'))
        .finally(() => this.schedule(loop));
    }, delay);
  }
}
