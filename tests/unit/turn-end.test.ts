/**
 * The end of an event-loop turn (`TurnEnd`, src/turn-end.ts), which the admission gate brings
 * forward when it refuses: the flushes scheduled in a turn run once, at the check phase or at
 * `flushNow()`, whichever comes first, in the order they were scheduled; and the worker's keyed-buy
 * claims (`BatchedIdempotencyClient`) leave at a `flushNow()` rather than only at the check phase.
 * Pure logic: no process, no store. Budget: < 1 s.
 */
import { TurnEnd } from '../../src/turn-end.js';
import { BatchedIdempotencyClient, type IdempotencyAnswer, type IdempotencyAsk } from '../../src/worker/idempotency-batch.js';

const checkPhase = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('TurnEnd', () => {
  test('scheduled flushes run at the check phase, in order, once', async () => {
    const turnEnd = new TurnEnd();
    const ran: string[] = [];
    turnEnd.schedule(() => ran.push('ledger'));
    turnEnd.schedule(() => ran.push('claims'));
    expect(ran).toEqual([]);
    await checkPhase();
    expect(ran).toEqual(['ledger', 'claims']);
    await checkPhase();
    expect(ran).toEqual(['ledger', 'claims']);
  });

  test('flushNow runs them at once, and the check phase then finds nothing left; what is scheduled after still runs there', async () => {
    const turnEnd = new TurnEnd();
    const ran: string[] = [];
    turnEnd.schedule(() => ran.push('first'));
    turnEnd.flushNow();
    expect(ran).toEqual(['first']);
    turnEnd.schedule(() => ran.push('second'));
    await checkPhase();
    expect(ran).toEqual(['first', 'second']);
    turnEnd.flushNow(); // nothing due: a no-op
    expect(ran).toEqual(['first', 'second']);
  });

  test('keyed-buy claims leave when the turn is ended early, in one message', async () => {
    const turnEnd = new TurnEnd();
    const sent: IdempotencyAsk[][] = [];
    const client = new BatchedIdempotencyClient(
      async (asks) => {
        sent.push(asks);
        return asks.map((): IdempotencyAnswer => ({ kind: 'new' }));
      },
      100,
      turnEnd,
    );
    const claims = [client.claim('k1', 'f1'), client.claim('k2', 'f2')];
    expect(sent).toEqual([]);
    turnEnd.flushNow();
    expect(sent.map((asks) => asks.map((a) => a.key))).toEqual([['k1', 'k2']]);
    await expect(Promise.all(claims)).resolves.toEqual([{ kind: 'new' }, { kind: 'new' }]);
  });
});
