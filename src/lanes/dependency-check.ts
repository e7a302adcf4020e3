/**
 * A dependency a replica needs in order to sell (MongoDB, Redis, a reachable primary), as /readyz
 * checks it. The lanes and the cluster controller produce these; the probe route only runs them.
 */
export interface DependencyCheck {
  /**
   * `primary`: this replica sells, or knows which replica does. `allotments` (CLUSTER_MODE=allotments):
   * this replica holds a live term on its own ledger stream, so it may sell its allotments.
   */
  readonly name: 'mongo' | 'redis' | 'primary' | 'allotments';
  check(): Promise<void>;
}
