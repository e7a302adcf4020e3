/**
 * The history checker on hand-made histories: the ones that break the promise (oversell, a lost
 * acknowledgement, a key sold twice, a refusal that changed something, a key's answer changing,
 * replicas or the ledger disagreeing) must be flagged; the ones that keep it — including unknown
 * outcomes that did or did not happen and admin calls racing buyers — must pass.
 */
import { checkHistory, classify, stateKey, type FinalState, type ViolationKind } from '../checker/checker.js';
import type { AdminRecord, BuyRecord, Level, OperationRecord } from '../checker/history.js';

const LANE = 'atomic';
const SKU = 'A';
let clock = 0;

/** A buy from t to t+1 (or at explicit times), answered `status`. */
function buy(status: number | null, options: { q?: number; key?: string; at?: number; end?: number; body?: unknown; lane?: string } = {}): BuyRecord {
  const start = options.at ?? (clock += 10);
  const quantity = options.q ?? 1;
  const body =
    options.body ??
    (status === 200 ? { lane: options.lane ?? LANE, sku: SKU, quantity, remaining: 0 } : status === 409 ? { error: { code: 'sold_out' } } : status === 503 ? { error: { code: 'dependency_unavailable' } } : null);
  return { type: 'buy', lane: options.lane ?? LANE, sku: SKU, quantity, key: options.key ?? null, replica: 'r0', start, end: options.end ?? start + 1, status, body };
}

function put(stock: number, at: number, end = at + 1, status: number | null = 200): AdminRecord {
  return { type: 'put', sku: SKU, stock, start: at, end, status, body: status === 200 ? { sku: SKU, stock } : null };
}

function restock(quantity: number, at: number, end = at + 1, status: number | null = 200): AdminRecord {
  return { type: 'restock', sku: SKU, quantity, start: at, end, status, body: null };
}

function finalState(level: Level | null, more: Partial<Omit<FinalState, 'replicas' | 'authority'>> & { others?: Array<Level | null> } = {}): FinalState {
  const replicas = new Map<string, Map<string, Level | null>>([['r0', new Map([[stateKey(LANE, SKU), level]])]]);
  (more.others ?? []).forEach((other, i) => replicas.set(`r${i + 1}`, new Map([[stateKey(LANE, SKU), other]])));
  return { replicas, authority: 'r0', ...(more.rebuilt ? { rebuilt: more.rebuilt } : {}), ...(more.ledgerKeys ? { ledgerKeys: more.ledgerKeys } : {}) };
}

const level = (remaining: number, sold: number, initial = remaining + sold): Level => ({ remaining, sold, initial });

function kinds(history: OperationRecord[], final: FinalState, seeded: number | null = 10): ViolationKind[] {
  const result = checkHistory(history, final, { lanes: [LANE], skus: [SKU], ...(seeded === null ? {} : { seeded: new Map([[SKU, seeded]]) }) });
  return result.violations.map((v) => v.kind).sort();
}

beforeEach(() => {
  clock = 0;
});

describe('classify', () => {
  test('2xx done; 4xx and 503 refused; no answer, other 5xx and outcome_unknown unknown', () => {
    expect(classify(200, {})).toBe('ok');
    expect(classify(201, {})).toBe('ok');
    for (const status of [400, 404, 409, 422, 429, 503]) expect(classify(status, { error: { code: 'x' } })).toBe('refused');
    for (const status of [null, 500, 502, 504]) expect(classify(status, null)).toBe('unknown');
    expect(classify(504, { error: { code: 'outcome_unknown' } })).toBe('unknown');
    expect(classify(503, { error: { code: 'outcome_unknown' } })).toBe('unknown');
  });
});

describe('histories that keep the promise pass', () => {
  test('acknowledged sales and refusals, counts exact', () => {
    const history = [buy(200), buy(200, { q: 3 }), buy(409), buy(503), buy(400)];
    expect(kinds(history, finalState(level(6, 4)))).toEqual([]);
  });

  test('an unknown outcome may have happened or not', () => {
    const history = [buy(200), buy(null), buy(504, { body: { error: { code: 'outcome_unknown' } } }), buy(500)];
    for (const sold of [1, 2, 3, 4]) expect(kinds(history, finalState(level(10 - sold, sold)))).toEqual([]);
  });

  test('a keyed retry after an unknown outcome replays the first answer and sells once', () => {
    const history = [buy(null, { key: 'k1', q: 2 }), buy(200, { key: 'k1', q: 2 }), buy(200, { key: 'k1', q: 2 })];
    expect(kinds(history, finalState(level(8, 2)))).toEqual([]);
  });

  test('a PUT wipes the sales before it; sales overlapping it may land on either side', () => {
    const history = [
      buy(200, { at: 0, end: 5 }), // before the PUT: wiped
      put(50, 10, 20),
      buy(200, { at: 15, end: 25 }), // overlaps: either side
      buy(200, { at: 30, end: 31 }), // after: counts
    ];
    expect(kinds(history, finalState(level(49, 1)))).toEqual([]);
    expect(kinds(history, finalState(level(48, 2)))).toEqual([]);
  });

  test('restocks raise initial; one of unknown outcome may or may not have happened', () => {
    const history = [put(10, 0), restock(5, 10), restock(7, 20, 21, null), buy(200, { at: 30 })];
    expect(kinds(history, finalState(level(14, 1)))).toEqual([]);
    expect(kinds(history, finalState(level(21, 1)))).toEqual([]);
  });

  test('a PUT of unknown outcome may land after a later acknowledged one (it was still in flight)', () => {
    const history = [put(60, 0, 4, null), put(60, 10, 11), buy(200, { at: 20 }), buy(200, { at: 30 }), buy(200, { at: 40 })];
    expect(kinds(history, finalState(level(57, 3)), null)).toEqual([]);
    expect(kinds(history, finalState(level(60, 0)), null)).toEqual([]); // the late PUT wiped the three
    expect(kinds(history, finalState(level(58, 2)), null)).toEqual([]); // ... or landed between them
    expect(kinds(history, finalState(level(56, 4)), null)).toEqual(['phantom_sale']);
    expect(kinds(history, finalState(level(70, 0)), null)).toEqual(['initial_wrong']);
  });

  test('a reset puts sold back to 0 and keeps initial (PUT plus restocks)', () => {
    const reset: AdminRecord = { type: 'reset', start: 20, end: 21, status: 204, body: null };
    const history = [put(10, 0), restock(5, 5), buy(200, { at: 10 }), reset, buy(200, { at: 30 })];
    expect(kinds(history, finalState(level(14, 1)), null)).toEqual([]);
    expect(kinds(history, finalState(level(13, 2)), null)).toEqual(['phantom_sale']);
  });

  test('a PUT of unknown outcome: valid with or without it', () => {
    const history = [put(10, 0), buy(200, { at: 10 }), buy(200, { at: 20 }), put(100, 30, 31, null)];
    expect(kinds(history, finalState(level(8, 2)), null)).toEqual([]);
    expect(kinds(history, finalState(level(100, 0)), null)).toEqual([]);
  });

  test('replicas that agree, a ledger that rebuilds the same, no key twice', () => {
    const history = [buy(200, { key: 'a' }), buy(200, { key: 'b' })];
    const final = finalState(level(8, 2), { others: [level(8, 2), level(8, 2)], rebuilt: new Map([[stateKey(LANE, SKU), level(8, 2)]]), ledgerKeys: new Map([[LANE, ['a', 'b']]]) });
    expect(kinds(history, final)).toEqual([]);
  });
});

describe('histories that break the promise are flagged', () => {
  test('oversell: more acknowledged than existed', () => {
    const history = [put(2, 0), buy(200, { at: 10 }), buy(200, { at: 20 }), buy(200, { at: 30 })];
    expect(kinds(history, finalState(level(-1, 3, 2)))).toEqual(['negative_stock', 'oversell']);
    // Even when the final state hides it (sold capped at the stock), the acknowledgements give it away.
    expect(kinds(history, finalState(level(0, 2)))).toEqual(['lost_ack', 'oversell']);
  });

  test('lost acknowledgement: an acked sale is not in the final count', () => {
    expect(kinds([buy(200), buy(200), buy(200)], finalState(level(8, 2)))).toEqual(['lost_ack']);
  });

  test('a key sold twice: counted once by the history, twice by the state and the ledger', () => {
    const history = [buy(null, { key: 'k1' }), buy(200, { key: 'k1' })];
    expect(kinds(history, finalState(level(8, 2), { ledgerKeys: new Map([[LANE, ['k1', 'k1']]]) }))).toEqual(['key_sold_twice', 'phantom_sale']);
  });

  test('a 503 that changed something', () => {
    expect(kinds([buy(200), buy(503)], finalState(level(8, 2)))).toEqual(['phantom_sale']);
  });

  test("a key's answer changes: 200 first, 409 sold out on the retry", () => {
    const history = [buy(200, { key: 'k1' }), buy(409, { key: 'k1' })];
    expect(kinds(history, finalState(level(9, 1)))).toEqual(['key_answer_changed']);
  });

  test('a replayed answer that differs from the original', () => {
    const history = [buy(200, { key: 'k1', body: { lane: LANE, sku: SKU, quantity: 1, remaining: 9 } }), buy(200, { key: 'k1', body: { lane: LANE, sku: SKU, quantity: 1, remaining: 4 } })];
    expect(kinds(history, finalState(level(9, 1)))).toEqual(['key_answer_changed']);
  });

  test('remaining + sold != initial, and a wrong initial', () => {
    expect(kinds([buy(200)], finalState(level(8, 1, 10)))).toEqual(['counts_disagree']);
    expect(kinds([restock(5, 5), buy(200, { at: 10 })], finalState(level(9, 1)))).toEqual(['initial_wrong']);
  });

  test('a sale acknowledged after a PUT is lost if the count says it was wiped', () => {
    const history = [put(10, 0), buy(200, { at: 10 }), buy(200, { at: 20 })];
    expect(kinds(history, finalState(level(10, 0)), null)).toEqual(['lost_ack']);
  });

  test('replicas disagree; the ledger rebuilds something else', () => {
    const history = [buy(200)];
    expect(kinds(history, finalState(level(9, 1), { others: [level(9, 1), level(10, 0)] }))).toEqual(['replicas_disagree']);
    expect(kinds(history, finalState(level(9, 1), { rebuilt: new Map([[stateKey(LANE, SKU), level(10, 0)]]) }))).toEqual(['ledger_differs']);
  });

  test('acknowledged sales of a SKU that does not exist at the end, and a SKU nobody created', () => {
    expect(kinds([buy(200)], finalState(null))).toEqual(['lost_ack']);
    expect(kinds([buy(200)], finalState(level(9, 1)), null)).toEqual(['initial_wrong']);
  });
});
