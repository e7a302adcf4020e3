/**
 * Configuration: the environment is read and validated exactly once, at start-up, into a typed,
 * frozen object. Every error names the variable at fault so a bad deployment fails loudly and
 * early instead of misbehaving under load.
 */
import { availableParallelism, hostname } from 'node:os';
import type { MongoWriteConcern } from './mongo.js';

export const LANE_NAMES = ['db', 'atomic', 'signal', 'lock', 'redis'] as const;
export type LaneName = (typeof LANE_NAMES)[number];
export const MEMORY_LANES = ['atomic', 'lock', 'signal'] as const satisfies readonly LaneName[];
export type MemoryLaneName = (typeof MEMORY_LANES)[number];

/**
 * SKU names: short, URL-safe, ASCII — the shared SKU table stores them as bytes. No leading dot,
 * so `.` and `..` are never SKUs: URL resolution (the forwarder's, a proxy's) would turn them
 * into another path.
 */
export const SKU_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,31}$/;
export const MAX_SKU_LENGTH = 32;

/**
 * The largest stock a SKU may hold on any lane: its `initial` count (remaining + sold), so neither
 * remaining nor sold can exceed it either. The in-memory lanes keep Int32 words (at most
 * 2,147,483,647); one billion leaves room for a whole second stock on top while a restock or a
 * given-back sale is applied word by word, so no intermediate value can wrap. MongoDB and Redis
 * hold far more, but every lane sells the same catalogue, so all share this one limit.
 */
export const MAX_STOCK = 1_000_000_000;

/** ADMISSION_LIMIT's default, unless QUEUE_LIMIT is smaller: requests in flight per worker thread (reasoned where it is read). */
export const DEFAULT_ADMISSION_LIMIT = 256;

export const ELECTIONS = ['mongo', 'kubernetes', 'none'] as const;
export type Election = (typeof ELECTIONS)[number];
export type StaticRole = 'primary' | 'secondary';
export type Durability = 'sync' | 'none';
/**
 * `primary`: one elected replica sells, the others forward to it (the original's design).
 * `allotments`: every replica sells from its own allotment of the stock (src/cluster/allotments/).
 */
export const CLUSTER_MODES = ['primary', 'allotments'] as const;
export type ClusterMode = (typeof CLUSTER_MODES)[number];

export interface Config {
  readonly port: number;
  readonly metricsPort: number;
  readonly host: string;
  readonly workers: number;
  readonly hostId: string;
  readonly mongoUrl: string | null;
  readonly mongoDb: string;
  /** What acknowledges a MongoDB write: `majority` + journal by default. */
  readonly mongoWriteConcern: MongoWriteConcern;
  readonly redisUrl: string | null;
  readonly adminToken: string | null;
  readonly initialStock: number;
  readonly seedSkus: readonly string[];
  /** A SKU list (.csv, .ndjson) loaded into the table at start-up, or null. */
  readonly seedFile: string | null;
  readonly maxSkus: number;
  readonly maxQuantity: number;
  readonly metricsMaxSkus: number;
  readonly dependencyTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly idempotencyTtlMs: number;
  readonly idempotencyMaxKeys: number;
  readonly logLevel: string;
  /** `combined`: concurrent buys of one SKU share one MongoDB update; `single`: one update each. */
  readonly dbLaneMode: 'combined' | 'single';
  /** Who sells: one elected primary, or every replica from its allotment. */
  readonly clusterMode: ClusterMode;
  /** Allotments mode: how many milliseconds of this replica's sales one chunk from the pool should last. */
  readonly allotmentChunkMs: number;
  /** Allotments mode: units unsold for this long go back to the pool by themselves. */
  readonly allotmentIdleMs: number;
  /** How the primary is chosen; `none` with no ROLE means a standalone primary. */
  readonly election: Election;
  /** Explicit override: this replica is always primary / secondary (no election). */
  readonly role: StaticRole | null;
  /** `sync`: an in-memory sale is in MongoDB before its 200. `none`: the original's pure memory. */
  readonly durability: Durability;
  /**
   * How ledger batches reach MongoDB: `direct` (a bare insert command on a socket of its own, when
   * MONGO_URL names one host without credentials or options; otherwise the driver) or `driver`.
   */
  readonly ledgerInserts: 'direct' | 'driver';
  /** Where the other replicas reach this one (they forward buys here while it is primary). */
  readonly advertiseUrl: string;
  readonly leaseName: string;
  /** Names this cluster's replication channel and snapshot in Redis (several may share one Redis). */
  readonly clusterName: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  readonly syncIntervalMs: number;
  readonly forwardTimeoutMs: number;
  /** The most requests that may wait in any one queue (group commit, db batcher, signal lane, worker RPC, forwarding). */
  readonly queueLimit: number;
  /**
   * The most requests one worker thread serves at once (probes aside); beyond it the HTTP listener
   * answers a pre-serialised 503 `overloaded` before Express parses anything (src/http/admission-gate.ts).
   */
  readonly admissionLimit: number;
  /** Kubernetes downward API: this pod, for the Lease and the role label. */
  readonly podName: string | null;
  /** With ROLE=secondary: where to forward buys. */
  readonly primaryUrl: string | null;
  readonly podNamespace: string | null;
  /** Label selector for this cluster's pods, among which only the primary's carries the role label. */
  readonly podSelector: string;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

function text(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(name, `expected an integer, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function url(env: Env, name: string, protocols: readonly string[]): string | null {
  const raw = text(env, name);
  if (raw === undefined) return null;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, 'is not a valid URL');
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}, got ${parsed.protocol}`);
  }
  return raw;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${raw}"`);
  return raw as T;
}

/** MONGO_WRITE_CONCERN: `majority` or a member count (0, unacknowledged, would make a 200 a guess). */
function writeConcern(env: Env): MongoWriteConcern {
  const raw = text(env, 'MONGO_WRITE_CONCERN') ?? 'majority';
  let w: 'majority' | number = 'majority';
  if (raw !== 'majority') {
    if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 50) throw new ConfigError('MONGO_WRITE_CONCERN', `must be "majority" or a member count from 1 to 50, got "${raw}"`);
    w = Number(raw);
  }
  const journal = oneOf(env, 'MONGO_JOURNAL', ['true', 'false'] as const, 'true') === 'true';
  return Object.freeze({ w, journal });
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function loadConfig(env: Env = process.env): Config {
  const adminToken = text(env, 'ADMIN_TOKEN') ?? null;
  if (adminToken !== null && adminToken.length < 16) {
    throw new ConfigError('ADMIN_TOKEN', 'must be at least 16 characters (leave it unset to disable admin routes)');
  }
  const seedSkus = (text(env, 'SEED_SKUS') ?? 'STOCK,NVDA,TSLA,AMD')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const sku of seedSkus) {
    if (!SKU_PATTERN.test(sku)) throw new ConfigError('SEED_SKUS', `"${sku}" is not a valid SKU (${SKU_PATTERN.source})`);
  }
  const maxSkus = integer(env, 'MAX_SKUS', 100_000, 1, 16_777_216);
  if (seedSkus.length > maxSkus) throw new ConfigError('SEED_SKUS', `lists ${seedSkus.length} SKUs but MAX_SKUS is ${maxSkus}`);
  const logLevel = oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info');

  const mongoUrl = url(env, 'MONGO_URL', ['mongodb:', 'mongodb+srv:']);
  const podName = text(env, 'POD_NAME') ?? null;
  const podNamespace = text(env, 'POD_NAMESPACE') ?? null;
  // Inside a pod (the API server's address is injected, the downward API names the pod) the
  // Kubernetes Lease is the natural elector; elsewhere the MongoDB lease.
  const inPod = text(env, 'KUBERNETES_SERVICE_HOST') !== undefined && podName !== null && podNamespace !== null;
  const election = oneOf(env, 'ELECTION', ELECTIONS, mongoUrl ? (inPod ? 'kubernetes' : 'mongo') : 'none');
  if (election === 'mongo' && !mongoUrl) throw new ConfigError('ELECTION', 'mongo election needs MONGO_URL');
  if (election === 'kubernetes') {
    // Epochs come from MongoDB whichever elector runs; the Lease and the role label need the pod.
    if (!mongoUrl) throw new ConfigError('ELECTION', 'kubernetes election needs MONGO_URL (epochs are kept in MongoDB)');
    if (!podName) throw new ConfigError('POD_NAME', 'kubernetes election needs the pod name (downward API metadata.name)');
    if (!podNamespace) throw new ConfigError('POD_NAMESPACE', 'kubernetes election needs the namespace (downward API metadata.namespace)');
  }
  const redisUrl = url(env, 'REDIS_URL', ['redis:', 'rediss:']);
  // Elected replicas are many, and secondaries learn the in-memory stock only over Redis pub/sub:
  // without it their copies would stay stale forever.
  if ((election === 'mongo' || election === 'kubernetes') && !redisUrl) {
    throw new ConfigError('REDIS_URL', `ELECTION=${election} needs REDIS_URL (secondaries replicate the stock over Redis); for a single replica set ELECTION=none`);
  }
  const role = text(env, 'ROLE') === undefined ? null : oneOf(env, 'ROLE', ['primary', 'secondary'] as const, 'primary');
  const durability = oneOf(env, 'DURABILITY', ['sync', 'none'] as const, mongoUrl ? 'sync' : 'none');
  if (durability === 'sync' && !mongoUrl) throw new ConfigError('DURABILITY', 'sync durability needs MONGO_URL');
  const seedFile = text(env, 'SEED_FILE') ?? null;
  if (seedFile !== null && !/\.(csv|ndjson|jsonl)$/i.test(seedFile)) throw new ConfigError('SEED_FILE', 'the name must end in .csv, .ndjson or .jsonl');
  // A durable replica rebuilds its lanes from the ledger, which a file read at start knows nothing
  // of: there the bulk admin route, which writes the ledger, is the way in.
  if (seedFile !== null && durability === 'sync') throw new ConfigError('SEED_FILE', 'needs DURABILITY=none; with durability, load SKUs with POST /v2/admin/skus:bulk');
  const port = integer(env, 'PORT', 5059, 0, 65535);
  const queueLimit = integer(env, 'QUEUE_LIMIT', 10_000, 1, 1_000_000);
  const leaseDurationMs = integer(env, 'LEASE_DURATION_MS', 3000, 100, 600_000);
  const renewDeadlineMs = integer(env, 'RENEW_DEADLINE_MS', 2000, 50, 600_000);
  const retryPeriodMs = integer(env, 'RETRY_PERIOD_MS', 500, 10, 600_000);
  // Workers learn of a lost renewal up to one retry period late; that must still beat the lease.
  if (renewDeadlineMs + retryPeriodMs >= leaseDurationMs) {
    throw new ConfigError('LEASE_DURATION_MS', `must exceed RENEW_DEADLINE_MS + RETRY_PERIOD_MS (${renewDeadlineMs + retryPeriodMs})`);
  }
  if (renewDeadlineMs <= 1.2 * retryPeriodMs) throw new ConfigError('RENEW_DEADLINE_MS', 'must exceed 1.2 × RETRY_PERIOD_MS');
  const hostId = text(env, 'STOCK_HOST_ID') ?? hostname();
  const clusterMode = oneOf(env, 'CLUSTER_MODE', CLUSTER_MODES, 'primary');
  if (clusterMode === 'allotments') {
    // The pool and each replica's ledger live in MongoDB, the levels travel over Redis, and a
    // replica's sales must be durable before the 200: without any of these, allotments cannot be safe.
    if (!mongoUrl) throw new ConfigError('CLUSTER_MODE', 'allotments needs MONGO_URL (the pool and every replica\'s ledger are kept there)');
    if (!redisUrl) throw new ConfigError('CLUSTER_MODE', 'allotments needs REDIS_URL (replicas publish their levels over Redis pub/sub)');
    if (durability !== 'sync') throw new ConfigError('CLUSTER_MODE', 'allotments needs DURABILITY=sync (each sale is in the replica\'s ledger before its 200)');
    if (role !== null) throw new ConfigError('CLUSTER_MODE', 'allotments has no primary: leave ROLE unset');
  }
  const primaryUrl = url(env, 'PRIMARY_URL', ['http:']);
  if (role === 'secondary' && !primaryUrl) throw new ConfigError('PRIMARY_URL', 'ROLE=secondary needs the primary\'s URL');

  return Object.freeze({
    port,
    metricsPort: integer(env, 'METRICS_PORT', 9464, 0, 65535),
    host: text(env, 'HOST') ?? '0.0.0.0',
    workers: integer(env, 'WORKERS', availableParallelism(), 1, 256),
    hostId,
    mongoUrl,
    mongoDb: text(env, 'MONGO_DB') ?? 'superstock',
    mongoWriteConcern: writeConcern(env),
    redisUrl,
    adminToken,
    initialStock: integer(env, 'INITIAL_STOCK', 15_000, 0, MAX_STOCK),
    seedSkus: Object.freeze([...new Set(seedSkus)]),
    seedFile,
    maxSkus,
    maxQuantity: integer(env, 'MAX_QUANTITY', 1000, 1, 1_000_000),
    metricsMaxSkus: integer(env, 'METRICS_MAX_SKUS', 50, 0, 10_000),
    dependencyTimeoutMs: integer(env, 'DEPENDENCY_TIMEOUT_MS', 1000, 50, 60_000),
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    idempotencyTtlMs: integer(env, 'IDEMPOTENCY_TTL_MS', 24 * 3600_000, 1000, 30 * 24 * 3600_000),
    idempotencyMaxKeys: integer(env, 'IDEMPOTENCY_MAX_KEYS', 100_000, 1, 10_000_000),
    logLevel,
    dbLaneMode: oneOf(env, 'DB_LANE_MODE', ['combined', 'single'] as const, 'combined'),
    clusterMode,
    allotmentChunkMs: integer(env, 'ALLOTMENT_CHUNK_MS', 150, 1, 60_000),
    allotmentIdleMs: integer(env, 'ALLOTMENT_IDLE_MS', 1000, 10, 600_000),
    election,
    role,
    durability,
    ledgerInserts: oneOf(env, 'LEDGER_INSERTS', ['direct', 'driver'] as const, 'direct'),
    advertiseUrl: url(env, 'ADVERTISE_URL', ['http:']) ?? `http://${hostname()}:${port}`,
    leaseName: text(env, 'LEASE_NAME') ?? 'superstock-primary',
    clusterName: text(env, 'CLUSTER_NAME') ?? text(env, 'MONGO_DB') ?? 'superstock',
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs,
    syncIntervalMs: integer(env, 'SYNC_INTERVAL_MS', 20, 1, 10_000),
    forwardTimeoutMs: integer(env, 'FORWARD_TIMEOUT_MS', 5000, 100, 600_000),
    queueLimit,
    // Per worker thread. Little's law: at the ~1,500 answers/s one thread serves under a flood,
    // 256 requests in flight is ~170 ms of waiting for the last admitted one, while a group commit
    // that takes 100 ms still finds ~150 sales to batch, so the gate costs no throughput. Never
    // above QUEUE_LIMIT by default: a wider gate would let requests in for a queue to refuse them
    // after parsing, the expensive refusal the gate exists to avoid.
    admissionLimit: integer(env, 'ADMISSION_LIMIT', Math.min(DEFAULT_ADMISSION_LIMIT, queueLimit), 1, 1_000_000),
    primaryUrl,
    podName,
    podNamespace,
    podSelector: text(env, 'POD_SELECTOR') ?? '',
  });
}
