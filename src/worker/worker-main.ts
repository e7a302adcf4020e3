/**
 * A worker thread: maps the shared stock, builds its own lanes and clients, and serves HTTP on
 * the shared port (SO_REUSEPORT lets the kernel spread connections over all workers). It tells
 * the supervisor once it listens, and shuts down gracefully when asked.
 */
import { createServer } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { createApp } from '../http/app.js';
import type { IdempotencyStore } from '../idempotency.js';
import { buildLanes } from '../lanes/index.js';
import { PortSignalChannel } from '../lanes/signal-lane.js';
import { createLogger } from '../logger.js';
import { SharedStock } from '../memory/shared-stock.js';
import { WorkerMetrics } from '../metrics.js';
import { closeGracefully } from './graceful-close.js';
import type { SupervisorApi, WorkerData } from './protocol.js';
import { RpcPeer } from './rpc.js';

if (!parentPort) throw new Error('worker-main must run in a worker thread');
const { index, config, buffer, capacity, signalPort } = workerData as WorkerData;
const log = createLogger(config.logLevel, { hostId: config.hostId, worker: index });
const stock = new SharedStock(buffer, capacity);
const laneSet = buildLanes(config, stock, new PortSignalChannel(signalPort), `superstock-${config.hostId}-w${index}`);
const metrics = new WorkerMetrics();

const server = createServer({ keepAliveTimeout: 65_000 });
const supervisor: RpcPeer<SupervisorApi> = new RpcPeer<SupervisorApi>(parentPort, {
  snapshot: () => metrics.snapshot(),
  shutdown: async () => {
    await closeGracefully(server, config.shutdownTimeoutMs);
    await laneSet.close();
  },
});

const idempotency: IdempotencyStore = {
  claim: (key, fingerprint) => supervisor.call('claim', key, fingerprint),
  complete: (key, response) => supervisor.call('complete', key, response),
  release: (key) => supervisor.call('release', key),
};

const app = createApp({
  config,
  lanes: laneSet.lanes,
  idempotency,
  metrics,
  dependencies: laneSet.dependencies,
  onUnexpectedError: (error) => log.error({ err: error }, 'unexpected error while serving a request'),
});
server.on('request', app);
server.listen({ port: config.port, host: config.host, reusePort: true }, () => {
  void supervisor.call('listening', index);
});
