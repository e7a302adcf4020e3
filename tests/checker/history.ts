/**
 * A recorded history, in the manner of Jepsen: every request a test client sends is written down
 * with what was asked (lane, SKU, quantity, idempotency key, or an admin call), when it started
 * and ended on the test's clock, and what came back — status and body, or `null` when nothing
 * came back (timeout, connection reset). The checker (checker.ts) judges the history afterwards;
 * the recorder never interprets an answer, so a bug in the service cannot hide in the client.
 */

export type BuyRecord = {
  readonly type: 'buy';
  readonly lane: string;
  readonly sku: string;
  readonly quantity: number;
  readonly key: string | null;
  /** Which replica the client sent it to (forwarding is the service's business). */
  readonly replica: string;
  readonly start: number;
  readonly end: number;
  /** null: no answer at all (timeout, connection refused or reset). */
  readonly status: number | null;
  readonly body: unknown;
};

export type AdminRecord =
  | { readonly type: 'put'; readonly sku: string; readonly stock: number; readonly start: number; readonly end: number; readonly status: number | null; readonly body: unknown }
  | { readonly type: 'restock'; readonly sku: string; readonly quantity: number; readonly start: number; readonly end: number; readonly status: number | null; readonly body: unknown }
  | { readonly type: 'reset'; readonly start: number; readonly end: number; readonly status: number | null; readonly body: unknown };

export type OperationRecord = BuyRecord | AdminRecord;

export interface Level {
  readonly remaining: number;
  readonly sold: number;
  readonly initial: number;
}

/** Where a history's requests go: a replica's id and base URL. */
export interface Target {
  readonly id: string;
  readonly url: string;
}

export interface RecorderOptions {
  /** A request with no answer within this time is recorded as unanswered (status null). */
  readonly requestTimeoutMs: number;
  readonly adminToken: string;
}

/**
 * Sends requests and records each one. Times come from `performance.now()`, one monotonic clock
 * for the whole test process, so "ended before the other started" means what it says.
 */
export class HistoryRecorder {
  readonly records: OperationRecord[] = [];

  constructor(private readonly options: RecorderOptions) {}

  async buy(target: Target, lane: string, sku: string, quantity: number, key: string | null): Promise<BuyRecord> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (key !== null) headers['idempotency-key'] = key;
    const start = performance.now();
    const { status, body } = await this.send('POST', `${target.url}/v2/lanes/${lane}/skus/${sku}/buy`, headers, JSON.stringify({ quantity }));
    const record: BuyRecord = { type: 'buy', lane, sku, quantity, key, replica: target.id, start, end: performance.now(), status, body };
    this.records.push(record);
    return record;
  }

  async put(target: Target, sku: string, stock: number): Promise<AdminRecord> {
    const start = performance.now();
    const { status, body } = await this.send('PUT', `${target.url}/v2/admin/skus/${sku}`, this.adminHeaders(), JSON.stringify({ stock }));
    const record: AdminRecord = { type: 'put', sku, stock, start, end: performance.now(), status, body };
    this.records.push(record);
    return record;
  }

  async restock(target: Target, sku: string, quantity: number): Promise<AdminRecord> {
    const start = performance.now();
    const { status, body } = await this.send('POST', `${target.url}/v2/admin/skus/${sku}/restock`, this.adminHeaders(), JSON.stringify({ quantity }));
    const record: AdminRecord = { type: 'restock', sku, quantity, start, end: performance.now(), status, body };
    this.records.push(record);
    return record;
  }

  async reset(target: Target): Promise<AdminRecord> {
    const start = performance.now();
    const { status, body } = await this.send('POST', `${target.url}/v2/admin/reset`, this.adminHeaders(), undefined);
    const record: AdminRecord = { type: 'reset', start, end: performance.now(), status, body };
    this.records.push(record);
    return record;
  }

  private adminHeaders(): Record<string, string> {
    return { 'content-type': 'application/json', authorization: `Bearer ${this.options.adminToken}` };
  }

  private async send(method: string, url: string, headers: Record<string, string>, body: string | undefined): Promise<{ status: number | null; body: unknown }> {
    try {
      const res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(this.options.requestTimeoutMs) });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text === '' ? null : JSON.parse(text);
      } catch {
        // not JSON: keep the text
      }
      return { status: res.status, body: parsed };
    } catch {
      return { status: null, body: null };
    }
  }
}

/** Read one lane's level of one SKU from one replica; null for an unknown SKU, throws on anything else. */
export async function readLevel(target: Target, lane: string, sku: string): Promise<Level | null> {
  const res = await fetch(`${target.url}/v2/lanes/${lane}/skus/${sku}`, { signal: AbortSignal.timeout(5000) });
  const body = (await res.json()) as Partial<Level>;
  if (res.status === 404) return null;
  if (res.status !== 200) throw new Error(`peek ${lane}/${sku} on ${target.id}: ${res.status} ${JSON.stringify(body)}`);
  return { remaining: Number(body.remaining), sold: Number(body.sold), initial: Number(body.initial) };
}
