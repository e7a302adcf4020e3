/**
 * One way to open MongoDB, and one way to bound a call: server selection and connecting give up
 * after DEPENDENCY_TIMEOUT_MS, and `bounded` races each operation against the same limit, so an
 * outage — even a server that accepts connections and then never answers — costs a caller at
 * most that long before a 503. (Driver 7 no longer honours the client-side `timeoutMS`.)
 */
import { MongoClient } from 'mongodb';
import { DependencyUnavailableError } from './errors.js';

export function createMongoClient(url: string, timeoutMs: number, appName: string): MongoClient {
  return new MongoClient(url, {
    appName,
    serverSelectionTimeoutMS: timeoutMs,
    connectTimeoutMS: timeoutMs,
    maxPoolSize: 50,
  });
}

/** Run `operation`, mapping any failure — or no answer within `timeoutMs` — to a 503. */
export async function bounded<T>(timeoutMs: number, operation: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      operation(),
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
