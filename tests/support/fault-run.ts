/**
 * One checked fault run: three real replicas over a private MongoDB and Redis, each replica
 * reaching them through its own TCP proxy (so one replica can be partitioned, or every link made
 * slow), buyers on every lane at once plus an admin client (workload.ts), one fault injected
 * while they run, then the faults healed, unknown outcomes resolved by retrying their keys, the
 * replicas left to converge, and the primary killed so that a successor rebuilds from the
 * ledger. The whole history and the final state go to the checker; the caller asserts on it.
 * `make test` runs every fault once (tests/fault-matrix.test.ts); `make soak` runs random
 * sequences of them for longer (tests/soak/soak.soak.ts).
 *
 * Both cluster modes run the same matrix. In `allotments` mode every replica sells, so "the
 * primary" of a fault is a replica holding units (the first live one), "another takes over" means
 * another replica fenced its ledger stream and reclaimed its units, and the final check stops a
 * replica and reads the global view once its allotments were closed from its ledger.
 */
import { MongoClient } from 'mongodb';
import { MEMORY_LANES, type ClusterMode } from '../../src/config.js';
import { checkHistory, classify, stateKey, type CheckResult } from '../checker/checker.js';
import { HistoryRecorder, readLevel, type Level, type Target } from '../checker/history.js';
import { Workload, seededRandom, type SkuPlan } from '../checker/workload.js';
import { reserveMongo, reserveRedis, startMongo, startRedis, type Dependency } from '../harness/deps.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { waitFor } from '../harness/wait.js';
import { hostField } from '../../src/cluster/allotments/pool-store.js';
import { TestCluster, roleOf, type Replica } from './cluster.js';
import { TEST_ADMIN_TOKEN } from './local-app.js';

export const FAULTS = ['kill-primary', 'stop-primary', 'redis-restart', 'mongo-paused', 'mongo-slow', 'deps-late', 'partition-primary'] as const;
export type Fault = (typeof FAULTS)[number];

export const ALL_LANES = ['db', 'atomic', 'lock', 'signal', 'redis'] as const;

export interface RunOptions {
  readonly faults: readonly Fault[];
  readonly seed: number;
  /** How long a fault lasts where its length is ours to choose (pause, slowness, outage). */
  readonly faultMs: number;
  /** Acknowledged buys to see before the first fault, and after each recovery. */
  readonly trafficBetween: number;
  readonly buyersPerLane: number;
  /** Share of admin calls that PUT an existing SKU or reset all (default none: restocks only). */
  readonly resettingShare?: number;
  readonly log?: (line: string) => void;
  /**
   * MongoDB and Redis shared by several runs (a run that starts them late brings its own): saves
   * starting a MongoDB per run. Each run has its own database; Redis is flushed first.
   */
  readonly shared?: { readonly mongo: Dependency; readonly redis: Dependency };
  /** CLUSTER_MODE of the replicas (default primary). */
  readonly mode?: ClusterMode;
}

export interface RunReport {
  readonly result: CheckResult;
  readonly requests: number;
  readonly acknowledged: number;
  readonly unresolvedKeys: number;
  readonly elapsedMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How long a replica's stores may take to answer again once every fault is healed. */
const STORES_ANSWER_AGAIN_MS = 15_000;

interface Links {
  readonly mongo: TcpProxy[];
  readonly redis: TcpProxy[];
}

export async function runFaults(options: RunOptions): Promise<RunReport> {
  const began = performance.now();
  const log = options.log ?? (() => undefined);
  const random = seededRandom(options.seed);
  const late = options.faults[0] === 'deps-late';
  const own = late || !options.shared;
  const mongo: Dependency = late ? await reserveMongo() : (options.shared?.mongo ?? (await startMongo()));
  // Redis persists (AOF, fsync always) as a production Redis holding the redis lane must: a
  // restart is an outage, not the loss of every sale (that case is documented, not checked).
  const redis: Dependency = late ? await reserveRedis({ persistent: true }) : (options.shared?.redis ?? (await startRedis({ persistent: true })));
  if (!own) await redis.command('FLUSHALL');
  const links: Links = { mongo: [], redis: [] };
  for (let i = 0; i < 3; i++) {
    links.mongo.push(await startTcpProxy(mongo.port));
    links.redis.push(await startTcpProxy(redis.port));
  }
  const closeLinks = () => Promise.all([...links.mongo, ...links.redis].map((p) => p.close()));
  const stopOwn = async () => {
    if (own) await Promise.all([mongo.stop(), redis.stop()]);
  };
  const mode = options.mode ?? 'primary';
  const cluster = await TestCluster.start(
    3,
    { DEPENDENCY_TIMEOUT_MS: '1000', FORWARD_TIMEOUT_MS: '3000', CLUSTER_MODE: mode },
    (i) => ({ MONGO_URL: `mongodb://127.0.0.1:${links.mongo[i]?.port}/`, REDIS_URL: `redis://127.0.0.1:${links.redis[i]?.port}` }),
    late ? 'alive' : 'ready',
    60_000,
  ).catch(async (error: unknown) => {
    await closeLinks();
    await stopOwn();
    throw error;
  });
  const mark = (what: string) => log(`${what} at ${Math.round(performance.now() - began)} ms`);
  mark('cluster started');
  const recorder = new HistoryRecorder({ requestTimeoutMs: 4000, adminToken: TEST_ADMIN_TOKEN });
  const targetOf = (r: Replica): Target => ({ id: r.id, url: cluster.url(r) });
  const skus: SkuPlan[] = [
    { sku: 'EDGE', stock: 60, createdMidRun: late }, // sells out and is restocked: the edge where an oversell shows
    { sku: 'DEEP', stock: 100_000, createdMidRun: late },
    { sku: 'NEW', stock: 500, createdMidRun: true }, // created while buyers already ask for it
  ];
  try {
    if (!late) {
      const primary = targetOf(await sellerOf(cluster, mode));
      for (const { sku, stock, createdMidRun } of skus) if (!createdMidRun) requireAcknowledged(await recorder.put(primary, sku, stock), `PUT ${sku}`);
    }
    const workload = new Workload({
      recorder,
      lanes: ALL_LANES,
      skus,
      buyersPerLane: options.buyersPerLane,
      keyedShare: 0.7,
      adminIntervalMs: 700,
      random,
      targets: () => cluster.live().map(targetOf),
      backoffMs: 50,
      resettingShare: options.resettingShare ?? 0,
    });
    const acknowledged = () => recorder.records.filter((r) => r.type === 'buy' && r.status === 200).length;
    const trafficFlows = async (what: string) => {
      const before = acknowledged();
      await waitFor(() => acknowledged() >= before + options.trafficBetween, { timeoutMs: 30_000, intervalMs: 50, message: `${what}: ${options.trafficBetween} more sales acknowledged` });
    };
    workload.start();
    try {
      for (const fault of options.faults) {
        if (fault !== 'deps-late') await trafficFlows(`before ${fault}`);
        mark(`fault ${fault}`);
        await inject(fault, { cluster, mongo, redis, links, faultMs: options.faultMs, mode });
        await sellerOf(cluster, mode, 30_000);
        mark('healed');
        await trafficFlows(`after ${fault}`);
      }
    } finally {
      await workload.stop();
    }
    mark('load stopped');
    const { left } = await workload.resolveUnknowns(20_000);
    mark('unknowns resolved');
    const primary = await sellerOf(cluster, mode, 20_000);
    const keys = skus.map((s) => s.sku);
    // A replica just healed may need a moment before its stores answer again: its MongoDB client
    // may have to notice a wedged monitor and connect afresh (src/mongo.ts: about 3 s past the
    // driver's connect timeout, then a reconnect). One that does not within 15 s did not recover
    // and fails the run. (Before that fix it was seen to take over 20 s, and once for ever.)
    let longestWaitMs = 0;
    const levelsOf = async (r: Replica) => {
      const levels = new Map<string, Level | null>();
      const started = Date.now();
      const deadline = started + STORES_ANSWER_AGAIN_MS;
      for (const lane of ALL_LANES) {
        for (const sku of keys) {
          for (;;) {
            try {
              levels.set(stateKey(lane, sku), await readLevel(targetOf(r), lane, sku));
              break;
            } catch (error) {
              if (Date.now() > deadline) throw error;
              await sleep(200);
            }
          }
        }
      }
      longestWaitMs = Math.max(longestWaitMs, Date.now() - started);
      return levels;
    };
    const same = (a: Map<string, Level | null>, b: Map<string, Level | null>) => JSON.stringify([...a]) === JSON.stringify([...b]);
    // Replication is asynchronous: give the secondaries a moment; if they never agree the checker says so.
    await waitFor(
      async () => {
        const truth = await levelsOf(primary);
        for (const r of cluster.live()) if (!same(await levelsOf(r), truth)) return false;
        return true;
      },
      { timeoutMs: 10_000, intervalMs: 200, message: 'replicas converge' },
    ).catch((error: unknown) => log(String(error)));
    const replicas = new Map<string, Map<string, Level | null>>();
    for (const r of cluster.live()) replicas.set(r.id, await levelsOf(r));
    const ledgerKeys = await readLedgerKeys(mongo.url, cluster.database, mode === 'allotments' ? 'allotment_ledger' : 'ledger');
    mark(`final state read (the slowest replica's levels took ${longestWaitMs} ms)`);

    // The ledger equals the final state: a successor rebuilds from it what the primary served.
    // (SIGTERM hands the lease over at once; nothing is in flight any more.)
    // In allotments mode: the others' Peek once the stopped replica's allotments were closed from its ledger.
    const served = primary.service;
    await served?.stop();
    primary.service = null;
    if (mode === 'allotments') await reclaimed(mongo.url, cluster.database, primary.id, 'the stopped replica\'s allotments are closed');
    const successor = await sellerOf(cluster, mode, 20_000);
    const rebuilt = await levelsOf(successor);
    mark('rebuilt read');

    const result = checkHistory(recorder.records, { replicas, authority: primary.id, rebuilt, ledgerKeys }, { lanes: ALL_LANES, skus: keys });
    if (!result.valid) {
      // The admin calls, for whoever reads the violations.
      for (const op of recorder.records) if (op.type !== 'buy') log(`admin ${JSON.stringify({ ...op, start: Math.round(op.start - began), end: Math.round(op.end - began) })}`);
      for (const r of cluster.replicas) {
        const output = (r === primary ? served : r.service)?.output();
        log(`${r.id}${r === primary ? ' (primary at the end)' : ''} log, warnings and errors, last part:\n${output?.slice(-3000) ?? '(not running)'}`);
      }
    }
    return {
      result,
      requests: recorder.records.length,
      acknowledged: acknowledged(),
      unresolvedKeys: left,
      elapsedMs: Math.round(performance.now() - began),
    };
  } finally {
    await cluster.stop();
    await closeLinks();
    await stopOwn();
  }
}

function requireAcknowledged(record: { status: number | null; body: unknown }, what: string): void {
  if (classify(record.status, record.body) !== 'ok') throw new Error(`${what}: ${record.status} ${JSON.stringify(record.body)}`);
}

/** The replica to act on: the primary, or in allotments mode the first live replica once all sell. */
function sellerOf(cluster: TestCluster, mode: ClusterMode, timeoutMs = 15_000): Promise<Replica> {
  return mode === 'allotments' ? cluster.waitForSellers(timeoutMs) : cluster.waitForSinglePrimary(timeoutMs);
}

/**
 * Allotments mode: `host`'s ledger stream is fenced (another holder) and sealed, and none of its
 * allotments of an epoch below the stream's is left open — its unsold units are back in the pool.
 * Read from MongoDB, the store of record, whoever did it.
 */
async function reclaimed(mongoUrl: string, database: string, host: string, message: string): Promise<void> {
  const client = new MongoClient(mongoUrl, { serverSelectionTimeoutMS: 2000 });
  try {
    const db = client.db(database);
    await waitFor(
      async () => {
        const stream = await db.collection<{ _id: string; epoch: number; holder: string; sealing: unknown[] }>('fence').findOne({ _id: `stream:${host}` });
        if (!stream || stream.holder === host || stream.sealing.length > 0) return false;
        const docs = await db.collection<{ _id: string; allot: Record<string, { epoch: number }> }>('allotments').find({}).toArray();
        return docs.every((doc) => (doc.allot[hostField(host)]?.epoch ?? Number.POSITIVE_INFINITY) >= stream.epoch);
      },
      { timeoutMs: 20_000, intervalMs: 100, message },
    );
  } finally {
    await client.close();
  }
}

interface InjectContext {
  readonly mode: ClusterMode;
  readonly cluster: TestCluster;
  readonly mongo: Dependency;
  readonly redis: Dependency;
  readonly links: Links;
  readonly faultMs: number;
}

async function inject(fault: Fault, c: InjectContext): Promise<void> {
  const { cluster } = c;
  switch (fault) {
    case 'kill-primary': {
      const primary = await sellerOf(cluster, c.mode, 20_000);
      primary.service?.kill();
      primary.service = null;
      if (c.mode === 'allotments') await reclaimed(c.mongo.url, cluster.database, primary.id, 'another replica reclaims the killed one\'s units');
      else await cluster.waitForSinglePrimary(20_000);
      await cluster.startReplica(primary);
      return;
    }
    case 'stop-primary': {
      const primary = await sellerOf(cluster, c.mode, 20_000);
      const pid = primary.service?.pid as number;
      process.kill(pid, 'SIGSTOP');
      try {
        if (c.mode === 'allotments') await reclaimed(c.mongo.url, cluster.database, primary.id, 'another replica reclaims the stopped one\'s units');
        else await waitFor(async () => (await Promise.all(cluster.replicas.filter((r) => r !== primary).map(roleOf))).includes('primary'), {
          timeoutMs: 20_000,
          intervalMs: 100,
          message: 'another replica takes over from the stopped primary',
        });
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      return;
    }
    case 'redis-restart':
      await c.redis.stop();
      await sleep(c.faultMs);
      await c.redis.start();
      return;
    case 'mongo-paused':
      c.mongo.pause();
      await sleep(c.faultMs);
      c.mongo.resume();
      return;
    case 'mongo-slow':
      for (const link of c.links.mongo) link.setLatency(150);
      await sleep(c.faultMs);
      for (const link of c.links.mongo) link.setLatency(0);
      return;
    case 'deps-late':
      // The replicas started with neither MongoDB nor Redis listening; buyers have been hearing 503s.
      await sleep(c.faultMs);
      await c.mongo.start();
      await sleep(c.faultMs / 2);
      await c.redis.start();
      return;
    case 'partition-primary': {
      const primary = await sellerOf(cluster, c.mode, 20_000);
      const index = cluster.replicas.indexOf(primary);
      c.links.mongo[index]?.cut();
      c.links.redis[index]?.cut();
      try {
        if (c.mode === 'allotments') await reclaimed(c.mongo.url, cluster.database, primary.id, 'another replica reclaims the partitioned one\'s units');
        else await waitFor(async () => (await Promise.all(cluster.replicas.filter((r) => r !== primary).map(roleOf))).includes('primary'), {
          timeoutMs: 20_000,
          intervalMs: 100,
          message: 'another replica takes over from the partitioned primary',
        });
      } finally {
        c.links.mongo[index]?.heal();
        c.links.redis[index]?.heal();
      }
      return;
    }
  }
}

interface LedgerBatch {
  tombstone?: true;
  entries?: Array<{ op: string; lane: string; key?: string }>;
}

/** Every key of every buy in the ledger, per memory lane (tombstones left out). */
async function readLedgerKeys(url: string, database: string, collection: string): Promise<Map<string, string[]>> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 5000 });
  try {
    const keys = new Map<string, string[]>(MEMORY_LANES.map((lane) => [lane, []]));
    const batches = await client.db(database).collection<LedgerBatch>(collection).find({ tombstone: { $exists: false } }).toArray();
    for (const batch of batches) for (const entry of batch.entries ?? []) if (entry.op === 'buy' && entry.key !== undefined) keys.get(entry.lane)?.push(entry.key);
    return keys;
  } finally {
    await client.close();
  }
}
