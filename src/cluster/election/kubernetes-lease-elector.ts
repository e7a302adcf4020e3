/**
 * Leader election inside Kubernetes: a coordination.k8s.io/v1 Lease behind the same Elector
 * contract as the MongoDB lease (the timing rules both share live in LeaseElectorBase).
 *
 *  - Every write is a compare-and-swap on the resourceVersion last read; a 409 means the round is
 *    lost (for a leader: someone else holds the Lease now, so it steps down at once).
 *  - The follower's clock keys on the resourceVersion; the Lease's renewTime (MicroTime, six
 *    digits) is written for people and tools, not trusted for timing.
 *  - The leader labels its pod for the primary Service (PrimaryPodLabeler); stopping releases the
 *    Lease so a rolling update hands over without waiting for it to expire.
 * Where to reach the holder travels with the Lease as an annotation, for forwarding.
 */
import type { V1Lease } from '@kubernetes/client-node';
import { monotonicMs } from '../cluster-state.js';
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
  /** Numbers the terms this replica led, so a labelling loop knows when its term is over. */
  private term = 0;
  private labelling = false;
  private renewalsSinceLabelCheck = 0;

  constructor(private readonly o: KubernetesLeaseElectorOptions) {
    super(o);
  }

  protected async round(): Promise<void> {
    if (this.leadership.role === 'primary') return this.renew();
    return this.tryAcquire();
  }

  /** As client-go's ReleaseOnCancel: no holder, so the next contender takes over at once. */
  protected async release(): Promise<void> {
    if (!this.lease) return;
    const body = this.leaseBody(this.lease, { holder: null, transitions: this.transitions(), acquired: false });
    await this.o.api.replaceLease(body, this.timings.renewDeadlineMs).catch(() => undefined);
  }

  /** Best effort: cut off from the API this fails, and the next primary's sweep removes the label. */
  protected override async afterStepDown(): Promise<void> {
    this.term += 1;
    await this.o.labeler?.release(this.timings.retryPeriodMs);
  }

  private async renew(): Promise<void> {
    const lease = this.lease;
    if (!lease || !this.isLeader()) return this.stepDown('renew deadline passed');
    const attemptAt = monotonicMs();
    const body = this.leaseBody(lease, { holder: this.id, transitions: this.transitions(), acquired: false });
    const renewed = await this.o.api.replaceLease(body, Math.max(1, Math.floor(this.remainingMs())));
    if (this.leadership.role !== 'primary') return; // the deadline passed while the request ran
    if (!renewed) return this.stepDown('the Lease changed under us (409): another replica holds it');
    this.lease = renewed;
    // Count from when the request was sent: the Lease cannot have lapsed before that.
    this.renewed(attemptAt);
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
    const silent = this.silentForLeaseDuration(lease.metadata?.resourceVersion ?? '', now);
    const holder = lease.spec?.holderIdentity || null;
    this.noteLeader(holder, holder ? (lease.metadata?.annotations?.[HOLDER_URL_ANNOTATION] ?? null) : null);
    if (holder !== null && !silent) return;
    const transitions = this.transitions() + (holder === this.id ? 0 : 1);
    const taken = await this.o.api.replaceLease(this.leaseBody(lease, { holder: this.id, transitions, acquired: true }), timeout);
    if (taken) await this.won(taken, now);
  }

  private async won(lease: V1Lease, at: number): Promise<void> {
    this.lease = lease;
    if (!(await this.lead(at))) return;
    this.term += 1;
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
          this.log.warn({ err: error }, 'could not label the primary pod; retrying');
          await new Promise((resolve) => setTimeout(resolve, this.timings.retryPeriodMs));
        }
      }
    } finally {
      this.labelling = false;
    }
  }

  private transitions(): number {
    return this.lease?.spec?.leaseTransitions ?? 0;
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
