/**
 * One way to open MongoDB, and one way to bound a call: server selection and connecting give up
 * after DEPENDENCY_TIMEOUT_MS, and `bounded` races each operation against the same limit, so an
 * outage — even a server that accepts connections and then never answers — costs a caller at
 * most that long before a 503. (Driver 7 no longer honours the client-side `timeoutMS`.)
 *
 * MongoDB may come up after this process, and may go away and come back at any time. The driver
 * recovers from a lost server by itself once it has connected, but not from a first connection
 * that failed: it closes its topology, and every later operation fails with "Topology is closed"
 * for good (until `connect()` is called again). `MongoConnection` therefore keeps connecting, with
 * backoff, from the start and whenever the topology closes without being asked to; meanwhile
 * every operation fails fast and is answered 503.
 *
 * Writes are acknowledged at the configured write concern — by default a majority of the
 * replica set, journaled — so a 200 survives the loss of the node that took the write.
 */
import { MongoClient, type Db, type MongoClientOptions, type WriteConcernSettings } from 'mongodb';
import { DependencyUnavailableError } from './errors.js';

export interface MongoWriteConcern {
  /** `majority`, or how many members must acknowledge. */
  readonly w: 'majority' | number;
  /** Acknowledged only once in the on-disk journal. */
  readonly journal: boolean;
}

export const DEFAULT_WRITE_CONCERN: MongoWriteConcern = Object.freeze({ w: 'majority', journal: true });

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 1000;

/** The client options every MongoDB client of the service uses. */
export function mongoClientOptions(timeoutMs: number, appName: string, writeConcern: MongoWriteConcern = DEFAULT_WRITE_CONCERN): MongoClientOptions {
  const concern: WriteConcernSettings = { w: writeConcern.w, journal: writeConcern.journal };
  return { appName, serverSelectionTimeoutMS: timeoutMs, connectTimeoutMS: timeoutMs, maxPoolSize: 50, writeConcern: concern };
}

export function createMongoClient(url: string, timeoutMs: number, appName: string, writeConcern: MongoWriteConcern = DEFAULT_WRITE_CONCERN): MongoClient {
  return new MongoClient(url, mongoClientOptions(timeoutMs, appName, writeConcern));
}

/** A MongoClient that keeps trying to connect until it is closed (see the module comment). */
export class MongoConnection {
  private closing = false;
  private connecting: Promise<void> | null = null;

  constructor(readonly client: MongoClient) {
    // A first connection that fails closes the topology; so does one an operation started.
    this.client.on('topologyClosed', () => this.keepConnecting());
    this.keepConnecting();
  }

  db(name: string): Db {
    return this.client.db(name);
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.client.close();
  }

  private keepConnecting(): void {
    if (this.closing || this.connecting) return;
    this.connecting = (async () => {
      for (let delay = FIRST_RETRY_MS; !this.closing; delay = Math.min(delay * 2, MAX_RETRY_MS)) {
        try {
          await this.client.connect();
          return;
        } catch {
          await new Promise((r) => setTimeout(r, delay).unref());
        }
      }
    })().finally(() => {
      this.connecting = null;
    });
  }
}

/** Run `operation`, mapping any failure — or no answer within `timeoutMs` — to a 503. */
export async function bounded<T>(timeoutMs: number, operation: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const pending = operation();
    // Once the timer has won, a later failure of the operation is nobody's to handle: without
    // this it would be an unhandled rejection, which ends the process.
    pending.catch(() => undefined);
    return await Promise.race([
      pending,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (error) {
    if (error instanceof DependencyUnavailableError) throw error;
    throw new DependencyUnavailableError('mongo', error instanceof Error ? error.message : String(error), error);
  } finally {
    clearTimeout(timer);
  }
}
