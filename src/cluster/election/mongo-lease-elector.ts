/**
 * Leader election outside Kubernetes: a lease document in MongoDB, driven like client-go's
 * leaderelection. The leader renews by bumping the document's `version` under the condition that
 * it still holds it; followers note, on their own monotonic clock, when they last saw the version
 * change, and try to take over (a compare-and-swap on the version they saw) only after a whole
 * lease duration of silence — so no wall clocks are compared across machines. A leader that has
 * not renewed within its renew deadline stops being leader at once, which is before any follower
 * can have waited out the longer lease duration. Each new term takes a higher epoch from the
 * EpochStore, and that epoch fences the leader's writes.
 */
import type { Collection, Db } from 'mongodb';
import { MongoServerError } from 'mongodb';
import { monotonicMs } from '../cluster-state.js';
import { LeaseElectorBase, type LeaseElectorOptions } from './lease-elector-base.js';

interface LeaseDocument {
  _id: string;
  holder: string | null;
  holderUrl: string | null;
  version: number;
}

export interface MongoLeaseElectorOptions extends LeaseElectorOptions {
  readonly db: Db;
}

export class MongoLeaseElector extends LeaseElectorBase {
  private readonly leases: Collection<LeaseDocument>;
  private leadingVersion = -1;

  constructor(private readonly options: MongoLeaseElectorOptions) {
    super(options);
    this.leases = options.db.collection<LeaseDocument>('leases');
  }

  protected async round(): Promise<void> {
    if (this.leadership.role === 'primary') {
      if (!this.isLeader()) return this.stepDown('renew deadline passed');
      return this.renew();
    }
    return this.tryAcquire();
  }

  protected async release(): Promise<void> {
    await this.leases
      .updateOne({ _id: this.options.leaseName, holder: this.id, version: this.leadingVersion }, { $set: { holder: null, holderUrl: null }, $inc: { version: 1 } })
      .catch(() => undefined);
  }

  private async renew(): Promise<void> {
    const attemptAt = monotonicMs();
    const result = await this.leases.updateOne({ _id: this.options.leaseName, holder: this.id, version: this.leadingVersion }, { $inc: { version: 1 } });
    if (this.leadership.role !== 'primary') return; // the renew deadline passed while the update ran
    if (result.matchedCount !== 1) return this.stepDown('lease taken over');
    this.leadingVersion += 1;
    // Count from when the request was sent: the lease cannot have lapsed before that.
    this.renewed(attemptAt);
  }

  private async tryAcquire(): Promise<void> {
    const now = monotonicMs();
    const lease = await this.leases.findOne({ _id: this.options.leaseName });
    if (!lease) {
      try {
        await this.leases.insertOne({ _id: this.options.leaseName, holder: this.id, holderUrl: this.options.url, version: 0 });
      } catch (error) {
        if (error instanceof MongoServerError && error.code === 11000) return; // another replica was first
        throw error;
      }
      return this.won(0, now);
    }
    const silent = this.silentForLeaseDuration(`${lease.version}/${lease.holder ?? ''}`, now);
    this.noteLeader(lease.holder, lease.holderUrl);
    if (lease.holder !== null && !silent) return;
    const taken = await this.leases.updateOne(
      { _id: this.options.leaseName, version: lease.version },
      { $set: { holder: this.id, holderUrl: this.options.url }, $inc: { version: 1 } },
    );
    if (taken.matchedCount === 1) await this.won(lease.version + 1, now);
  }

  private async won(version: number, at: number): Promise<void> {
    this.leadingVersion = version;
    await this.lead(at);
  }
}
