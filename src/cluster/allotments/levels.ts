/**
 * What every replica holds, over Redis pub/sub: each replica publishes the levels of its own
 * allotments (units sold this term, per lane and SKU) — what changed, every SYNC_INTERVAL_MS near
 * the end of a pool and at most every AMPLE_PUBLISH_MS before (the controller's `publishDue`), and
 * everything every FULL_EVERY_MS, which doubles as its sign of life — and
 * hears everybody else's. The same channel carries release requests: a replica whose allotment
 * and the pool are empty asks the holders of a SKU to hand their spare units back to the pool.
 *
 * A peer's level is as fresh as the last message heard from it (received, on this replica's own
 * monotonic clock); a peer not heard from for `FRESH_MS` counts as unknown — it may still hold
 * units — and a replica will not answer "sold out" on its word.
 */
import type { Redis } from 'ioredis';
import { MEMORY_LANES, type MemoryLaneName } from '../../config.js';
import { monotonicMs } from '../cluster-state.js';

/** Every replica republishes all its levels this often; it is also how the others know it lives. */
export const FULL_EVERY_MS = 250;
/** A peer not heard from for this long is unknown: what it holds may be more than it said. */
export const FRESH_MS = 4 * FULL_EVERY_MS;

/**
 * [lane index, sku, units sold] from the replica's allotment this term. Sold, not what is left:
 * sales only grow, so what a holder has left is what the pool document says it holds less its
 * sales as last heard — never less than the truth, whatever grants or give-backs landed since.
 */
export type LevelUpdate = [number, string, number];

type Message =
  | { readonly t: 'levels'; readonly host: string; readonly epoch: number; readonly full: boolean; readonly levels: LevelUpdate[] }
  | { readonly t: 'release'; readonly host: string; readonly lane: MemoryLaneName; readonly sku: string };

export interface PeerLevel {
  /** Units the peer has sold from its allotment this term. */
  readonly sold: number;
  readonly epoch: number;
  /** Milliseconds since this peer was last heard from. */
  readonly ageMs: number;
}

interface Peer {
  heardAt: number;
  epoch: number;
  levels: Map<string, number>;
}

export const levelKey = (lane: MemoryLaneName, sku: string): string => `${lane}/${sku}`;

export function allotmentChannel(clusterName: string): string {
  return `superstock:${clusterName}:allotments`;
}

export class PeerLevels {
  private readonly peers = new Map<string, Peer>();

  constructor(
    private readonly publisher: Redis,
    subscriber: Redis,
    private readonly channel: string,
    private readonly hostId: string,
    /** A peer asks this replica to give back its spare units of a SKU. */
    private readonly onRelease: (lane: MemoryLaneName, sku: string) => void,
  ) {
    subscriber.on('message', (_channel: string, text: string) => this.onMessage(text));
  }

  async subscribe(subscriber: Redis): Promise<void> {
    await subscriber.subscribe(this.channel);
  }

  /** Publish this replica's levels; resolves false if Redis did not take them (they go out again with the next full round). */
  async publish(epoch: number, full: boolean, levels: LevelUpdate[]): Promise<boolean> {
    if (this.publisher.status !== 'ready') return false;
    try {
      await this.publisher.publish(this.channel, JSON.stringify({ t: 'levels', host: this.hostId, epoch, full, levels } satisfies Message));
      return true;
    } catch {
      return false;
    }
  }

  requestRelease(lane: MemoryLaneName, sku: string): void {
    if (this.publisher.status !== 'ready') return;
    this.publisher.publish(this.channel, JSON.stringify({ t: 'release', host: this.hostId, lane, sku } satisfies Message)).catch(() => undefined);
  }

  /** What `host` last said it holds of a SKU, or null if it never said or is not heard from any more. */
  level(host: string, lane: MemoryLaneName, sku: string): PeerLevel | null {
    const peer = this.peers.get(host);
    if (!peer) return null;
    const ageMs = monotonicMs() - peer.heardAt;
    return { sold: peer.levels.get(levelKey(lane, sku)) ?? 0, epoch: peer.epoch, ageMs };
  }

  /** Every other replica ever heard from. */
  hosts(): string[] {
    return [...this.peers.keys()];
  }

  /** How many other replicas were heard from within FRESH_MS. */
  liveCount(): number {
    const now = monotonicMs();
    let live = 0;
    for (const peer of this.peers.values()) if (now - peer.heardAt <= FRESH_MS) live++;
    return live;
  }

  private onMessage(text: string): void {
    let message: Message;
    try {
      message = JSON.parse(text) as Message;
    } catch {
      return;
    }
    if (message.host === this.hostId) return;
    if (message.t === 'release') {
      this.onRelease(message.lane, message.sku);
      return;
    }
    let peer = this.peers.get(message.host);
    if (!peer || message.epoch > peer.epoch || message.full) {
      // A new term starts from nothing; a full round replaces what was held.
      if (!peer || message.epoch >= peer.epoch) peer = { heardAt: 0, epoch: message.epoch, levels: new Map() };
      this.peers.set(message.host, peer);
    }
    if (message.epoch < peer.epoch) return; // a late message of an earlier term
    peer.heardAt = monotonicMs();
    for (const [laneIndex, sku, sold] of message.levels) {
      const lane = MEMORY_LANES[laneIndex];
      if (lane) peer.levels.set(levelKey(lane, sku), sold);
    }
  }
}
