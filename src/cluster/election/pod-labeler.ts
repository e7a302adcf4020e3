/**
 * Keeps the `superstock.io/role=primary` label on the primary's pod and on no other, so the
 * label-selected primary Service routes writes to exactly one replica.
 *
 * Order matters. A new primary first removes the label from every other pod that still carries
 * it (a deposed primary cut off from the API cannot remove its own), and only then labels its own
 * pod — labelling first would leave a moment in which the Service selects two pods, the race
 * Zalando's postgres-operator avoids the same way. The self-label is sent only while the lease is
 * still held, and every call is bounded by what is left of the renew deadline, so a deposed
 * primary's late write cannot land after its successor has swept.
 */
import type { KubeApi } from './kube-api.js';

export const ROLE_LABEL = 'superstock.io/role';
export const PRIMARY_ROLE = 'primary';

export interface PodLabelerOptions {
  readonly api: KubeApi;
  readonly podName: string;
  /** Extra selector naming this cluster's pods (e.g. `app.kubernetes.io/instance=prod`), or ''. */
  readonly podSelector: string;
}

export class PrimaryPodLabeler {
  private readonly selector: string;

  constructor(private readonly o: PodLabelerOptions) {
    this.selector = [`${ROLE_LABEL}=${PRIMARY_ROLE}`, o.podSelector].filter((part) => part !== '').join(',');
  }

  /**
   * Label this pod as the primary's after unlabelling every other one.
   * @param remainingMs how long this replica may still act as leader (0 or less: stop).
   * Resolves once this pod carries the label and no other does; throws LeadershipLostError when
   * leadership ran out first.
   */
  async claim(remainingMs: () => number): Promise<void> {
    const labelled = await this.o.api.listPodNames(this.selector, this.budget(remainingMs));
    for (const name of labelled) {
      if (name !== this.o.podName) await this.o.api.patchPodLabels(name, { [ROLE_LABEL]: null }, this.budget(remainingMs));
    }
    if (!labelled.includes(this.o.podName)) {
      await this.o.api.patchPodLabels(this.o.podName, { [ROLE_LABEL]: PRIMARY_ROLE }, this.budget(remainingMs));
    }
  }

  /** Remove the label from this pod (on stepping down or shutting down). */
  async release(timeoutMs: number): Promise<void> {
    await this.o.api.patchPodLabels(this.o.podName, { [ROLE_LABEL]: null }, timeoutMs);
  }

  private budget(remainingMs: () => number): number {
    const left = Math.floor(remainingMs());
    if (left <= 0) throw new LeadershipLostError();
    return left;
  }
}

export class LeadershipLostError extends Error {
  constructor() {
    super('leadership ran out before the pod labels were settled');
    this.name = 'LeadershipLostError';
  }
}
