/**
 * The clients of a checked run: buyers on every lane (keyed and unkeyed, quantities 1-3, each
 * request to a random live replica) and one admin client (a PUT that creates a SKU while buyers
 * already ask for it, restocks throughout, and — if asked — PUTs and resets mid-sale). Every request goes through the HistoryRecorder. A
 * keyed request that got no final answer is retried with the same key once the faults are over —
 * as a real client resolves an unknown outcome — and those retries are in the history too.
 * Choices come from a seeded generator, so a run's workload can be replayed.
 */
import { classify } from './checker.js';
import type { HistoryRecorder, Target } from './history.js';

/** mulberry32: small, fast, good enough to pick requests; the same seed gives the same choices. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SkuPlan {
  readonly sku: string;
  readonly stock: number;
  /** Created by the admin client during the run (buyers ask for it before it exists). */
  readonly createdMidRun?: boolean;
}

export interface WorkloadOptions {
  readonly recorder: HistoryRecorder;
  readonly lanes: readonly string[];
  readonly skus: readonly SkuPlan[];
  readonly buyersPerLane: number;
  /** Share of buys that carry an idempotency key. */
  readonly keyedShare: number;
  readonly adminIntervalMs: number;
  readonly random: () => number;
  /** The replicas a client may talk to right now. */
  readonly targets: () => readonly Target[];
  /** A client pauses this long after an answer other than 200 (as real clients back off). */
  readonly backoffMs: number;
  /**
   * Share of admin calls that set counts mid-sale instead of restocking: a PUT of an existing SKU
   * (sold back to 0) or, a tenth as often, a reset of every SKU.
   */
  readonly resettingShare?: number;
}

interface Unresolved {
  readonly lane: string;
  readonly sku: string;
  readonly quantity: number;
  readonly key: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Workload {
  private running = false;
  private loops: Array<Promise<void>> = [];
  private keyCounter = 0;
  private readonly unresolved = new Map<string, Unresolved>();
  private readonly runId: string;

  constructor(private readonly o: WorkloadOptions) {
    this.runId = Math.floor(o.random() * 2 ** 32).toString(36);
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.o.random() * items.length)] as T;
  }

  start(): void {
    this.running = true;
    for (const lane of this.o.lanes) for (let i = 0; i < this.o.buyersPerLane; i++) this.loops.push(this.buyer(lane));
    this.loops.push(this.admin());
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
  }

  private async buyer(lane: string): Promise<void> {
    while (this.running) {
      const targets = this.o.targets();
      if (targets.length === 0) {
        await sleep(this.o.backoffMs);
        continue;
      }
      const { sku } = this.pick(this.o.skus);
      const quantity = 1 + Math.floor(this.o.random() * 3);
      const key = this.o.random() < this.o.keyedShare ? `${this.runId}-${lane}-${++this.keyCounter}` : null;
      const record = await this.o.recorder.buy(this.pick(targets), lane, sku, quantity, key);
      // Unknown outcomes must be resolved; a 503 may be retried too (it changed nothing, so the
      // retry is a fresh attempt under the same key).
      if (key !== null && (classify(record.status, record.body) === 'unknown' || record.status === 503)) this.unresolved.set(key, { lane, sku, quantity, key });
      if (record.status !== 200) await sleep(this.o.backoffMs);
    }
  }

  private async admin(): Promise<void> {
    const created = new Set<string>();
    while (this.running) {
      await sleep(this.o.adminIntervalMs);
      const targets = this.o.targets();
      if (!this.running || targets.length === 0) continue;
      const pending = this.o.skus.find((s) => s.createdMidRun && !created.has(s.sku));
      if (pending) {
        const record = await this.o.recorder.put(this.pick(targets), pending.sku, pending.stock);
        if (classify(record.status, record.body) === 'ok') created.add(pending.sku);
        continue;
      }
      const roll = this.o.random();
      const resetting = this.o.resettingShare ?? 0;
      if (roll < resetting / 10) await this.o.recorder.reset(this.pick(targets));
      else if (roll < resetting) {
        const { sku, stock } = this.pick(this.o.skus);
        await this.o.recorder.put(this.pick(targets), sku, stock);
      } else await this.o.recorder.restock(this.pick(targets), this.pick(this.o.skus).sku, 1 + Math.floor(this.o.random() * 5));
    }
  }

  /**
   * After the faults: retry every keyed buy that got no final answer, with its key, until it gets
   * one (200, or a refusal that is not 503 or "in progress") or `timeoutMs` passes.
   */
  async resolveUnknowns(timeoutMs: number): Promise<{ resolved: number; left: number }> {
    const deadline = Date.now() + timeoutMs;
    let resolved = 0;
    const queue = [...this.unresolved.values()];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
          while (Date.now() < deadline) {
            const targets = this.o.targets();
            if (targets.length > 0) {
              const record = await this.o.recorder.buy(this.pick(targets), next.lane, next.sku, next.quantity, next.key);
              // Resolved: sold, or a refusal other than "try again" (503) and "still in progress".
              const outcome = classify(record.status, record.body);
              const inProgress = (record.body as { error?: { code?: string } } | null)?.error?.code === 'idempotency_key_in_use';
              if (outcome === 'ok' || (outcome === 'refused' && record.status !== 503 && !inProgress)) {
                this.unresolved.delete(next.key);
                resolved++;
                break;
              }
            }
            await sleep(100);
          }
        }
      }),
    );
    return { resolved, left: this.unresolved.size };
  }
}
