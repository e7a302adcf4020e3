/**
 * Input validation for every route. Each parser either returns a clean value or throws a
 * ServiceError with a stable code, so a bad request is refused before it can touch any stock.
 */
import { LANE_NAMES, SKU_PATTERN, type LaneName } from '../config.js';
import { ServiceError } from '../errors.js';

const LANES: ReadonlySet<string> = new Set(LANE_NAMES);
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

export function parseLane(value: unknown): LaneName {
  if (typeof value !== 'string' || !LANES.has(value)) {
    throw new ServiceError('invalid_lane', `Unknown lane; use one of ${LANE_NAMES.join(', ')}.`, { lanes: LANE_NAMES });
  }
  return value as LaneName;
}

export function parseSku(value: unknown): string {
  if (typeof value !== 'string' || !SKU_PATTERN.test(value)) throw new ServiceError('invalid_sku');
  return value;
}

/** The header is optional; when present it must be 1-128 visible ASCII characters. */
export function parseIdempotencyKey(value: string | undefined): string | null {
  if (value === undefined) return null;
  if (!IDEMPOTENCY_KEY.test(value)) throw new ServiceError('invalid_idempotency_key');
  return value;
}

/** A JSON object body with only the listed fields, or no body at all (treated as `{}`). */
export function parseObjectBody(body: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (body === undefined) return {};
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ServiceError('invalid_request', 'The request body must be a JSON object.');
  }
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw new ServiceError('invalid_request', `Unknown field(s): ${unknown.join(', ')}. Allowed: ${allowed.join(', ') || 'none'}.`, { fields: unknown });
  }
  return body as Record<string, unknown>;
}

/** A whole number in [min, max]; `fallback` when absent (undefined), if one is given. */
export function parseCount(value: unknown, field: string, min: number, max: number, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const code = field === 'quantity' ? 'invalid_quantity' : 'invalid_request';
    throw new ServiceError(code, `"${field}" must be an integer from ${min} to ${max}.`, { field, min, max });
  }
  return value;
}
