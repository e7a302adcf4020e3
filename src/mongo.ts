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
 * The driver's monitor can also wedge for good. Its heartbeat (a polling `isMaster`: the wire
 * server and older servers give no topologyVersion for streaming) may be written on the monitor's
 * connection in the instant after the peer closed it and before the driver saw the close: the
 * write then waits for a `drain` event that a destroyed socket never emits (driver 6.22 and 7.9,
 * `Connection.writeCommand`), the monitor stays "monitoring" and ignores every request for a
 * check, and the server stays Unknown — every operation fails server selection with the last
 * error ("connection 1 … closed") until the process restarts. A network partition that heals
 * (connections cut at once) hit it about one time in three here. `MongoConnection` therefore
 * watches the heartbeats: one that outlives every bound the driver puts on it (connectTimeoutMS,
 * plus heartbeatFrequencyMS for an awaited one) means a wedged monitor, and the client is closed
 * and connected afresh — the same recovery as after a failed first connection.
 *
 * Writes are acknowledged at the configured write concern — by default a majority of the
 * replica set, journaled — so a 200 survives the loss of the node that took the write.
 */
import { MongoClient, type Db, type MongoClientOptions, type ServerHeartbeatStartedEvent, type WriteConcernSettings } from 'mongodb';
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

/** Past its driver bounds, a heartbeat gets this much more before it counts as wedged (a busy event loop is slow, not wedged). */
const HEARTBEAT_SLACK_MS = 2000;

/**
 * A MongoClient that keeps trying to connect until it is closed, and starts afresh when the
 * driver's monitor wedges (see the module comment).
 *
 * @param onRestart told why the client was closed and connected afresh (for the log).
 */
export class MongoConnection {
  private closing = false;
  private restarting = false;
  private connecting: Promise<void> | null = null;
  /** Heartbeats started and not yet answered, by server address: when, and whether awaited (streaming). */
  private readonly heartbeats = new Map<string, { since: number; awaited: boolean }>();
  private readonly watchdog: NodeJS.Timeout;

  constructor(
    readonly client: MongoClient,
    private readonly onRestart: (reason: string) => void = () => undefined,
  ) {
    // A first connection that fails closes the topology; so does one an operation started.
    this.client.on('topologyClosed', () => {
      if (!this.restarting) this.keepConnecting();
    });
    this.client.on('serverHeartbeatStarted', (event: ServerHeartbeatStartedEvent) => this.heartbeats.set(event.connectionId, { since: performance.now(), awaited: event.awaited }));
    this.client.on('serverHeartbeatSucceeded', (event) => this.heartbeats.delete(event.connectionId));
    this.client.on('serverHeartbeatFailed', (event) => this.heartbeats.delete(event.connectionId));
    const { connectTimeoutMS, heartbeatFrequencyMS } = this.client.options;
    this.watchdog = setInterval(() => this.restartIfWedged(connectTimeoutMS, heartbeatFrequencyMS), Math.max(250, connectTimeoutMS / 2));
    this.watchdog.unref();
    this.keepConnecting();
  }

  db(name: string): Db {
    return this.client.db(name);
  }

  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.watchdog);
    await this.client.close();
  }

  /** A heartbeat past every bound the driver gives it will never end: close the client and connect again. */
  private restartIfWedged(connectTimeoutMs: number, heartbeatFrequencyMs: number): void {
    if (this.closing || this.restarting) return;
    const now = performance.now();
    for (const [address, { since, awaited }] of this.heartbeats) {
      const bound = (awaited ? heartbeatFrequencyMs : 0) + connectTimeoutMs + HEARTBEAT_SLACK_MS;
      if (now - since <= bound) continue;
      this.restarting = true;
      this.heartbeats.clear();
      this.onRestart(`the driver's monitor of ${address} wedged (a heartbeat unanswered for ${Math.round(now - since)} ms, bound ${bound} ms)`);
      // Closing emits topologyClosed, which is ignored while restarting: connect again once closed.
      void this.client
        .close()
        .catch(() => undefined)
        .finally(() => {
          this.restarting = false;
          this.keepConnecting();
        });
      return;
    }
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
