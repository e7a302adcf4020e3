/**
 * Idempotency keys: a repeated `Idempotency-Key` gets the first request's answer and never sells
 * twice. One registry per replica lives on the main thread, because a retry may land on any
 * worker; workers claim a key before buying and record the answer after. A key in flight answers
 * 409 to a concurrent duplicate; a key reused for a different request answers 422 (as the IETF
 * Idempotency-Key draft and Stripe do).
 *
 * Memory holds the keys in flight and the most recent final answers (sold, sold out), bounded to
 * IDEMPOTENCY_MAX_KEYS, oldest answered evicted first, each for at most IDEMPOTENCY_TTL_MS. That
 * bound is a cache, not the record: in a flash sale it turns over in seconds. The record of a sale
 * is durable where the sale is — the ledger batch of an in-memory lane's sale (looked up through
 * its key index on a miss, see `DurableAnswers`), the SKU document of the db lane, the Redis key
 * of the redis lane — so a retry of an evicted key still finds its sale on every lane. A sold-out
 * answer (409) changed nothing and is not durable: it is replayed while memory holds it, and a
 * retry after that is decided afresh.
 */
import { MEMORY_LANES } from './config.js';

export interface StoredResponse {
  readonly status: number;
  readonly body: string;
}

export type IdempotencyClaim =
  | { readonly kind: 'new' }
  | { readonly kind: 'replay'; readonly response: StoredResponse }
  | { readonly kind: 'in_progress' }
  | { readonly kind: 'mismatch' }
  /** The durable record could not be read: nothing was decided, answer 503. */
  | { readonly kind: 'unavailable'; readonly reason: string };

/** What makes two requests "the same" for one key. */
export function buyFingerprint(lane: string, sku: string, quantity: number): string {
  return `${lane}/${sku}/${quantity}`;
}

/** The body of a sold answer, shared by the route and by answers rebuilt from the ledger. */
export function soldBody(lane: string, sku: string, quantity: number, remaining: number): string {
  // The same bytes as JSON.stringify({ lane, sku, quantity, remaining }), without building the
  // object on every sale (the numbers are finite integers).
  return `{"lane":${JSON.stringify(lane)},"sku":${JSON.stringify(sku)},"quantity":${quantity},"remaining":${remaining}}`;
}

/** Whether sales with this fingerprint are recorded in the ledger (the in-memory lanes). */
export function fingerprintIsLedgered(fingerprint: string): boolean {
  const lane = fingerprint.slice(0, fingerprint.indexOf('/'));
  return (MEMORY_LANES as readonly string[]).includes(lane);
}

/** A final answer given to a key, with the request it answered. */
export interface DurableAnswer {
  readonly fingerprint: string;
  readonly response: StoredResponse;
}

/** Where answers that memory no longer holds are found (the ledger's key index). */
export interface DurableAnswers {
  /** Whether sales with this fingerprint are recorded there at all. */
  covers(fingerprint: string): boolean;
  /**
   * The answer recorded for `key`, or null; throws when the record cannot be read, and
   * `KeyInProgressElsewhereError` when another replica is deciding it now (allotments mode).
   */
  find(key: string): Promise<DurableAnswer | null>;
  /** The request under `key` ended without a durable answer (allotments mode drops its global claim). */
  forget?(key: string): Promise<void>;
}

/** Another replica holds the key's claim and its request is not decided yet (allotments mode): 409, retry. */
export class KeyInProgressElsewhereError extends Error {
  constructor(key: string) {
    super(`another replica is deciding the request with Idempotency-Key ${key}`);
    this.name = 'KeyInProgressElsewhereError';
  }
}

export interface IdempotencyStore {
  claim(key: string, fingerprint: string): Promise<IdempotencyClaim>;
  /** Record the final answer for a claimed key. */
  complete(key: string, response: StoredResponse): Promise<void>;
  /** Give up a claim without an answer (the request failed and may be retried). */
  release(key: string): Promise<void>;
}

interface Entry {
  readonly key: string;
  readonly fingerprint: string;
  response: StoredResponse | null;
  expiresAt: number;
}

/**
 * A claim in flight is never dropped to make room; past this many of them at the head of the
 * queue, one claim gives up looking and the registry holds one key more than its bound (the next
 * claims look further). Claims in flight are bounded by QUEUE_LIMIT, so this stays small.
 */
const MAX_REQUEUED_PER_CLAIM = 64;

export class IdempotencyRegistry implements IdempotencyStore {
  private readonly entries = new Map<string, Entry>();
  /**
   * Every entry in the order it was made, for eviction from the oldest without walking the Map
   * (whose iteration, once full, also walks the holes its deletions leave: the cost of a claim
   * grew with the churn). A record whose entry has since been released, replaced or evicted is
   * stale and skipped when it reaches the head, so each record is looked at O(1) times.
   */
  private order: Entry[] = [];
  private head = 0;
  private examined = 0;
  private durable: DurableAnswers | null = null;

  constructor(
    private readonly ttlMs: number,
    private readonly maxKeys: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records in the eviction queue, stale ones included (for tests: it stays O(maxKeys)). */
  get queued(): number {
    return this.order.length - this.head;
  }

  /** Queue records looked at by eviction so far (for tests: O(1) per claim, whatever the churn). */
  get evictionSteps(): number {
    return this.examined;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Consult `source` for keys memory does not hold (null: memory only). A new primary sets it
   * after its rebuild and forgets what it remembered from an earlier term, which may be stale.
   */
  useDurableAnswers(source: DurableAnswers | null): void {
    this.durable = source;
    this.entries.clear();
    this.order = [];
    this.head = 0;
  }

  async claim(key: string, fingerprint: string): Promise<IdempotencyClaim> {
    const now = this.now();
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt > now) {
      if (entry.fingerprint !== fingerprint) return { kind: 'mismatch' };
      return entry.response ? { kind: 'replay', response: entry.response } : { kind: 'in_progress' };
    }
    if (entry) this.entries.delete(key);
    this.evict(now);
    // Claimed before the lookup, so a concurrent duplicate is told the key is in flight.
    const claimed: Entry = { key, fingerprint, response: null, expiresAt: now + this.ttlMs };
    this.remember(claimed);
    const durable = this.durable;
    if (durable === null || !durable.covers(fingerprint)) return { kind: 'new' };
    let found: DurableAnswer | null;
    try {
      found = await durable.find(key);
    } catch (error) {
      if (this.entries.get(key) === claimed) this.entries.delete(key);
      if (error instanceof KeyInProgressElsewhereError) return { kind: 'in_progress' };
      return { kind: 'unavailable', reason: error instanceof Error ? error.message : String(error) };
    }
    if (found === null) return { kind: 'new' };
    this.remember({ key, fingerprint: found.fingerprint, response: found.response, expiresAt: this.now() + this.ttlMs });
    return found.fingerprint === fingerprint ? { kind: 'replay', response: found.response } : { kind: 'mismatch' };
  }

  async complete(key: string, response: StoredResponse): Promise<void> {
    const entry = this.entries.get(key);
    if (!entry) return;
    // Only a sale is durable; any other answer leaves the key free for a retry on any replica.
    if (response.status !== 200 && this.durable?.covers(entry.fingerprint)) await this.durable.forget?.(key);
    entry.response = response;
    entry.expiresAt = this.now() + this.ttlMs;
  }

  async release(key: string): Promise<void> {
    const entry = this.entries.get(key);
    if (entry && entry.response === null) {
      this.entries.delete(key);
      if (this.durable?.covers(entry.fingerprint)) await this.durable.forget?.(key);
    }
  }

  private remember(entry: Entry): void {
    this.entries.set(entry.key, entry);
    this.order.push(entry);
  }

  /**
   * Drop expired entries and, past the bound, the oldest answered ones, from the head of the
   * queue. A claim in flight at the head goes to its back instead (it is never dropped for room).
   */
  private evict(now: number): void {
    let requeued = 0;
    while (this.head < this.order.length) {
      const entry = this.order[this.head] as Entry;
      this.examined++;
      if (this.entries.get(entry.key) !== entry) {
        this.head++;
        continue;
      }
      const expired = entry.expiresAt <= now;
      if (!expired && this.entries.size < this.maxKeys) break;
      this.head++;
      if (expired || entry.response !== null) {
        this.entries.delete(entry.key);
        continue;
      }
      this.order.push(entry);
      if (++requeued >= MAX_REQUEUED_PER_CLAIM) break;
    }
    this.compact();
  }

  /**
   * Keep the queue O(entries): drop the consumed head once it is most of the array, and the stale
   * records (released claims, replaced entries) once they outnumber the live ones — each record is
   * copied a bounded number of times before it is dropped, so this is amortized O(1) per claim.
   */
  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
    if (this.order.length - this.head > 2 * this.entries.size + 1024) {
      this.order = this.order.slice(this.head).filter((entry) => this.entries.get(entry.key) === entry);
      this.head = 0;
    }
  }
}
