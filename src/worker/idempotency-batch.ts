/**
 * A worker's side of the idempotency registry, which lives on the main thread (a retry may land on
 * any worker). A keyed buy asks it twice — claim the key, then record the answer — so each ask
 * crossing threads on its own would cost two message round trips per buy. Instead, every ask made
 * in one event-loop turn travels in one message and the answers come back in one: under load a
 * keyed buy pays a share of a round trip, as the signal lane's hand-off does. The registry applies
 * a batch in order, so a key's claim and completion keep their order.
 *
 * Backpressure: when `claimLimit` claims already wait for the registry, a new claim is refused at
 * once (503 `overloaded`), before anything is sold. Completions and releases are never refused: they
 * finish a sale already made.
 */
import { ServiceError } from '../errors.js';
import type { IdempotencyClaim, IdempotencyStore, StoredResponse } from '../idempotency.js';
import { TurnEnd } from '../turn-end.js';

export type IdempotencyAsk =
  | { readonly op: 'claim'; readonly key: string; readonly fingerprint: string }
  | { readonly op: 'complete'; readonly key: string; readonly response: StoredResponse }
  | { readonly op: 'release'; readonly key: string };

/** One answer per ask, in order: the claim for a claim, null for the others. */
export type IdempotencyAnswer = IdempotencyClaim | null;

/** Apply a batch to the registry, in order (the main thread's side). */
export async function answerAsks(store: IdempotencyStore, asks: readonly IdempotencyAsk[]): Promise<IdempotencyAnswer[]> {
  const answers: IdempotencyAnswer[] = [];
  for (const ask of asks) {
    if (ask.op === 'claim') {
      answers.push(await store.claim(ask.key, ask.fingerprint));
      continue;
    }
    if (ask.op === 'complete') await store.complete(ask.key, ask.response);
    else await store.release(ask.key);
    answers.push(null);
  }
  return answers;
}

interface Waiting {
  readonly resolve: (answer: IdempotencyAnswer) => void;
  readonly reject: (error: Error) => void;
}

export class BatchedIdempotencyClient implements IdempotencyStore {
  private asks: IdempotencyAsk[] = [];
  private waiting: Waiting[] = [];
  private scheduled = false;
  private claimsWaiting = 0;

  /**
   * @param send carries one batch to the registry and resolves with its answers.
   * @param claimLimit the most claims that may wait for an answer before a new one is refused.
   * @param turnEnd where a turn's asks leave: the thread's, shared with the admission gate (see TurnEnd).
   */
  constructor(
    private readonly send: (asks: IdempotencyAsk[]) => Promise<IdempotencyAnswer[]>,
    private readonly claimLimit: number,
    private readonly turnEnd: TurnEnd = new TurnEnd(),
  ) {}

  async claim(key: string, fingerprint: string): Promise<IdempotencyClaim> {
    if (this.claimsWaiting >= this.claimLimit) throw new ServiceError('overloaded');
    this.claimsWaiting++;
    let answer: IdempotencyAnswer;
    try {
      answer = await this.ask({ op: 'claim', key, fingerprint });
    } finally {
      this.claimsWaiting--;
    }
    if (answer === null) throw new Error('the idempotency registry answered a claim with nothing');
    return answer;
  }

  async complete(key: string, response: StoredResponse): Promise<void> {
    await this.ask({ op: 'complete', key, response });
  }

  async release(key: string): Promise<void> {
    await this.ask({ op: 'release', key });
  }

  private ask(ask: IdempotencyAsk): Promise<IdempotencyAnswer> {
    return new Promise((resolve, reject) => {
      this.asks.push(ask);
      this.waiting.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        this.turnEnd.schedule(this.flush);
      }
    });
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const asks = this.asks;
    const waiting = this.waiting;
    this.asks = [];
    this.waiting = [];
    this.send(asks).then(
      (answers) => waiting.forEach((w, i) => w.resolve(answers[i] ?? null)),
      (error: unknown) => waiting.forEach((w) => w.reject(error instanceof Error ? error : new Error(String(error)))),
    );
  };
}
