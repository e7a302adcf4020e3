/**
 * Leader election inside Kubernetes: a coordination.k8s.io/v1 Lease, driven the way client-go's
 * leaderelection drives it, behind the same Elector contract as the MongoDB lease.
 *
 *  - Every write is a compare-and-swap on the resourceVersion last read; a 409 means the round is
 *    lost (for a leader: someone else holds the Lease now, so it steps down at once).
 *  - Followers never compare wall clocks: they note on their own monotonic clock when the Lease
 *    last changed and take over only after a whole lease duration without a change. The Lease's
 *    renewTime (MicroTime, six digits) is written for people and tools, not trusted for timing.
 *  - A leader that has not renewed within its renew deadline stops leading on a timer of its
 *    own — before any follower can have waited out the longer lease duration — even when its
 *    requests hang.
 *  - Each term takes a higher epoch from the EpochStore (MongoDB), which fences late writes.
 *  - The leader labels its pod for the primary Service (PrimaryPodLabeler) and, on SIGTERM,
 *    releases the Lease so a rolling update hands over without waiting for it to expire.
 * Where to reach the holder travels with the Lease as an annotation, for forwarding.
 */
import type { V1Lease } from '@kubernetes/client-node';
import { monotonicMs } from './cluster-state.js';
import { microTime, type KubeApi } from './kube-api.js';
import { LeaseElectorBase, type LeaseElectorOptions } from './lease-elector-base.js';
import { LeadershipLostError, type PrimaryPodLabeler } from './pod-labeler.js';

/** How many renewals pass between two checks of the role label (one list call) while leading. */
const LABEL_CHECK_EVERY_RENEWALS = 10;

/** Annotation on the Lease: the holder's URL, where the others forward buys. */
export const HOLDER_URL_ANNOTATION = 'superstock.io/holder-url';

export interface KubernetesLeaseElectorOptions extends LeaseElectorOptions {
  readonly api: KubeApi;
  /** Labels the primary's pod; null outside a pod (tests of the Lease alone). */
  readonly labeler: PrimaryPodLabeler | null;
}

export class KubernetesLeaseElector extends LeaseElectorBase {
  /** The Lease as last read or written: its resourceVersion is the next write's precondition. */
  private lease: V1Lease | null = null;
  private observed: { version: string; at: number } | null = null;
  private term = 0;
  private labelling = false;
  private renewalsSinceLabelCheck = 0;
  private deadlineTimer: NodeJS.Timeout | null = null;

  constructor(private readonly o: KubernetesLeaseElectorOptions) {
    super(o.id, o.timings, o.log);
  }

  async stop(): Promise<void> {
    this.stopRounds();
    if (this.leadership.role !== 'primary') return;
    const lease = this.lease;
    this.stepDown('shutting down', { releaseLabel: false });
    await Promise.all([lease && this.release(lease), this.o.labeler?.release(this.timings.renewDeadlineMs).catch(() => undefined)]);
  }

  /** As client-go's ReleaseOnCancel: no holder, so the next contender takes over at once. */
  private async release(lease: V1Lease): Promise<void> {
    const body = this.leaseBody(lease, { holder: null, transitions: lease.spec?.leaseTransitions ?? 0, acquired: false });
    await this.o.api.replaceLease(body, this.timings.renewDeadlineMs).catch(() => undefined);
  }

  protected async round(): Promise<void> {
    if (this.leadership.role === 'primary') return this.renew();
    return this.tryAcquire();
  }

  private async renew(): Promise<void> {
    const lease = this.lease;
    if (!lease || !this.isLeader()) return this.stepDown('renew deadline passed');
    const attemptAt = monotonicMs();
    const body = this.leaseBody(lease, { holder: this.id, transitions: lease.spec?.leaseTransitions ?? 0, acquired: false });
    const renewed = await this.o.api.replaceLease(body, Math.max(1, Math.floor(this.remainingMs())));
    if (this.leadership.role !== 'primary') return; // the deadline passed while the request ran
    if (!renewed) return this.stepDown('the Lease changed under us (409): another replica holds it');
    this.lease = renewed;
    // Count from when the request was sent: the Lease cannot have lapsed before that.
    this.renewedAt = attemptAt;
    this.armDeadline();
    // Re-check the label now and then: a pod recreated or relabelled by hand mid-term gets it back.
    if (++this.renewalsSinceLabelCheck >= LABEL_CHECK_EVERY_RENEWALS) void this.labelPod(this.term);
  }

  private async tryAcquire(): Promise<void> {
    const now = monotonicMs();
    const timeout = this.timings.renewDeadlineMs;
    const lease = await this.o.api.readLease(this.o.leaseName, timeout);
    if (!lease) {
      const created = await this.o.api.createLease(this.leaseBody(null, { holder: this.id, transitions: 0, acquired: true }), timeout);
      if (created) await this.won(created, now);
      return;
    }
    this.lease = lease;
    const version = lease.metadata?.resourceVersion ?? '';
    if (this.observed?.version !== version) this.observed = { version, at: now };
    const holder = lease.spec?.holderIdentity || null;
    this.noteLeader(holder, holder ? (lease.metadata?.annotations?.[HOLDER_URL_ANNOTATION] ?? null) : null);
    // A Lease still naming us (from before a restart) is waited out like any other.
    const expired = holder === null || now - this.observed.at >= this.timings.leaseDurationMs;
    if (!expired) return;
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === this.id ? 0 : 1);
    const taken = await this.o.api.replaceLease(this.leaseBody(lease, { holder: this.id, transitions, acquired: true }), timeout);
    if (taken) await this.won(taken, now);
  }

  private async won(lease: V1Lease, at: number): Promise<void> {
    this.lease = lease;
    this.renewedAt = at;
    const epoch = await this.o.epochs.beginTerm(this.id);
    if (this.stopped || this.remainingMs() <= 0) {
      // Too late to lead this term: stopped meanwhile (hand the Lease straight back), or the
      // renew deadline passed (the Lease lapses or is taken over, and we compete again).
      if (this.stopped) await this.release(lease);
      this.renewedAt = -Infinity;
      this.observed = null;
      return;
    }
    this.term += 1;
    this.leaderUrl = this.o.url;
    this.armDeadline();
    this.o.log.info({ epoch, lease: this.o.leaseName, transitions: lease.spec?.leaseTransitions ?? 0 }, 'became primary');
    this.update({ role: 'primary', epoch, leaderId: this.id });
    void this.labelPod(this.term);
  }

  /** Settle the role label for this term, retrying until done or until the term ends. */
  private async labelPod(term: number): Promise<void> {
    const labeler = this.o.labeler;
    if (!labeler || this.labelling) return;
    this.labelling = true;
    this.renewalsSinceLabelCheck = 0;
    try {
      while (!this.stopped && this.term === term && this.isLeader()) {
        try {
          await labeler.claim(() => (this.term === term ? this.remainingMs() : 0));
          return;
        } catch (error) {
          if (error instanceof LeadershipLostError) return;
          this.o.log.warn({ err: error }, 'could not label the primary pod; retrying');
          await new Promise((resolve) => setTimeout(resolve, this.timings.retryPeriodMs));
        }
      }
    } finally {
      this.labelling = false;
    }
  }

  private armDeadline(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(() => {
      if (this.leadership.role === 'primary' && !this.isLeader()) this.stepDown('renew deadline passed');
    }, Math.max(0, this.remainingMs()) + 1);
  }

  private stepDown(reason: string, { releaseLabel } = { releaseLabel: true }): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    const wasPrimary = this.leadership.role === 'primary';
    this.renewedAt = -Infinity;
    this.observed = null;
    this.leaderUrl = null;
    this.term += 1;
    if (!wasPrimary) return;
    this.o.log.warn({ reason, epoch: this.leadership.epoch }, 'stepping down');
    this.update({ role: 'secondary', epoch: this.leadership.epoch, leaderId: null });
    if (releaseLabel && this.o.labeler) {
      // Best effort: cut off from the API this fails, and the next primary's sweep removes it.
      this.o.labeler.release(this.timings.retryPeriodMs).catch(() => undefined);
    }
  }

  private leaseBody(base: V1Lease | null, next: { holder: string | null; transitions: number; acquired: boolean }): V1Lease {
    const now = microTime();
    const annotations = { ...base?.metadata?.annotations };
    if (next.holder) annotations[HOLDER_URL_ANNOTATION] = this.o.url;
    else delete annotations[HOLDER_URL_ANNOTATION];
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: this.o.leaseName,
        namespace: this.o.api.namespace,
        resourceVersion: base?.metadata?.resourceVersion,
        labels: base?.metadata?.labels,
        annotations,
      },
      spec: {
        holderIdentity: next.holder ?? undefined,
        leaseDurationSeconds: next.holder ? Math.max(1, Math.ceil(this.timings.leaseDurationMs / 1000)) : 1,
        acquireTime: next.acquired ? now : base?.spec?.acquireTime,
        renewTime: now,
        leaseTransitions: next.transitions,
      },
    };
  }
}
