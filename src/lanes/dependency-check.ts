/**
 * A dependency a replica needs in order to sell (MongoDB, Redis, a reachable primary), as /readyz
 * checks it. The lanes and the cluster controller produce these; the probe route only runs them.
 * A check that fails says why: its error's message is the reason /readyz shows, and a
 * `NotReadyError` names a state more precise than `unavailable`.
 */
export interface DependencyCheck {
  /**
   * `primary`: this replica sells, or knows which replica does. `allotments` (CLUSTER_MODE=allotments):
   * this replica holds a live term on its own ledger stream, so it may sell its allotments.
   */
  readonly name: 'mongo' | 'redis' | 'primary' | 'allotments';
  check(): Promise<void>;
}

/** What /readyz reports for one check: fine, missing, not set up, or (`primary`) a takeover or fencing under way. */
export const READINESS_STATES = ['ok', 'unavailable', 'not_configured', 'taking_over', 'fenced'] as const;
export type ReadinessState = (typeof READINESS_STATES)[number];

/** A failed check with a state of its own (`taking_over`, `fenced`) and the reason to show. */
export class NotReadyError extends Error {
  constructor(
    readonly state: Exclude<ReadinessState, 'ok' | 'not_configured'>,
    reason: string,
  ) {
    super(reason);
    this.name = 'NotReadyError';
  }
}
