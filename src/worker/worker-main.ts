/**
 * A worker thread: maps the shared stock, builds its own lanes and clients, and serves HTTP on
 * the shared port (SO_REUSEPORT lets the kernel spread connections over all workers). With
 * DURABILITY=sync its in-memory lanes commit each sale to the ledger before answering; on a
 * replica that may not sell, writes are forwarded to the primary. It tells the supervisor once
 * it listens, and shuts down gracefully when asked.
 */
import { createServer } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { ClusterState } from '../cluster/cluster-state.js';
import { DurableMemoryAdmin, DurableMemoryLane } from '../cluster/ledger/durable-lane.js';
import { forwardUnlessPrimary } from '../cluster/forwarding/forwarder.js';
import { ALLOTMENT_RESERVE_AHEAD, Fence, GroupCommit, PRIMARY_LEDGER, replicaStream, type LedgerEntry } from '../cluster/ledger/ledger.js';
import { DirectInserts, directInsertTarget } from '../cluster/ledger/direct-inserts.js';
import { AllotmentLane } from '../cluster/allotments/allotment-lane.js';
import { SharedAdminLock } from '../memory/admin-lock.js';
import { ServiceError } from '../errors.js';
import { admissionGate } from '../http/admission-gate.js';
import { createApp } from '../http/app.js';
import { soldBody, type IdempotencyStore } from '../idempotency.js';
import type { Db } from 'mongodb';
import { NotReadyError } from '../lanes/dependency-check.js';
import { buildLanes } from '../lanes/index.js';
import type { MemoryLane } from '../lanes/memory-lane.js';
import { PortSignalChannel } from '../lanes/signal-lane.js';
import { createLogger } from '../logger.js';
import { SharedStock } from '../memory/shared-stock.js';
import { WorkerMetrics } from '../metrics.js';
import { closeGracefully } from './graceful-close.js';
import type { SupervisorApi, WorkerData } from './protocol.js';
import { BatchedIdempotencyClient } from './idempotency-batch.js';
import { RpcPeer } from './rpc.js';
import { TurnEnd } from '../turn-end.js';

if (!parentPort) throw new Error('worker-main must run in a worker thread');
const { index, config, buffer, capacity, signalPort, clusterBuffer, clusterOrigin } = workerData as WorkerData;
const log = createLogger(config.logLevel, { hostId: config.hostId, worker: index });
const stock = new SharedStock(buffer, capacity);
const cluster = new ClusterState(clusterBuffer, clusterOrigin);
const metrics = new WorkerMetrics();
let primaryUrl: string | null = null;

const server = createServer({ keepAliveTimeout: 65_000 });
const supervisor: RpcPeer<SupervisorApi> = new RpcPeer<SupervisorApi>(parentPort, {
  snapshot: () => metrics.snapshot(),
  setPrimary: (url: string | null) => {
    primaryUrl = url;
  },
  shutdown: async () => {
    await closeGracefully(server, config.shutdownTimeoutMs);
    await laneSet.close();
    directInserts?.close();
  },
});

/**
 * This thread's end of turn, where the batches gathered over a turn leave (ledger batches, keyed
 * buys' claims, signal-lane hand-offs): the check phase, or sooner when the admission gate refuses
 * — under a flood the poll phase can run for a second before the check phase comes (TurnEnd).
 */
const turnEnd = new TurnEnd();

/** Keyed buys' claims travel batched, one message per event-loop turn; past the queue limit they are refused. */
const idempotency: IdempotencyStore = new BatchedIdempotencyClient((asks) => supervisor.call('idempotencyBatch', asks), config.queueLimit, turnEnd);

/** A batch whose write timed out has been settled: finish what its buyers' 504s left open. */
function settled(entries: readonly LedgerEntry[], written: Promise<boolean>, sales: number): void {
  void written.then(async (wasWritten) => {
    for (const entry of entries) {
      // Unkeyed sales of one SKU share an entry: its q is theirs summed, given back at once.
      if (entry.op !== 'buy') continue;
      if (wasWritten) {
        if (entry.key !== undefined) await idempotency.complete(entry.key, { status: 200, body: soldBody(entry.lane, entry.sku, entry.q, entry.rem) });
      } else {
        await laneSet.memory[entry.lane].undo(entry.sku, entry.q);
        if (entry.key !== undefined) await idempotency.release(entry.key);
      }
    }
    // Those sales were kept in flight until now, so no admin change could come between.
    cluster.leaveSales(index, sales);
    log.warn({ entries: entries.length, written: wasWritten }, 'settled a ledger batch of unknown outcome');
  });
}

/**
 * The sales' group commits send their batch inserts over a socket of their own when MONGO_URL
 * allows it (direct-inserts.ts: the driver's insertOne costs ten times the CPU); admin batches,
 * reservations, seals and settling keep the driver.
 */
const directTarget = config.mongoUrl !== null && config.ledgerInserts === 'direct' ? directInsertTarget(config.mongoUrl) : null;
const directInserts = directTarget === null ? null : new DirectInserts(directTarget, config.mongoWriteConcern, config.dependencyTimeoutMs);

let memoryAdmin: DurableMemoryAdmin | null = null;
const allotments = config.clusterMode === 'allotments';

/**
 * Allotments mode: each in-memory lane sells this replica's allotment and commits to this
 * replica's own ledger stream; the pool, Peek and admin calls are the main thread's.
 */
const allotmentLanes = (() => {
  let commit: GroupCommit | null = null;
  return (lane: MemoryLane, db: Db) => {
    commit ??= new GroupCommit(new Fence(db, config.dependencyTimeoutMs, replicaStream(config.hostId), directInserts), () => cluster.epoch, settled, { limit: config.queueLimit, adminChanges: () => cluster.adminChanges(), reserveAheadAlone: true, reserveAhead: ALLOTMENT_RESERVE_AHEAD, turnEnd, observeBatch: metrics.recordLedgerBatch });
    return new AllotmentLane(lane, commit, cluster, (request) => supervisor.call('allotment', request), index);
  };
})();

const laneSet = buildLanes(
  config,
  stock,
  new PortSignalChannel(signalPort, config.queueLimit, turnEnd),
  `superstock-${config.hostId}-w${index}`,
  allotments
    ? allotmentLanes
    : config.durability === 'sync'
    ? (() => {
        let commit: GroupCommit | null = null;
        return (lane, db) => {
          const fence = new Fence(db, config.dependencyTimeoutMs);
          commit ??= new GroupCommit(new Fence(db, config.dependencyTimeoutMs, PRIMARY_LEDGER, directInserts), () => cluster.epoch, settled, { limit: config.queueLimit, adminChanges: () => cluster.adminChanges(), reserveAheadWhileBusy: true, turnEnd, observeBatch: metrics.recordLedgerBatch });
          if (!memoryAdmin) {
            const admin = new DurableMemoryAdmin(cluster, async (key) => (await fence.findKeyed([key])).has(key), config.dependencyTimeoutMs);
            // Admin batches go through a writer of their own, whose unknown outcomes the admin settles.
            // One change at a time goes through it (behind the barrier): one number reserved per batch, as needed.
            admin.useLedger(new GroupCommit(fence, () => cluster.epoch, (entries, written) => admin.settle(entries, written), { depth: 1, reserveAhead: 1 }));
            memoryAdmin = admin;
          }
          memoryAdmin.addLane(lane);
          return new DurableMemoryLane(lane, commit, cluster, memoryAdmin, index);
        };
      })()
    : undefined,
  (reason) => log.warn({ reason }, 'MongoDB client connected afresh'),
);


/** /readyz on a primary reads the fence itself: a newer epoch there fences this one off before the main thread's next check. */
const readinessFence = config.durability === 'sync' && laneSet.mongoDb ? new Fence(laneSet.mongoDb, config.dependencyTimeoutMs) : null;

/** Whether a buy would reach a primary that can sell: this replica, or the one it forwards to. */
async function checkPrimary(): Promise<void> {
  const phase = cluster.leadPhase;
  if (phase === 'fenced') throw new NotReadyError('fenced', `epoch ${cluster.epoch} was fenced off by a newer primary; in-memory buys are refused until this replica has stepped down`);
  if (cluster.maySell()) {
    const current = readinessFence ? await readinessFence.currentEpoch() : cluster.epoch;
    if (current > cluster.epoch) throw new NotReadyError('fenced', `epoch ${cluster.epoch} was fenced off by epoch ${current}; in-memory buys are refused until this replica has stepped down`);
    return;
  }
  if (phase === 'taking_over') throw new NotReadyError('taking_over', 'becoming primary: taking an epoch and rebuilding the in-memory lanes from the ledger, which needs MongoDB; buys answer 503 until then');
  if (primaryUrl === null) throw new Error('no primary known: no replica holds the lease right now');
}

const app = createApp({
  config,
  lanes: laneSet.lanes,
  idempotency,
  metrics,
  dependencies: [
    ...laneSet.dependencies,
    allotments
      ? {
          name: 'allotments',
          check: async () => {
            // A 503 wherever it surfaces (/readyz, or an admin call checking its dependencies first).
            if (!cluster.maySell()) throw new ServiceError('dependency_unavailable', 'This replica holds no allotment term right now (starting, or fenced and beginning a new one); retry shortly.', { dependency: 'allotments' });
          },
        }
      : { name: 'primary', check: checkPrimary },
  ],
  onUnexpectedError: (error) => log.error({ err: error }, 'unexpected error while serving a request'),
  // An admin change touches every lane's store a few times: wait out a few of them, no more.
  adminLock: new SharedAdminLock(stock, index + 1, 4 * config.dependencyTimeoutMs),
  memoryAdmin,
  // Allotments mode: every replica sells on every lane itself (db and redis are shared stores already).
  ...(allotments ? {} : { writeGate: forwardUnlessPrimary({
    state: cluster,
    hostId: config.hostId,
    timeoutMs: config.forwardTimeoutMs,
    queueLimit: config.queueLimit,
    primaryUrl: () => primaryUrl,
    onForward: (outcome) => metrics.recordForward(outcome),
  }) }),
});
// The admission gate refuses past ADMISSION_LIMIT before Express sees the request (probes pass).
// A refusal also ends the turn: what the admitted requests gathered leaves now, not after the
// flood's poll phase (TurnEnd).
server.on(
  'request',
  admissionGate(app, config.admissionLimit, () => {
    metrics.recordAdmissionRefused();
    turnEnd.flushNow();
  }),
);
// Redis commands fail at once until the connection is up (no offline queue): give it a moment.
await laneSet.redis?.whenConnected(config.dependencyTimeoutMs);
// A bind failure is reported, not thrown: the supervisor turns it into one clear message and exit.
server.once('error', (error: NodeJS.ErrnoException) => {
  if (!server.listening) void supervisor.call('cannotListen', index, error.code ?? error.message);
});
server.listen({ port: config.port, host: config.host, reusePort: true }, () => {
  void supervisor.call('listening', index);
});
