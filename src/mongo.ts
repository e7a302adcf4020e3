/**
 * One way to open MongoDB: every operation is bounded by DEPENDENCY_TIMEOUT_MS (the driver's
 * client-side operation timeout covers server selection, connection and the round trip), so an
 * outage costs a caller at most that long before a 503.
 */
import { MongoClient } from 'mongodb';

export function createMongoClient(url: string, timeoutMs: number, appName: string): MongoClient {
  return new MongoClient(url, {
    appName,
    timeoutMS: timeoutMs,
    serverSelectionTimeoutMS: timeoutMs,
    connectTimeoutMS: timeoutMs,
    maxPoolSize: 50,
  });
}
