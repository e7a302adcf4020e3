/**
 * Idempotency keys across replicas (allotments mode): a retry may land on any replica, and two
 * replicas must never both sell under one key. Each replica's registry still answers what it
 * remembers; a key it does not hold is claimed in MongoDB first — one insert of `{_id: key,
 * host, epoch}` into `idempotency_claims`, which only one replica can win.
 *
 * - Insert won: nobody sold under this key (a key that sold keeps its claim), so it is new.
 * - Lost to a claim of its own (this replica, this epoch: memory forgot it): the ledger says.
 * - Lost to another replica: the answer is looked up in every replica's ledger (the key index
 *   spans all streams). Found: replayed. Not found and the claimant's epoch is still live: the
 *   request is in progress there (409 `idempotency_key_in_use`, retry). Not found and the
 *   claimant's epoch is fenced and sealed: its sale can never land, so the claim is taken over
 *   (a compare-and-swap on the claimant and epoch seen) and the key is new here.
 *
 * A claim whose request ended without a sale (503, 409 sold out) is dropped again, so a retry
 * anywhere decides afresh. Claims of sales stay for the idempotency TTL's worth of ledger.
 */
import { MongoServerError, type Collection, type Db } from 'mongodb';
import { bounded } from '../../mongo.js';
import { fingerprintIsLedgered, KeyInProgressElsewhereError, type DurableAnswer, type DurableAnswers } from '../../idempotency.js';
import { ALLOTMENT_LEDGER_COLLECTION, Fence, answerOfEntry, replicaStream } from '../ledger/ledger.js';

interface ClaimDocument {
  _id: string;
  host: string;
  epoch: number;
  at: Date;
}

const DUPLICATE_KEY = 11000;

function isDuplicate(error: unknown): boolean {
  const cause = error instanceof Error && error.cause instanceof MongoServerError ? error.cause : error;
  return cause instanceof MongoServerError && cause.code === DUPLICATE_KEY;
}

export class GlobalKeyClaims implements DurableAnswers {
  private readonly claims: Collection<ClaimDocument>;
  /** The key index spans every replica's stream (one collection). */
  private readonly anyStream: Fence;

  constructor(
    private readonly db: Db,
    private readonly hostId: string,
    /** This replica's current epoch (its stream's). */
    private readonly epoch: () => number,
    private readonly timeoutMs: number,
  ) {
    this.claims = db.collection<ClaimDocument>('idempotency_claims');
    this.anyStream = new Fence(db, timeoutMs, { fenceId: 'unused', collection: ALLOTMENT_LEDGER_COLLECTION, host: null });
  }

  /**
   * Claims live as long as answers are kept (IDEMPOTENCY_TTL_MS): MongoDB's TTL monitor removes
   * older ones (a wire server without one keeps them, which is safe, only larger).
   */
  async ensureIndexes(ttlMs: number): Promise<void> {
    await this.claims.createIndex({ at: 1 }, { expireAfterSeconds: Math.ceil(ttlMs / 1000) });
  }

  covers(fingerprint: string): boolean {
    return fingerprintIsLedgered(fingerprint);
  }

  async find(key: string): Promise<DurableAnswer | null> {
    const epoch = this.epoch();
    try {
      await bounded(this.timeoutMs, () => this.claims.insertOne({ _id: key, host: this.hostId, epoch, at: new Date() }));
      return null;
    } catch (error) {
      if (!isDuplicate(error)) throw error;
    }
    const claim = await bounded(this.timeoutMs, () => this.claims.findOne({ _id: key }));
    const recorded = await this.recorded(key);
    if (recorded) return recorded;
    if (!claim) return this.find(key); // dropped meanwhile: claim it again
    if (claim.host === this.hostId && claim.epoch === epoch) return null;
    const stream = await new Fence(this.db, this.timeoutMs, replicaStream(claim.host)).state();
    const sealed = stream !== null && stream.epoch > claim.epoch && !stream.unsealed.includes(claim.epoch);
    if (!sealed) throw new KeyInProgressElsewhereError(key);
    // Its epoch is fenced and sealed, and its ledger has no sale under the key: take it over.
    const taken = await bounded(this.timeoutMs, () => this.claims.updateOne({ _id: key, host: claim.host, epoch: claim.epoch }, { $set: { host: this.hostId, epoch, at: new Date() } }));
    if (taken.matchedCount === 1) {
      // A sale of the fenced epoch cannot land any more, but one may have landed just before the seal.
      return this.recorded(key);
    }
    throw new KeyInProgressElsewhereError(key);
  }

  /** The request under `key` ended without a sale: drop this replica's claim so a retry anywhere decides afresh. */
  async forget(key: string): Promise<void> {
    await bounded(this.timeoutMs, () => this.claims.deleteOne({ _id: key, host: this.hostId })).catch(() => undefined);
  }

  private async recorded(key: string): Promise<DurableAnswer | null> {
    const entry = (await this.anyStream.findKeyed([key])).get(key);
    return entry === undefined ? null : answerOfEntry(entry);
  }
}
