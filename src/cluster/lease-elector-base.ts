/**
 * What both lease electors share, whatever holds the lease (a MongoDB document, a Kubernetes
 * Lease): the round loop on client-go's jittered retry period, the renew-deadline clock that
 * decides whether this replica may still act as leader, and the leadership that listeners see.
 * Subclasses say how one round acquires or renews, and how a lease is released.
 */
import type { Logger } from '../logger.js';
import { monotonicMs } from './cluster-state.js';
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
  protected leadership: Leadership = { role: 'secondary', epoch: 0, leaderId: null };
  protected leaderUrl: string | null = null;
  /** Monotonic time the last successful renewal was sent; -Infinity when not leading. */
  protected renewedAt = -Infinity;
  protected stopped = false;
  private readonly listeners = new Set<(l: Leadership) => void>();
  private roundTimer: NodeJS.Timeout | null = null;
  /** Bumped by every start(), so a round still running from before a stop() cannot start a second loop. */
  private loop = 0;

  constructor(
    id: string,
    timings: ElectorTimings,
    protected readonly log: Logger,
  ) {
    this.id = id;
    this.timings = validateElectorTimings(timings);
  }

  /** One acquisition or renewal attempt. */
  protected abstract round(): Promise<void>;

  abstract stop(): Promise<void>;

  async start(): Promise<void> {
    this.stopped = false;
    const loop = ++this.loop;
    try {
      await this.round();
    } finally {
      this.schedule(loop);
    }
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

  /** Stop the round loop (subclasses then release what they hold). */
  protected stopRounds(): void {
    this.stopped = true;
    if (this.roundTimer) clearTimeout(this.roundTimer);
  }

  /** How long this replica may still act as leader without another renewal. */
  protected remainingMs(): number {
    return this.renewedAt + this.timings.renewDeadlineMs - monotonicMs();
  }

  protected noteLeader(holder: string | null, url: string | null): void {
    if (holder === this.leadership.leaderId && url === this.leaderUrl) return;
    this.leaderUrl = url;
    this.update({ role: this.leadership.role, epoch: this.leadership.epoch, leaderId: holder });
  }

  protected update(next: Leadership): void {
    this.leadership = next;
    for (const listener of this.listeners) listener(next);
  }

  private schedule(loop: number): void {
    if (this.stopped || loop !== this.loop) return;
    // client-go jitters retries by up to 1.2×; validateElectorTimings accounts for it.
    const delay = this.timings.retryPeriodMs * (1 + Math.random() * 0.2);
    this.roundTimer = setTimeout(() => {
      this.round()
        .catch((error: unknown) => this.log.warn({ err: error }, 'lease round failed'))
        .finally(() => this.schedule(loop));
    }, delay);
  }
}
