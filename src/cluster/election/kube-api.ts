/**
 * The few Kubernetes API calls the cluster code makes, over @kubernetes/client-node: read, create
 * and replace one Lease, list pods by label and patch a pod's labels. It exists to pin down three
 * things the generated client leaves open:
 *  - every call is bounded by a timeout (an API server that does not answer must not stall an
 *    election round past its renew deadline);
 *  - a 409 Conflict is an answer, not an error: `null` tells the caller its optimistic write lost
 *    (the resourceVersion it read is stale, or someone created the object first);
 *  - Lease times go out as MicroTime with six fractional digits — a plain Date serialises with
 *    three, which the API server rejects with a 400.
 */
import { createRequire } from 'node:module';
import type * as KubeClient from '@kubernetes/client-node';
import type { ConfigurationOptions, CoordinationV1Api, CoreV1Api, KubeConfig, Observable, RequestContext, ResponseContext, V1Lease, V1MicroTime } from '@kubernetes/client-node';

/**
 * client-node is loaded on first use, not at import: it costs about 60 MiB of resident memory in
 * the thread that loads it, which only a replica electing through Kubernetes should pay.
 */
const requireModule = createRequire(import.meta.url);
let loaded: typeof KubeClient | null = null;
function kubeClient(): typeof KubeClient {
  return (loaded ??= requireModule('@kubernetes/client-node') as typeof KubeClient);
}

const CONFLICT = 409;
const NOT_FOUND = 404;
const MERGE_PATCH = 'application/merge-patch+json';

/** A Lease time in the API's MicroTime form (RFC 3339 with exactly six fractional digits). */
export function microTime(at: Date = new Date()): V1MicroTime {
  return new (kubeClient().V1MicroTime)(at.getTime());
}

export class KubeApiError extends Error {
  constructor(
    readonly operation: string,
    readonly status: number | null,
    message: string,
  ) {
    super(`${operation}: ${message}`);
    this.name = 'KubeApiError';
  }
}

/** Client-node middleware: abort the request after `timeoutMs`, optionally set the body's type. */
function requestOptions(timeoutMs: number, contentType?: string): ConfigurationOptions {
  const client = kubeClient();
  return {
    middleware: [
      {
        pre(context: RequestContext): Observable<RequestContext> {
          context.setSignal(AbortSignal.timeout(timeoutMs));
          if (contentType) context.setHeaderParam('Content-Type', contentType);
          return new client.Observable(Promise.resolve(context));
        },
        post(context: ResponseContext): Observable<ResponseContext> {
          return new client.Observable(Promise.resolve(context));
        },
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

function statusOf(error: unknown): number | null {
  return error instanceof kubeClient().ApiException && typeof error.code === 'number' ? error.code : null;
}

/** Loads credentials the standard way: $KUBECONFIG or ~/.kube/config, else the pod's ServiceAccount. */
export function loadKubeConfig(): KubeConfig {
  const kc = new (kubeClient().KubeConfig)();
  kc.loadFromDefault();
  return kc;
}

export class KubeApi {
  private readonly coordination: CoordinationV1Api;
  private readonly core: CoreV1Api;

  constructor(
    kubeConfig: KubeConfig,
    readonly namespace: string,
  ) {
    this.coordination = kubeConfig.makeApiClient(kubeClient().CoordinationV1Api);
    this.core = kubeConfig.makeApiClient(kubeClient().CoreV1Api);
  }

  /** The Lease, or null when it does not exist yet. */
  async readLease(name: string, timeoutMs: number): Promise<V1Lease | null> {
    try {
      return await this.coordination.readNamespacedLease({ name, namespace: this.namespace }, requestOptions(timeoutMs));
    } catch (error) {
      if (statusOf(error) === NOT_FOUND) return null;
      throw this.wrap('read lease', error);
    }
  }

  /** The created Lease, or null when another contender created it first. */
  async createLease(body: V1Lease, timeoutMs: number): Promise<V1Lease | null> {
    try {
      return await this.coordination.createNamespacedLease({ namespace: this.namespace, body }, requestOptions(timeoutMs));
    } catch (error) {
      if (statusOf(error) === CONFLICT) return null;
      throw this.wrap('create lease', error);
    }
  }

  /** Compare-and-swap on `body.metadata.resourceVersion`: the new Lease, or null when it was stale. */
  async replaceLease(body: V1Lease, timeoutMs: number): Promise<V1Lease | null> {
    const name = body.metadata?.name ?? '';
    try {
      return await this.coordination.replaceNamespacedLease({ name, namespace: this.namespace, body }, requestOptions(timeoutMs));
    } catch (error) {
      if (statusOf(error) === CONFLICT) return null;
      throw this.wrap('replace lease', error);
    }
  }

  /** Names of the pods matching a label selector. */
  async listPodNames(labelSelector: string, timeoutMs: number): Promise<string[]> {
    try {
      const list = await this.core.listNamespacedPod({ namespace: this.namespace, labelSelector }, requestOptions(timeoutMs));
      return list.items.flatMap((pod) => (pod.metadata?.name ? [pod.metadata.name] : []));
    } catch (error) {
      throw this.wrap('list pods', error);
    }
  }

  /** Set (string) or remove (null) labels on a pod with a JSON merge patch. */
  async patchPodLabels(name: string, labels: Readonly<Record<string, string | null>>, timeoutMs: number): Promise<void> {
    try {
      await this.core.patchNamespacedPod({ name, namespace: this.namespace, body: { metadata: { labels } } }, requestOptions(timeoutMs, MERGE_PATCH));
    } catch (error) {
      throw this.wrap(`patch pod ${name}`, error);
    }
  }

  private wrap(operation: string, error: unknown): KubeApiError {
    const status = statusOf(error);
    const message = error instanceof kubeClient().ApiException ? `HTTP ${error.code}: ${String(error.body).slice(0, 300)}` : error instanceof Error ? error.message : String(error);
    return new KubeApiError(operation, status, message);
  }
}
