/**
 * The contract every leader-election backend meets (MongoDB lease document outside Kubernetes,
 * a coordination.k8s.io/v1 Lease inside it), so the rest of the service never knows which one
 * runs. Modelled on client-go's leaderelection: a leader that has not renewed within its renew
 * deadline stops acting as leader *before* its lease can expire for the others, and every new
 * term takes a higher epoch from MongoDB, which fences late writes from a deposed primary.
 */

export type Role = 'primary' | 'secondary';

export interface Leadership {
  readonly role: Role;
  /** Fencing token of the current term as this replica knows it; 0 before any term. */
  readonly epoch: number;
  /** Holder of the lease as last observed, or null when nobody holds a live lease. */
  readonly leaderId: string | null;
}

export interface ElectorTimings {
  /** How long followers wait, from the last renewal they observed, before taking over. */
  readonly leaseDurationMs: number;
  /** How long the leader keeps acting as leader without a successful renewal. */
  readonly renewDeadlineMs: number;
  /** Pause between acquisition/renewal attempts. */
  readonly retryPeriodMs: number;
}

/** Defaults chosen so a killed primary is replaced within 5 s (lease + one retry ≈ 3.5 s). */
export const DEFAULT_ELECTOR_TIMINGS: ElectorTimings = {
  leaseDurationMs: 3000,
  renewDeadlineMs: 2000,
  retryPeriodMs: 500,
};

/** client-go's JitterFactor: retries may be stretched by up to this much. */
const JITTER_FACTOR = 1.2;

export class InvalidElectorTimingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidElectorTimingsError';
  }
}

/** leaseDuration > renewDeadline > JITTER_FACTOR × retryPeriod, as client-go insists. */
export function validateElectorTimings(t: ElectorTimings): ElectorTimings {
  if (!(t.leaseDurationMs > t.renewDeadlineMs)) {
    throw new InvalidElectorTimingsError(`lease duration (${t.leaseDurationMs} ms) must exceed renew deadline (${t.renewDeadlineMs} ms)`);
  }
  if (!(t.renewDeadlineMs > JITTER_FACTOR * t.retryPeriodMs)) {
    throw new InvalidElectorTimingsError(`renew deadline (${t.renewDeadlineMs} ms) must exceed ${JITTER_FACTOR} × retry period (${t.retryPeriodMs} ms)`);
  }
  return t;
}

/** Where terms are numbered: raising the epoch is one atomic MongoDB update. */
export interface EpochStore {
  /** Start a new term for `holderId` and return its epoch, strictly above every earlier one. */
  beginTerm(holderId: string): Promise<number>;
}

export interface Elector {
  readonly id: string;
  /** Begin competing; resolves once the first round has run. */
  start(): Promise<void>;
  /** Stop competing and release a held lease so another replica takes over at once. */
  stop(): Promise<void>;
  /** True only while this replica holds the lease and renewed it within the renew deadline. */
  isLeader(): boolean;
  current(): Leadership;
  /** Called on every change of role, epoch or observed leader; returns an unsubscribe function. */
  onChange(listener: (leadership: Leadership) => void): () => void;
}
