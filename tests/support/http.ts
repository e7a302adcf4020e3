/** Small HTTP helpers for tests: JSON in, status + parsed body out. */

export interface Answer<T = unknown> {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly body: T;
}

export async function request<T = unknown>(
  method: string,
  url: string,
  options: { json?: unknown; raw?: string; headers?: Record<string, string> } = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined;
  if (options.json !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.raw !== undefined) {
    body = options.raw;
  }
  const res = await fetch(url, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = undefined;
  if ((res.headers.get('content-type') ?? '').includes('json') && text !== '') parsed = JSON.parse(text);
  return { status: res.status, headers: res.headers, text, body: parsed as T };
}

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

export interface BuyBody {
  lane: string;
  sku: string;
  quantity: number;
  remaining: number;
}

export interface LevelBody {
  lane: string;
  sku: string;
  remaining: number;
  sold: number;
  initial: number;
}

export function buy(base: string, lane: string, sku: string, quantity?: number, key?: string): Promise<Answer<BuyBody & ErrorBody>> {
  return request('POST', `${base}/v2/lanes/${lane}/skus/${sku}/buy`, {
    json: quantity === undefined ? undefined : { quantity },
    headers: key === undefined ? {} : { 'idempotency-key': key },
  });
}

export function peek(base: string, lane: string, sku: string): Promise<Answer<LevelBody & ErrorBody>> {
  return request('GET', `${base}/v2/lanes/${lane}/skus/${sku}`);
}

export function putSku(base: string, token: string, sku: string, stock: number): Promise<Answer<ErrorBody>> {
  return request('PUT', `${base}/v2/admin/skus/${sku}`, { json: { stock }, headers: { authorization: `Bearer ${token}` } });
}
