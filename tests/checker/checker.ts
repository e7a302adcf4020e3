/**
 * The history checker: after a run, it judges a recorded history (history.ts) and the final
 * state against SuperStock's promise, for every lane and SKU:
 *
 * - **Every answer means one thing.** 2xx: done. 400/404/409/422/429/503: refused, nothing
 *   changed. No answer, a 5xx other than 503, or the documented `outcome_unknown` answer: the
 *   outcome is unknown — it may have happened, even after the client gave up.
 * - **sold ∈ [acked, acked + unknown]** since the last admin call that set the count (PUT of the
 *   SKU, or reset). A buy is counted per idempotency key, not per request, so a key that sold twice
 *   shows as more sold than the history allows. A buy that overlaps the admin call in time may
 *   fall on either side of it, so it only widens the range; an acknowledged buy that ended before
 *   the admin call began was wiped by it.
 * - **initial** is the last PUT's stock plus the restocks after it (a restock of unknown outcome,
 *   or one overlapping the PUT, widens the range); `remaining + sold == initial`; nothing below
 *   zero, neither at the end nor in any answer.
 * - **A key's answers agree**: once a key got a final answer (200, or 409 sold out), every other
 *   final answer to it is the same status and body.
 * - **Replicas agree** on the final state, and **the ledger equals it**: the levels a fresh
 *   primary rebuilt from the ledger are the levels the old one served; no key appears twice in
 *   the ledger.
 *
 * An admin call of unknown outcome may never have happened, or may land at any time after it
 * started — even after later calls that were acknowledged (it was still in flight): the checker
 * accepts the history if it is valid under any of the admin calls that may have been the last to
 * set the count. Pure logic: tests/unit/checker.test.ts feeds it hand-made
 * histories that must fail (oversell, lost acknowledgement, a key sold twice) and ones that pass.
 */
import type { AdminRecord, BuyRecord, Level, OperationRecord } from './history.js';

export type Outcome = 'ok' | 'refused' | 'unknown';

/** The documented answer for "the service cannot know whether it happened": retry with the same key. */
export const OUTCOME_UNKNOWN_CODE = 'outcome_unknown';

function errorCode(body: unknown): string | null {
  if (typeof body !== 'object' || body === null) return null;
  const error = (body as { error?: { code?: unknown } }).error;
  return typeof error?.code === 'string' ? error.code : null;
}

export function classify(status: number | null, body: unknown): Outcome {
  if (status === null) return 'unknown';
  if (errorCode(body) === OUTCOME_UNKNOWN_CODE) return 'unknown';
  if (status >= 200 && status < 300) return 'ok';
  if ((status >= 400 && status < 500) || status === 503) return 'refused';
  return 'unknown';
}

export type ViolationKind =
  | 'oversell' // more acknowledged than could ever exist
  | 'lost_ack' // fewer sold than acknowledged
  | 'phantom_sale' // more sold than acknowledged + unknown (a refusal changed something, or a key sold twice)
  | 'negative_stock'
  | 'counts_disagree' // remaining + sold != initial
  | 'initial_wrong'
  | 'key_answer_changed' // a key's final answers differ
  | 'key_sold_twice' // a key appears twice in the ledger
  | 'replicas_disagree'
  | 'ledger_differs'
  | 'missing_state';

export interface Violation {
  readonly kind: ViolationKind;
  readonly lane: string;
  readonly sku: string;
  readonly message: string;
}

export interface FinalState {
  /** Replica id → `${lane}/${sku}` → its level there (null: unknown SKU). */
  readonly replicas: ReadonlyMap<string, ReadonlyMap<string, Level | null>>;
  /** Which replica's view is the truth (the primary at the end). */
  readonly authority: string;
  /** `${lane}/${sku}` → level rebuilt from the ledger by a fresh primary, if the run did that. */
  readonly rebuilt?: ReadonlyMap<string, Level | null>;
  /** Keys of every buy in the ledger, per lane (memory lanes), if the run read it. */
  readonly ledgerKeys?: ReadonlyMap<string, readonly string[]>;
}

export interface CheckOptions {
  readonly lanes: readonly string[];
  readonly skus: readonly string[];
  /** Initial stock of SKUs that exist before the history starts (seeded), by SKU. */
  readonly seeded?: ReadonlyMap<string, number>;
}

export interface LaneSkuSummary {
  readonly lane: string;
  readonly sku: string;
  readonly acked: number;
  readonly unknown: number;
  readonly refused: number;
  readonly soldRange: readonly [number, number];
  readonly initialRange: readonly [number, number];
  readonly final: Level | null;
}

export interface CheckResult {
  readonly valid: boolean;
  readonly violations: readonly Violation[];
  readonly summaries: readonly LaneSkuSummary[];
}

export const stateKey = (lane: string, sku: string): string => `${lane}/${sku}`;

interface Range {
  lo: number;
  hi: number;
}

/** One sale's worth of requests: every request with one key, or one unkeyed request. */
interface Purchase {
  readonly quantity: number;
  readonly first: number;
  /** End of the first acknowledged request, or null if none was acknowledged. */
  readonly ackedBy: number | null;
  readonly unknown: boolean;
}

function purchasesOf(buys: readonly BuyRecord[]): Purchase[] {
  const byKey = new Map<string, BuyRecord[]>();
  const purchases: Purchase[] = [];
  for (const buy of buys) {
    if (buy.key === null) {
      const outcome = classify(buy.status, buy.body);
      purchases.push({ quantity: buy.quantity, first: buy.start, ackedBy: outcome === 'ok' ? buy.end : null, unknown: outcome === 'unknown' });
    } else {
      const list = byKey.get(buy.key) ?? [];
      list.push(buy);
      byKey.set(buy.key, list);
    }
  }
  for (const records of byKey.values()) {
    const oks = records.filter((r) => classify(r.status, r.body) === 'ok');
    purchases.push({
      quantity: (records[0] as BuyRecord).quantity,
      first: Math.min(...records.map((r) => r.start)),
      ackedBy: oks.length === 0 ? null : Math.min(...oks.map((r) => r.end)),
      unknown: records.some((r) => classify(r.status, r.body) === 'unknown'),
    });
  }
  return purchases;
}

/**
 * An admin call that may be the last to have set a SKU's count, and when its effect may have
 * happened: within the request for an acknowledged call; for one of unknown outcome, any time
 * after it started (and after the last acknowledged one, if it is to be the last) — it may land
 * long after the client gave up.
 */
interface Base {
  readonly op: AdminRecord | null;
  readonly from: number;
  readonly to: number;
}

const NO_BASE: Base = { op: null, from: -Infinity, to: -Infinity };

/** What the history says about one SKU's sold count, given the admin call that last set it. */
function soldRange(purchases: readonly Purchase[], base: Base): Range {
  const range = { lo: 0, hi: 0 };
  for (const p of purchases) {
    if (p.ackedBy !== null) {
      if (p.ackedBy < base.from) continue; // sold, then wiped by the admin call
      range.hi += p.quantity;
      if (p.first > base.to) range.lo += p.quantity;
    } else if (p.unknown) {
      // It may take effect at any time, even after the client gave up.
      range.hi += p.quantity;
    }
  }
  return range;
}

function initialRange(admin: readonly AdminRecord[], sku: string, lastPut: Base, seeded: number | undefined): Range | null {
  let range: Range;
  if (lastPut.op !== null && lastPut.op.type === 'put') range = { lo: lastPut.op.stock, hi: lastPut.op.stock };
  else if (seeded !== undefined) range = { lo: seeded, hi: seeded };
  else return null;
  for (const op of admin) {
    if (op.type !== 'restock' || op.sku !== sku) continue;
    const outcome = classify(op.status, op.body);
    if (outcome === 'refused') continue;
    if (outcome === 'ok' && op.end < lastPut.from) continue; // restocked, then overwritten by the PUT
    range.hi += op.quantity;
    if (outcome === 'ok' && op.start > lastPut.to) range.lo += op.quantity;
  }
  return range;
}

/**
 * The admin calls that may be the last to have set `sku`'s count: the last acknowledged one (and
 * any acknowledged one overlapping it), and every one of unknown outcome; with no acknowledged
 * one, also none at all.
 */
function baseCandidates(admin: readonly AdminRecord[], sku: string, kinds: ReadonlyArray<AdminRecord['type']>): Base[] {
  const setters = admin.filter((op) => kinds.includes(op.type) && (op.type === 'reset' || op.sku === sku) && classify(op.status, op.body) !== 'refused');
  const acked = setters.filter((op) => classify(op.status, op.body) === 'ok').sort((a, b) => a.start - b.start);
  const last = acked[acked.length - 1];
  const candidates: Base[] = last === undefined ? [NO_BASE] : acked.filter((op) => op.end >= last.start).map((op) => ({ op, from: op.start, to: op.end }));
  for (const op of setters) {
    if (classify(op.status, op.body) === 'unknown') candidates.push({ op, from: Math.max(op.start, last?.start ?? -Infinity), to: Infinity });
  }
  return candidates;
}

const sameLevel = (a: Level | null | undefined, b: Level | null | undefined): boolean =>
  (a ?? null) === null ? (b ?? null) === null : b !== null && b !== undefined && a?.remaining === b.remaining && a.sold === b.sold && a.initial === b.initial;

const show = (level: Level | null | undefined): string => (level ? `remaining ${level.remaining}, sold ${level.sold}, initial ${level.initial}` : 'no such SKU');

export function checkHistory(history: readonly OperationRecord[], final: FinalState, options: CheckOptions): CheckResult {
  const violations: Violation[] = [];
  const summaries: LaneSkuSummary[] = [];
  const admin = history.filter((op): op is AdminRecord => op.type !== 'buy');
  const buys = history.filter((op): op is BuyRecord => op.type === 'buy');
  const authority = final.replicas.get(final.authority);

  checkKeyAnswers(buys, violations);

  for (const lane of options.lanes) {
    for (const sku of options.skus) {
      const flag = (kind: ViolationKind, message: string) => violations.push({ kind, lane, sku, message });
      const mine = buys.filter((b) => b.lane === lane && b.sku === sku);
      for (const b of mine) {
        const remaining = (b.body as { remaining?: unknown } | null)?.remaining;
        if (classify(b.status, b.body) === 'ok' && typeof remaining === 'number' && remaining < 0) flag('negative_stock', `a buy was answered with remaining ${remaining}`);
      }
      const level = authority?.get(stateKey(lane, sku));
      if (level === undefined) {
        flag('missing_state', `no final level read from ${final.authority}`);
        continue;
      }
      for (const [replica, levels] of final.replicas) {
        if (!sameLevel(levels.get(stateKey(lane, sku)), level)) flag('replicas_disagree', `${replica} says ${show(levels.get(stateKey(lane, sku)))}, ${final.authority} says ${show(level)}`);
      }
      if (final.rebuilt && !sameLevel(final.rebuilt.get(stateKey(lane, sku)), level)) {
        flag('ledger_differs', `rebuilt from the ledger: ${show(final.rebuilt.get(stateKey(lane, sku)))}; served: ${show(level)}`);
      }

      const purchases = purchasesOf(mine);
      const counts = { acked: 0, unknown: 0, refused: 0 };
      for (const b of mine) counts[classify(b.status, b.body) === 'ok' ? 'acked' : classify(b.status, b.body) === 'unknown' ? 'unknown' : 'refused']++;
      if (level === null) {
        if (purchases.some((p) => p.ackedBy !== null)) flag('lost_ack', 'buys were acknowledged but the SKU does not exist at the end');
        summaries.push({ lane, sku, ...counts, soldRange: [0, 0], initialRange: [0, 0], final: null });
        continue;
      }
      if (level.remaining < 0) flag('negative_stock', `final remaining ${level.remaining}`);
      if (level.remaining + level.sold !== level.initial) flag('counts_disagree', `remaining ${level.remaining} + sold ${level.sold} != initial ${level.initial}`);

      // Judge under every admin call that may have been the last to set the count; one must fit.
      let best: { sold: Range; initial: Range; problems: Array<[ViolationKind, string]> } | null = null;
      for (const base of baseCandidates(admin, sku, ['put', 'reset'])) {
        // The last PUT sets initial; after a reset (which keeps initial) it is any PUT that may be last.
        const puts = base.op === null || base.op.type === 'put' ? [base] : baseCandidates(admin, sku, ['put']);
        for (const lastPut of puts) {
          const initial = initialRange(admin, sku, lastPut, options.seeded?.get(sku));
          const sold = soldRange(purchases, base);
          const problems: Array<[ViolationKind, string]> = [];
          if (initial === null) {
            problems.push(['initial_wrong', 'the history never created this SKU and it was not seeded']);
          } else {
            if (sold.lo > initial.hi) problems.push(['oversell', `${sold.lo} units acknowledged but at most ${initial.hi} existed`]);
            if (level.initial < initial.lo || level.initial > initial.hi) problems.push(['initial_wrong', `initial ${level.initial}, history allows [${initial.lo}, ${initial.hi}]`]);
          }
          if (level.sold < sold.lo) problems.push(['lost_ack', `sold ${level.sold} but ${sold.lo} acknowledged`]);
          if (level.sold > sold.hi) problems.push(['phantom_sale', `sold ${level.sold} but at most ${sold.hi} acknowledged or unknown`]);
          const candidate = { sold, initial: initial ?? { lo: 0, hi: 0 }, problems };
          if (best === null || problems.length < best.problems.length) best = candidate;
          if (problems.length === 0) break;
        }
        if (best?.problems.length === 0) break;
      }
      if (best === null) throw new Error('unreachable: there is always a candidate');
      for (const [kind, message] of best.problems) flag(kind, message);
      summaries.push({ lane, sku, ...counts, soldRange: [best.sold.lo, best.sold.hi], initialRange: [best.initial.lo, best.initial.hi], final: level });
    }
  }

  for (const [lane, keys] of final.ledgerKeys ?? []) {
    const seen = new Set<string>();
    for (const key of keys) {
      if (seen.has(key)) violations.push({ kind: 'key_sold_twice', lane, sku: '*', message: `key ${key} is in the ledger twice` });
      seen.add(key);
    }
  }
  return { valid: violations.length === 0, violations, summaries };
}

/** Every final answer to one key (200, or 409 sold out / insufficient stock) must be the same. */
function checkKeyAnswers(buys: readonly BuyRecord[], violations: Violation[]): void {
  const finals = new Map<string, BuyRecord>();
  for (const b of buys) {
    if (b.key === null || b.status === null) continue;
    const code = errorCode(b.body);
    const final = b.status === 200 || (b.status === 409 && (code === 'sold_out' || code === 'insufficient_stock'));
    if (!final) continue;
    const first = finals.get(b.key);
    if (!first) {
      finals.set(b.key, b);
    } else if (first.status !== b.status || JSON.stringify(first.body) !== JSON.stringify(b.body)) {
      violations.push({
        kind: 'key_answer_changed',
        lane: b.lane,
        sku: b.sku,
        message: `key ${b.key}: first ${first.status} ${JSON.stringify(first.body)}, later ${b.status} ${JSON.stringify(b.body)}`,
      });
    }
  }
}

/** One line per violation, and the per-lane figures, for a failing test's message. */
export function describeResult(result: CheckResult): string {
  const lines = result.violations.map((v) => `VIOLATION ${v.kind} ${v.lane}/${v.sku}: ${v.message}`);
  for (const s of result.summaries) {
    lines.push(`${s.lane}/${s.sku}: acked ${s.acked} unknown ${s.unknown} refused ${s.refused}; sold ∈ [${s.soldRange[0]}, ${s.soldRange[1]}], initial ∈ [${s.initialRange[0]}, ${s.initialRange[1]}]; final ${show(s.final)}`);
  }
  return lines.join('\n');
}
