/**
 * One way to open MongoDB, and one way to bound a call: server selection and connecting give up
 * after DEPENDENCY_TIMEOUT_MS, and `bounded` races each operation against the same limit, so an
 * outage — even a server that accepts connections and then never answers — costs a caller at
 * most that long before a 503. (Driver 7 no longer honours the client-side `timeoutMS`.)
 */
import { MongoClient } from 'mongodb';
import { DependencyUnavailableError } from './errors.js';

export function createMongoClient(url: string, timeoutMs: number, appName: string): MongoClient {
  const client = new MongoClient(url, {
    appName,
    serverSelectionTimeoutMS: timeoutMs,
    connectTimeoutMS: timeoutMs,
    maxPoolSize: 50,
  });
  reconnectWhenTopologyCloses(client, timeoutMs);
  return client;
}

/**
 * When its first connection attempt fails (server selection timed out: MongoDB not up yet, or
 * slow to answer its first hello), the driver closes the client's topology and keeps it: every
 * later operation fails with "Topology is closed", for ever. A replica started before MongoDB —
 * the usual order in a fresh cluster — would never become ready. `connect()` again builds a new
 * topology, so do that whenever the topology closes without our asking, paced by the timeout.
 */
function reconnectWhenTopologyCloses(client: MongoClient, timeoutMs: number): void {
  let closing = false;
  const close = client.close.bind(client);
  client.close = (force?: boolean) => {
    closing = true;
    return close(force);
  };
  client.on('topologyClosed', () => {
    if (closing) return;
    setTimeout(() => {
      if (!closing) client.connect().catch(() => undefined);
    }, timeoutMs).unref();
  });
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
