import { answerOfEntry } from '../../src/cluster/ledger/ledger.js';
import { LedgerReplay } from '../../src/cluster/ledger/rebuild.js';
import { InvalidElectorTimingsError, validateElectorTimings } from '../../src/cluster/election/elector.js';

describe('LedgerReplay', () => {
  test('replays seeds, puts, restocks, resets and buys in log order, per lane', () => {
    const replay = new LedgerReplay();
    replay.apply({ op: 'seed', lane: 'atomic', sku: 'A', stock: 10 });
    replay.apply({ op: 'seed', lane: 'lock', sku: 'A', stock: 10 });
    replay.apply({ op: 'buy', lane: 'atomic', sku: 'A', q: 3, rem: 7, key: 'k1' });
    replay.apply({ op: 'seed', lane: 'atomic', sku: 'A', stock: 99 }); // a seed never overwrites
    replay.apply({ op: 'restock', lane: 'atomic', sku: 'A', q: 5 });
    replay.apply({ op: 'buy', lane: 'lock', sku: 'A', q: 1, rem: 9 });
    expect(replay.levels.get('atomic')?.get('A')).toEqual({ remaining: 12, sold: 3, initial: 15 });
    expect(replay.levels.get('lock')?.get('A')).toEqual({ remaining: 9, sold: 1, initial: 10 });
    replay.apply({ op: 'reset', lane: 'atomic' });
    expect(replay.levels.get('atomic')?.get('A')).toEqual({ remaining: 15, sold: 0, initial: 15 });
    replay.apply({ op: 'put', lane: 'lock', sku: 'A', stock: 4 });
    expect(replay.levels.get('lock')?.get('A')).toEqual({ remaining: 4, sold: 0, initial: 4 });
  });

  test('keyed buys become the answers a retry gets, byte for byte as the route sent them', () => {
    expect(answerOfEntry({ op: 'buy', lane: 'signal', sku: 'B', q: 2, rem: 3, key: 'order-1' })).toEqual({
      fingerprint: 'signal/B/2',
      response: { status: 200, body: '{"lane":"signal","sku":"B","quantity":2,"remaining":3}' },
    });
  });
});

describe('validateElectorTimings', () => {
  test('accepts the defaults and refuses what client-go refuses', () => {
    expect(validateElectorTimings({ leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 })).toBeDefined();
    expect(() => validateElectorTimings({ leaseDurationMs: 2000, renewDeadlineMs: 2000, retryPeriodMs: 500 })).toThrow(InvalidElectorTimingsError);
    expect(() => validateElectorTimings({ leaseDurationMs: 3000, renewDeadlineMs: 600, retryPeriodMs: 500 })).toThrow(InvalidElectorTimingsError);
  });
});
