/**
 * Idempotency keys: a repeated `Idempotency-Key` gets the first request's answer and never sells
 * twice. One registry per replica lives on the main thread, because a retry may land on any
 * worker; workers claim a key before buying and record the answer after. A key in flight answers
 * 409 to a concurrent duplicate; a key reused for a different request answers 422 (as the IETF
 * Idempotency-Key draft and Stripe do). Final answers (sold, sold out) are kept for
 * IDEMPOTENCY_TTL_MS, bounded to IDEMPOTENCY_MAX_KEYS, oldest evicted first.
 */

export interface StoredResponse {
  readonly status: number;
  readonly body: string;
}

export type IdempotencyClaim =
  | { readonly kind: 'new' }
  | { readonly kind: 'replay'; readonly response: StoredResponse }
  | { readonly kind: 'in_progress' }
  | { readonly kind: 'mismatch' };

/** What makes two requests "the same" for one key. */
export function buyFingerprint(lane: string, sku: string, quantity: number): string {
  return `${lane}/${sku}/${quantity}`;
}

/** The body of a sold answer, shared by the route and by answers rebuilt from the ledger. */
export function soldBody(lane: string, sku: string, quantity: number, remaining: number): string {
  return JSON.stringify({ lane, sku, quantity, remaining });
}

export interface IdempotencyStore {
  claim(key: string, fingerprint: string): Promise<IdempotencyClaim>;
  /** Record the final answer for a claimed key. */
  complete(key: string, response: StoredResponse): Promise<void>;
  /** Give up a claim without an answer (the request failed and may be retried). */
  release(key: string): Promise<void>;
}

interface Entry {
  readonly fingerprint: string;
  response: StoredResponse | null;
  expiresAt: number;
}

export class IdempotencyRegistry implements IdempotencyStore {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxKeys: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
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
    this.entries.set(key, { fingerprint, response: null, expiresAt: now + this.ttlMs });
    return { kind: 'new' };
  }

  /** Record an answer given earlier (a new primary learns them from the ledger). */
  preload(key: string, fingerprint: string, response: StoredResponse): void {
    this.entries.delete(key);
    this.entries.set(key, { fingerprint, response, expiresAt: this.now() + this.ttlMs });
  }

  async complete(key: string, response: StoredResponse): Promise<void> {
    const entry = this.entries.get(key);
    if (!entry) return;
    entry.response = response;
    entry.expiresAt = this.now() + this.ttlMs;
  }

  async release(key: string): Promise<void> {
    const entry = this.entries.get(key);
    if (entry && entry.response === null) this.entries.delete(key);
  }

  /** Drop expired entries and, past the bound, the oldest answered ones (Map keeps insertion order). */
  private evict(now: number): void {
    for (const [key, entry] of this.entries) {
      if (this.entries.size < this.maxKeys && entry.expiresAt > now) break;
      if (entry.response !== null || entry.expiresAt <= now) this.entries.delete(key);
    }
  }
}
