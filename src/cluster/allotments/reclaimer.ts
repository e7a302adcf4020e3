/**
 * Reclaiming what dead or paused replicas held (allotments mode). Every replica watches the other
 * replicas' ledger streams: a stream whose heartbeat has not moved for LEASE_DURATION_MS — timed on
 * the watcher's own monotonic clock, as the MongoDB lease elector does, so no wall clocks are
 * compared — has an expired lease. Only then is it fenced: its epoch is raised with a
 * compare-and-swap on the epoch and heartbeat seen (a holder that beat meanwhile is alive after
 * all), and every batch number its old epoch reserved is sealed, so a late write of the old epoch
 * fails on a duplicate key and is never acknowledged. Then what the stream's ledger says it sold
 * under that epoch is settled, and the rest of each allotment goes back to the pool.
 *
 * A paused replica that wakes up finds its gate closed (its own deadline ran out before the lease
 * did), its heartbeat refused, its ledger writes refused: it begins a new term with nothing in
 * memory, and cannot sell a unit that was handed to someone else.
 */
import type { Collection, Db } from 'mongodb';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../logger.js';
import { bounded } from '../../mongo.js';
import { PREFIX } from '../../metrics.js';
import { monotonicMs } from '../cluster-state.js';
import { Fence, FencedError, replicaStream } from '../ledger/ledger.js';
import { hostField, type PoolStore } from './pool-store.js';

const STREAM_PREFIX = 'stream:';
/**
 * A watch round that has not finished in this long is given up and the next one starts (a call on
 * a connection that died without a word can wait forever; the steps of a reclaim can be repeated).
 */
const WATCH_ROUND_LIMIT_MS = 15_000;

interface StreamFence {
  _id: string;
  epoch: number;
  beat?: number;
  holder: string;
  sealing: Array<{ epoch: number }>;
}

interface Observed {
  epoch: number;
  beat: number;
  since: number;
}

export interface ReclaimerOptions {
  readonly db: Db;
  readonly store: PoolStore;
  readonly hostId: string;
  readonly timeoutMs: number;
  readonly leaseDurationMs: number;
  readonly log: Logger;
  readonly registry: Registry;
}

export class Reclaimer {
  private readonly fences: Collection<StreamFence>;
  private readonly observed = new Map<string, Observed>();
  /** Per host, the epoch below which its allotments are known closed. */
  private readonly closedBelow = new Map<string, number>();
  /** When the round in progress began (null: none); a round stuck on a call that never answers is given up. */
  private watchingSince: number | null = null;
  private readonly reclaims: Counter;
  private readonly unitsReclaimed: Counter;

  constructor(private readonly o: ReclaimerOptions) {
    this.fences = o.db.collection<StreamFence>('fence');
    this.reclaims = new Counter({
      name: `${PREFIX}allotment_reclaims_total`,
      help: 'Ledger streams of other replicas this replica fenced after their lease expired, and whose allotments it closed.',
      registers: [o.registry],
    });
    this.unitsReclaimed = new Counter({
      name: `${PREFIX}allotment_units_reclaimed_total`,
      help: 'Unsold units of closed allotments (fenced replicas, and this replica\'s own earlier terms) put back in the pool by this replica.',
      registers: [o.registry],
    });
  }

  /** One round: note every other stream's heartbeat, and reclaim those silent for a whole lease. */
  async watch(): Promise<void> {
    const began = monotonicMs();
    if (this.watchingSince !== null && began - this.watchingSince < WATCH_ROUND_LIMIT_MS) return;
    this.watchingSince = began;
    try {
      const streams = await bounded(this.o.timeoutMs, () => this.fences.find({}).toArray());
      const now = monotonicMs();
      for (const stream of streams) {
        if (!stream._id.startsWith(STREAM_PREFIX)) continue;
        const host = stream._id.slice(STREAM_PREFIX.length);
        if (host === this.o.hostId) continue;
        const beat = stream.beat ?? 0;
        const seen = this.observed.get(host);
        if (!seen || seen.epoch !== stream.epoch || seen.beat !== beat) {
          this.observed.set(host, { epoch: stream.epoch, beat, since: now });
          continue;
        }
        if (now - seen.since < this.o.leaseDurationMs) continue;
        if ((this.closedBelow.get(host) ?? 0) >= stream.epoch && stream.sealing.length === 0) continue;
        if (stream.holder !== host && stream.sealing.length === 0) {
          // Fenced and sealed already (by a replica that may have died before closing): just close.
          await this.closeAllotments(host, stream.epoch).catch(() => undefined);
          continue;
        }
        await this.reclaim(host, stream.epoch, stream.holder === host ? beat : null).catch((error: unknown) =>
          this.o.log.warn({ host, reason: error instanceof Error ? error.message : String(error) }, 'allotments: could not reclaim yet; retrying'),
        );
      }
    } catch {
      // MongoDB unreachable: the next round tries again. Silence is judged on a continuous watch
      // only — a holder could not beat through the same outage — so the watch starts over.
      this.observed.clear();
    } finally {
      if (this.watchingSince === began) this.watchingSince = null;
    }
  }

  /** The lease of `host`'s stream expired at `epoch` (and `beat`, if it was still its own): fence it and close what it held. */
  private async reclaim(host: string, epoch: number, beat: number | null): Promise<void> {
    const fence = new Fence(this.o.db, this.o.timeoutMs, replicaStream(host));
    const next = await fence.takeOver(epoch, beat, `reclaimed-by:${this.o.hostId}`);
    if (next === null) return; // it moved: alive after all, or someone else reclaimed it
    await fence.seal(next);
    const units = await this.closeAllotments(host, next);
    this.reclaims.inc();
    this.o.log.warn({ host, fencedEpoch: epoch, units }, 'allotments: reclaimed a silent replica\'s unsold units');
  }

  /**
   * Fence `host`'s stream now, whatever its lease (an admin call that sets a SKU afresh closes
   * every allotment handed out before it), if it still stands at `epoch` or below; resolves with
   * the epoch from which its allotments are new.
   */
  async fence(host: string, epoch: number): Promise<number> {
    const fence = new Fence(this.o.db, this.o.timeoutMs, replicaStream(host));
    for (let attempt = 0; attempt < 10; attempt++) {
      const state = await fence.state();
      if (!state) return 0;
      if (state.epoch > epoch && state.unsealed.length === 0) {
        await this.closeAllotments(host, state.epoch);
        return state.epoch;
      }
      const next = await fence.takeOver(state.epoch, null, `fenced-by:${this.o.hostId}`);
      if (next === null) continue;
      try {
        await fence.seal(next);
      } catch (error) {
        // The holder noticed and began a new term above ours before we sealed: that term seals
        // what its predecessors reserved. Read the stream again (nothing of ours to undo).
        if (error instanceof FencedError) continue;
        throw error;
      }
      await this.closeAllotments(host, next);
      return next;
    }
    throw new Error(`could not fence ${host}'s ledger stream`);
  }

  /**
   * Close every allotment `host` holds under an epoch below `below` — fenced and sealed, so its
   * ledger is final: sold units are settled, the rest goes back to the pool. Resolves with those units.
   */
  async closeAllotments(host: string, below: number): Promise<number> {
    const fence = new Fence(this.o.db, this.o.timeoutMs, replicaStream(host));
    const soldByEpoch = new Map<number, Promise<Map<string, number>>>();
    const soldIn = (epoch: number) => {
      let sold = soldByEpoch.get(epoch);
      if (!sold) soldByEpoch.set(epoch, (sold = fence.soldIn(epoch)));
      return sold;
    };
    let units = 0;
    const field = hostField(host);
    for (const doc of await this.o.store.heldBy(host)) {
      const held = doc.allot[field];
      if (!held || held.epoch >= below) continue;
      units += await this.o.store.close(doc.lane, doc.sku, host, below, async (epoch) => (await soldIn(epoch)).get(`${doc.lane}/${doc.sku}`) ?? 0);
    }
    this.closedBelow.set(host, Math.max(this.closedBelow.get(host) ?? 0, below));
    this.unitsReclaimed.inc(units);
    return units;
  }
}
