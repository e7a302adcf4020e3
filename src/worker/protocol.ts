/**
 * What the supervisor and a worker may ask each other (see rpc.ts), and what a worker is given
 * at birth.
 */
import type { MessagePort } from 'node:worker_threads';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Config } from '../config.js';
import type { AllotmentAnswer, AllotmentRequest } from '../cluster/allotments/protocol.js';
import type { IdempotencyAnswer, IdempotencyAsk } from './idempotency-batch.js';

export interface WorkerData {
  readonly index: number;
  readonly config: Config;
  readonly buffer: SharedArrayBuffer;
  readonly capacity: number;
  readonly signalPort: MessagePort;
  /** The ClusterState buffer and its clock origin (see cluster-state.ts). */
  readonly clusterBuffer: SharedArrayBuffer;
  readonly clusterOrigin: number;
}

/** Served by the supervisor, called by workers. */
export interface SupervisorApi {
  [method: string]: (...args: never[]) => unknown;
  listening(index: number): void;
  /** The HTTP server could not bind (`code`: the system error's code, e.g. EADDRINUSE). */
  cannotListen(index: number, code: string): void;
  /**
   * The idempotency registry's claims, completions and releases of one event-loop turn, in one
   * message, applied in order (idempotency-batch.ts).
   */
  idempotencyBatch(asks: IdempotencyAsk[]): Promise<IdempotencyAnswer[]>;
  /** Allotments mode: replenish an allotment, Peek the global view, or an admin change (allotments/protocol.ts). */
  allotment(request: AllotmentRequest): Promise<AllotmentAnswer>;
}

/** Served by each worker, called by the supervisor. */
export interface WorkerApi {
  [method: string]: (...args: never[]) => unknown;
  snapshot(): Promise<MetricObjectWithValues<MetricValue<string>>[]>;
  /** Stop accepting, finish in-flight requests, close connections and clients. */
  shutdown(): Promise<void>;
  /** Where buys go while this replica may not sell (null: nowhere, answer 503). */
  setPrimary(url: string | null): void;
}
