/**
 * `make bench-cluster` (and the cluster section of `make bench`): what three replicas sell beside
 * one. Three systems run side by side — one standalone replica (`ELECTION=none`), three replicas in
 * `CLUSTER_MODE=primary` (one elected seller; the others forward), three in
 * `CLUSTER_MODE=allotments` (every replica sells from its own share) — all with `DURABILITY=sync`
 * on one lane (atomic unless BENCH_CLUSTER_LANE), each replica with the same WORKERS. Each system is
 * driven at 64 connections in total by three wrk processes of 22 + 21 + 21 connections, one per
 * replica port (for the standalone replica, all three on its one port, so the load generator has
 * the same shape in every row); their req/s are summed. The CPU per acknowledged buy is every
 * replica's own CPU time over the run (/proc/<pid>/stat, every thread) summed, divided by the 2xx
 * answers, cross-checked against each replica's exported `process_cpu_seconds_total`; MongoDB's
 * and Redis's own CPU is reported beside it. Rounds are interleaved (A B C, A B C …) so a busy minute on a
 * shared machine hits every row alike.
 *
 * Then a hot-SKU end of sale on each system: one SKU, demand 1.5× its stock, every buyer on one
 * port (after a few buys through the other ports, so they hold units of it when allotments are
 * in play). Reported: units left unsold while buyers were refused (must be 0), the time from the
 * first sold-out answer to the last unit sold, measured from the answers, and how long Peek took
 * to show the sale's end on every port.
 *
 * A build that does not have `allotments` mode says so in that row ("mode not available in this
 * build") instead of measuring primary mode under another name: the mode is taken as missing when
 * a replica refuses `CLUSTER_MODE=allotments` at start-up, or when the build does not read
 * CLUSTER_MODE at all (an invalid value starts too).
 *
 * From the measured CPU per buy, a projection for N machines — a projection, not a measurement.
 *
 * Writes bench/results/cluster.{json,md} and, on a full run, the cluster section of
 * docs/benchmarks.md (with bench/CLUSTER-ANALYSIS.md, the hand-written reading, after it).
 * Environment: as bench/run.ts (BENCH_QUICK, BENCH_SMOKE, BENCH_DURATION, BENCH_WARMUP,
 * BENCH_REPEATS, BENCH_OUT, BENCH_DOCS, BENCH_LOAD, MONGO_URL, REDIS_URL), plus
 * BENCH_CLUSTER_LANE (atomic), BENCH_CLUSTER_WORKERS (1 per replica, as `make cluster`),
 * BENCH_HOT_STOCK (20000), BENCH_CLUSTER_MODES (standalone,primary,allotments; `standalone-third`
 * on request: a standalone replica driven at one allotments replica's share of the connections).
 *
 * BENCH_CPU_PROF_DIR=<dir> (`make bench-cluster-profile`) starts every replica under `node
 * --cpu-prof` (every thread writes a profile into <dir> when the replica stops;
 * BENCH_CPU_PROF_INTERVAL_US, 500) and records each measured round's window on the monotonic clock
 * the profiles use, its acknowledged buys and every replica thread's CPU before and after
 * (`windows.json`); at the end `bench/cpu-profile.ts` turns them into CPU per buy by category
 * (`profile.md`). Profiling costs CPU of its own, so those runs' figures are not the bench's.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { MAX_STOCK } from '../src/config.js';
import { writeSection } from './docs-section.js';
import { profileRecorder, profilingEnv } from './cpu-profile.js';
import { DURATION, DependencyClock, QUICK, REPEATS, ROOT, SMOKE, WARMUP, env, latencyMs, processCpuSeconds, until } from './measure.js';
import { ReplicaExited, metricsOf, roleOf, startReplica, stopReplica, type Replica } from './replicas.js';

const OUT = resolve(env('BENCH_OUT', join(ROOT, 'bench', 'results')));
const WRITE_DOCS = !SMOKE && (!QUICK || process.env.BENCH_DOCS === '1');
const LANE = env('BENCH_CLUSTER_LANE', 'atomic');
const REPLICA_WORKERS = env('BENCH_CLUSTER_WORKERS', '1');
const HOT_STOCK = Number(env('BENCH_HOT_STOCK', SMOKE ? '300' : '20000'));
/** Buys through each port other than the buyers' before the hot sale, so those replicas hold some of it. */
const PRIMING_BUYS = SMOKE ? 5 : 20;
/** Connections per wrk process: three processes, 64 in all. */
const CONNECTION_SPLIT = [22, 21, 21] as const;
const TOTAL_CONNECTIONS = CONNECTION_SPLIT.reduce((a, b) => a + b, 0);
const CORES = availableParallelism();
const TOKEN = randomBytes(16).toString('hex');
const BENCH_SKU = 'BENCH';
const WRK_SCRIPT = join(ROOT, 'bench', 'wrk', 'post.lua');
const NOT_AVAILABLE = 'mode not available in this build';
/** How long each system is watched with no buyers, for its idle CPU. */
const IDLE_SECONDS = SMOKE ? 1 : 3;
/** A sold-out answer must show on every port's Peek within this, or the run says it did not. */
const PEEK_CONVERGENCE_LIMIT_MS = 10_000;

const MODES = ['standalone', 'primary', 'allotments', 'standalone-third'] as const;
type Mode = (typeof MODES)[number];
const DEFAULT_MODES: readonly Mode[] = ['standalone', 'primary', 'allotments'];
const wantedModes = env('BENCH_CLUSTER_MODES', DEFAULT_MODES.join(',')).split(',');
const RUN_MODES = MODES.filter((m) => wantedModes.includes(m));
/**
 * The wrk processes driving a system. `standalone-third` (opt-in, for the profiles) is a
 * standalone replica driven by one wrk of one replica's share of the connections (21): the control
 * for what a third of the concurrency per process does to a buy's CPU, allotments apart.
 */
const connectionsOf = (mode: Mode): readonly number[] => (mode === 'standalone-third' ? [CONNECTION_SPLIT[1]] : CONNECTION_SPLIT);
const isStandalone = (mode: Mode) => mode === 'standalone' || mode === 'standalone-third';
/** The measured rounds' windows, for the profiles (BENCH_CPU_PROF_DIR). */
const profile = profileRecorder();

interface System {
  readonly mode: Mode;
  readonly replicas: Replica[];
}

interface WrkResult {
  readonly rps: number;
  readonly requests: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly p99Ms: number;
}

interface ClusterRun {
  /** Summed over the three wrk processes. */
  readonly rps: number;
  readonly requests: number;
  /** 2xx answers: acknowledged buys. */
  readonly acked: number;
  readonly non2xx: number;
  readonly errors: number;
  /** The worst of the three wrk processes' p99. */
  readonly p99Ms: number;
  /** Every replica's CPU over the run, summed, per acknowledged buy. */
  readonly cpuUsPerBuy: number;
  /** Each replica's share of it, in the order of `replicas`. */
  readonly replicaCpuUsPerBuy: number[];
  /** The same sum read from each replica's `superstock_process_cpu_seconds_total` (a cross-check; null if not exported). */
  readonly metricCpuUsPerBuy: number | null;
  readonly mongoCpuUsPerBuy: number | null;
  readonly redisCpuUsPerBuy: number | null;
}

interface HotSale {
  readonly stock: number;
  readonly demand: number;
  /** Which replica the buyers all went to, and its role when the sale began. */
  readonly buyersOn: string;
  readonly acked: number;
  readonly soldOut: number;
  readonly unavailable: number;
  readonly unknown: number;
  readonly otherAnswers: number;
  /** How many refusals and unknown outcomes of each kind: status and error code (503 no_primary, 504 outcome_unknown …). */
  readonly refusalCodes: Record<string, number>;
  /**
   * Units the store still held at the end, by every port's Peek once they agree (stock −
   * acknowledged when they never do), counted when some buyer was told sold out; must be 0.
   */
  readonly unsoldWhileRefused: number;
  /** The units sold by the final Peek lie within [acknowledged, acknowledged + unknown] (the history checker's rule). */
  readonly soldWithinAnswers: boolean;
  /** From the first sold-out answer to the last 200, ms; ≤ 0 when nothing sold after the first refusal. */
  readonly firstSoldOutToLastSaleMs: number | null;
  /**
   * From the moment a replica took the pool's last units (its `allotment_pool_drained_timestamp_seconds`,
   * exported by allotments mode) to the last 200, ms; null where no replica exports it.
   */
  readonly poolDrainedToLastSaleMs: number | null;
  readonly saleMs: number;
  /** From the last answer until every port's Peek showed one level the answers allow; null: not within the limit. */
  readonly peekConvergedMs: number | null;
  readonly peekRemaining: number[];
}

type Row =
  | {
      readonly mode: Mode;
      readonly available: true;
      readonly replicas: Array<{ id: string; role: string }>;
      /** CPU with no buyers, ms per second, all replicas. */
      readonly idleCpuMsPerSecond: number;
      readonly runs: ClusterRun[];
      readonly median: ClusterRun;
      readonly hot: HotSale | null;
      readonly hotError: string | null;
    }
  | { readonly mode: Mode; readonly available: false; readonly reason: string };

class ModeNotAvailable extends Error {}

// ---------------------------------------------------------------------------------------------
// Replicas

function replicaEnv(mode: Mode, database: string): Record<string, string> {
  const common = { DURABILITY: 'sync', SEED_SKUS: BENCH_SKU, INITIAL_STOCK: String(MAX_STOCK), ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'warn', WORKERS: REPLICA_WORKERS, HOST: '127.0.0.1', MONGO_DB: database, ...profilingEnv() };
  if (isStandalone(mode)) return { ...common, ELECTION: 'none' };
  return { ...common, ELECTION: 'mongo', CLUSTER_MODE: mode };
}

/** The fatal line a replica printed about CLUSTER_MODE, if it refused the setting. */
function clusterModeRefusal(error: unknown): string | null {
  if (!(error instanceof ReplicaExited)) return null;
  const line = error.output.split('\n').find((l) => l.includes('CLUSTER_MODE'));
  return line === undefined ? null : line.trim();
}

/**
 * Whether this build reads CLUSTER_MODE at all: one replica, no stores, an invalid value. A build
 * that reads it refuses to start; one that does not would run `allotments` as primary mode.
 */
async function buildReadsClusterMode(): Promise<boolean> {
  try {
    const probe = await startReplica('bench-mode-probe', { ELECTION: 'none', DURABILITY: 'none', MONGO_URL: '', REDIS_URL: '', WORKERS: '1', LOG_LEVEL: 'warn', HOST: '127.0.0.1', CLUSTER_MODE: 'no-such-mode' }, 'healthz');
    await stopReplica(probe);
    return false;
  } catch (error) {
    if (clusterModeRefusal(error) !== null) return true;
    throw error;
  }
}

/** The replica's own `process_cpu_seconds_total` (prom-client's, process-wide: every thread), or null. */
async function exportedCpuSeconds(replica: Replica): Promise<number | null> {
  const match = /^superstock_process_cpu_seconds_total ([\d.e+-]+)$/m.exec(await metricsOf(replica).catch(() => ''));
  return match ? Number(match[1]) : null;
}

/** When the replica last took a pool's last units (ms since the epoch), where the build exports it. */
async function poolDrainedAtMs(replica: Replica): Promise<number | null> {
  const match = /^superstock_allotment_pool_drained_timestamp_seconds ([\d.e+-]+)$/m.exec(await metricsOf(replica).catch(() => ''));
  return match && Number(match[1]) > 0 ? Number(match[1]) * 1000 : null;
}

async function startSystem(mode: Mode): Promise<System> {
  const database = `bench_cluster_${mode}_${randomBytes(3).toString('hex')}`;
  const childEnv = replicaEnv(mode, database);
  if (isStandalone(mode)) return { mode, replicas: [await startReplica(`bench-${mode}`, childEnv)] };
  if (mode !== 'primary' && !(await buildReadsClusterMode())) {
    throw new ModeNotAvailable(`${NOT_AVAILABLE}: it does not read CLUSTER_MODE (a replica with CLUSTER_MODE=no-such-mode starts), so CLUSTER_MODE=${mode} would run primary mode`);
  }
  const replicas: Replica[] = [];
  try {
    // Started together, as `make cluster` does: the election settles while all three come up.
    const started = await Promise.allSettled([0, 1, 2].map((i) => startReplica(`bench-${mode}-${i}`, childEnv)));
    for (const s of started) if (s.status === 'fulfilled') replicas.push(s.value);
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      const refusal = clusterModeRefusal(failed.reason);
      throw refusal !== null ? new ModeNotAvailable(`${NOT_AVAILABLE}: a replica refused CLUSTER_MODE=${mode} at start-up (${refusal})`) : failed.reason;
    }
    return { mode, replicas };
  } catch (error) {
    await Promise.all(replicas.map(stopReplica));
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Throughput: three wrk processes, 64 connections in all

function runWrk(url: string, connections: number, seconds: number): Promise<WrkResult> {
  return new Promise((done, fail) => {
    const child = spawn('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', WRK_SCRIPT, url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', (error) => fail(new Error(`wrk failed (install it: apt-get install wrk): ${error.message}`)));
    child.once('exit', (status) => {
      if (status !== 0) return fail(new Error(`wrk exited with ${status}: ${err}`));
      const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      done({
        rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
        requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? 0),
        non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
        errors: socketErrors ? socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
        p99Ms: latencyMs(out, '99'),
      });
    });
  });
}

/** @param round the measured round, or null for the warm-up (not recorded for the profiles). */
async function drive(system: System, seconds: number, clock: DependencyClock, round: number | null): Promise<ClusterRun> {
  const path = `/v2/lanes/${LANE}/skus/${BENCH_SKU}/buy`;
  const { replicas } = system;
  const exportedBefore = await Promise.all(replicas.map(exportedCpuSeconds));
  const cpuBefore = replicas.map((r) => processCpuSeconds(r.pid));
  const mongoBefore = await clock.seconds('mongo');
  const redisBefore = await clock.seconds('redis');
  const closeWindow = round === null ? null : profile?.open(system.mode, round, replicas);
  const results = await Promise.all(connectionsOf(system.mode).map((c, i) => runWrk(`${(replicas[i % replicas.length] as Replica).base}${path}`, c, seconds)));
  closeWindow?.(results.reduce((s, r) => s + r.requests - r.non2xx, 0));
  const cpuAfter = replicas.map((r) => processCpuSeconds(r.pid));
  const mongoAfter = await clock.seconds('mongo');
  const redisAfter = await clock.seconds('redis');
  const exportedAfter = await Promise.all(replicas.map(exportedCpuSeconds));
  const requests = results.reduce((s, r) => s + r.requests, 0);
  const non2xx = results.reduce((s, r) => s + r.non2xx, 0);
  const acked = requests - non2xx;
  const perBuy = (seconds: number) => (acked > 0 ? (seconds * 1e6) / acked : NaN);
  const replicaCpuUsPerBuy = replicas.map((_, i) => perBuy((cpuAfter[i] as number) - (cpuBefore[i] as number)));
  return {
    rps: results.reduce((s, r) => s + r.rps, 0),
    requests,
    acked,
    non2xx,
    errors: results.reduce((s, r) => s + r.errors, 0),
    // The worst p99 any of the three reported (a wrk that printed none is left out).
    p99Ms: Math.max(...results.map((r) => r.p99Ms).filter((p) => !Number.isNaN(p))),
    cpuUsPerBuy: replicaCpuUsPerBuy.reduce((a, b) => a + b, 0),
    replicaCpuUsPerBuy,
    metricCpuUsPerBuy: exportedBefore.every((v) => v !== null) && exportedAfter.every((v) => v !== null)
      ? perBuy(exportedAfter.reduce<number>((sum, v, i) => sum + (v as number) - (exportedBefore[i] as number), 0))
      : null,
    mongoCpuUsPerBuy: mongoBefore !== null && mongoAfter !== null ? perBuy(mongoAfter - mongoBefore) : null,
    redisCpuUsPerBuy: redisBefore !== null && redisAfter !== null ? perBuy(redisAfter - redisBefore) : null,
  };
}

/**
 * CPU the replicas spend with no buyers (lease renewals, replication ticks, timers), ms per
 * second summed over them: a fixed cost that weighs more per buy the fewer buys a system serves.
 */
async function idleCpuMsPerSecond(system: System, seconds: number): Promise<number> {
  const before = system.replicas.map((r) => processCpuSeconds(r.pid));
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const spent = system.replicas.reduce((sum, r, i) => sum + processCpuSeconds(r.pid) - (before[i] as number), 0);
  return (spent * 1000) / seconds;
}

function medianRun(runs: ClusterRun[]): ClusterRun {
  const byRps = [...runs].sort((a, b) => a.rps - b.rps);
  return byRps[Math.floor(byRps.length / 2)] as ClusterRun;
}

// ---------------------------------------------------------------------------------------------
// Hot SKU: the end of a sale whose demand exceeds its stock

interface Answer {
  readonly status: number;
  readonly body: string;
}

function call(agent: Agent, base: string, method: string, path: string, body?: string): Promise<Answer> {
  const { hostname, port } = new URL(base);
  return new Promise((done, fail) => {
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` };
    const req = request({ agent, host: hostname, port, method, path, headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => done({ status: res.statusCode ?? 0, body: text }));
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end(body);
  });
}

/** The error code of a JSON error answer (`{"error":{"code":…}}`), or what the body was not. */
function errorCodeOf(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown } };
    return typeof parsed.error?.code === 'string' ? parsed.error.code : 'no error code';
  } catch {
    return 'not JSON';
  }
}

async function peekRemaining(agent: Agent, replica: Replica, sku: string): Promise<number | null> {
  const answer = await call(agent, replica.base, 'GET', `/v2/lanes/${LANE}/skus/${sku}`).catch(() => null);
  if (answer?.status !== 200) return null;
  return (JSON.parse(answer.body) as { remaining: number }).remaining;
}

async function hotSale(system: System): Promise<HotSale> {
  const sku = `HOT-${randomBytes(3).toString('hex')}`;
  const agent = new Agent({ keepAlive: true, maxSockets: TOTAL_CONNECTIONS });
  try {
    const roles = await Promise.all(system.replicas.map(roleOf));
    // The SKU is made where admin writes are decided (the primary, in primary mode); any replica otherwise.
    const admin = system.replicas[Math.max(0, roles.indexOf('primary'))] as Replica;
    const created = await call(agent, admin.base, 'PUT', `/v2/admin/skus/${sku}`, JSON.stringify({ stock: HOT_STOCK }));
    if (created.status !== 201 && created.status !== 200) throw new Error(`creating ${sku} answered ${created.status}: ${created.body}`);
    await until(`${sku} on every replica`, async () => (await Promise.all(system.replicas.map((r) => peekRemaining(agent, r, sku)))).every((n) => n === HOT_STOCK), 30_000);
    // The buyers' replica: not the primary in primary mode (every buy is forwarded, as through a
    // Service); the others take a few buys first, so with allotments they hold units of this SKU.
    const buyersIndex = roles.lastIndexOf('secondary') >= 0 ? roles.lastIndexOf('secondary') : system.replicas.length - 1;
    const buyers = system.replicas[buyersIndex] as Replica;
    const buyPath = `/v2/lanes/${LANE}/skus/${sku}/buy`;
    let acked = 0;
    let soldOut = 0;
    let unavailable = 0;
    let unknown = 0;
    let otherAnswers = 0;
    const refusalCodes: Record<string, number> = {};
    const tally = ({ status, body }: Answer) => {
      if (status !== 200 && status !== 409) {
        const kind = `${status} ${status === 0 ? 'no answer' : errorCodeOf(body)}`;
        refusalCodes[kind] = (refusalCodes[kind] ?? 0) + 1;
      }
      if (status === 200) acked++;
      else if (status === 409) soldOut++;
      else if (status === 503 || status === 429) unavailable++;
      // No answer (0: the connection failed), a 504 or another 5xx: the sale may have happened.
      else if (status === 0 || status >= 500) unknown++;
      else otherAnswers++;
    };
    for (const replica of system.replicas) {
      if (replica === buyers) continue;
      for (let i = 0; i < PRIMING_BUYS; i++) tally(await call(agent, replica.base, 'POST', buyPath));
    }
    const demand = Math.ceil(HOT_STOCK * 1.5);
    let issued = acked + soldOut + unavailable + unknown + otherAnswers;
    let firstSoldOutAt: number | null = null;
    let lastSaleAt: number | null = null;
    let lastSaleWallMs = 0;
    let lastAnswerAt = 0;
    const startedAt = performance.now();
    const saleStartedWallMs = Date.now();
    const deadline = Date.now() + 300_000;
    await Promise.all(Array.from({ length: TOTAL_CONNECTIONS }, async () => {
      while (issued < demand && Date.now() < deadline) {
        issued++;
        const answer = await call(agent, buyers.base, 'POST', buyPath).catch((): Answer => ({ status: 0, body: '' }));
        const { status } = answer;
        const at = performance.now();
        lastAnswerAt = at;
        tally(answer);
        if (status === 200) {
          lastSaleAt = at;
          lastSaleWallMs = Date.now();
        }
        if (status === 409 && firstSoldOutAt === null) firstSoldOutAt = at;
      }
    }));
    const saleEndedAt = performance.now();
    // Peek on every port until it shows what the answers say is left, or the limit passes.
    // An unknown outcome (504, no answer) may have sold: what is left lies between stock −
    // acknowledged − unknown and stock − acknowledged, and every port must show the same level.
    const mostLeft = HOT_STOCK - acked;
    const leastLeft = mostLeft - unknown;
    let peekConvergedMs: number | null = null;
    let peeks: Array<number | null> = [];
    const peekDeadline = saleEndedAt + PEEK_CONVERGENCE_LIMIT_MS;
    while (performance.now() < peekDeadline) {
      peeks = await Promise.all(system.replicas.map((r) => peekRemaining(agent, r, sku)));
      const level = peeks[0];
      if (level !== null && level !== undefined && level >= leastLeft && level <= mostLeft && peeks.every((n) => n === level)) {
        peekConvergedMs = performance.now() - lastAnswerAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    // The store's view when the ports agree on one level; the answers' otherwise.
    const agreed = peeks.length > 0 && peeks.every((n) => n !== null && n === peeks[0]) ? (peeks[0] as number) : null;
    const left = agreed ?? mostLeft;
    // The pool's last chunk, where the mode exports when it went (a wall-clock gauge per replica:
    // the latest one since this sale began is this SKU's — the bench SKU's pool never drains).
    const drained = (await Promise.all(system.replicas.map(poolDrainedAtMs))).filter((t): t is number => t !== null && t >= saleStartedWallMs);
    const poolDrainedAt = drained.length > 0 ? Math.max(...drained) : null;
    const first = firstSoldOutAt as number | null;
    const last = lastSaleAt as number | null;
    return {
      stock: HOT_STOCK,
      demand,
      buyersOn: `${buyers.id} (${roles[buyersIndex]})`,
      acked,
      soldOut,
      unavailable,
      unknown,
      otherAnswers,
      refusalCodes,
      unsoldWhileRefused: soldOut > 0 ? left : 0,
      soldWithinAnswers: left >= leastLeft && left <= mostLeft,
      firstSoldOutToLastSaleMs: first !== null && last !== null ? last - first : null,
      poolDrainedToLastSaleMs: poolDrainedAt !== null && last !== null ? lastSaleWallMs - poolDrainedAt : null,
      saleMs: (last ?? saleEndedAt) - startedAt,
      peekConvergedMs,
      peekRemaining: peeks.map((n) => n ?? NaN),
    };
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Report

interface Verdict {
  readonly target: string;
  readonly goal: string;
  readonly measured: string;
  readonly met: boolean | null;
}

const ratioText = (x: number) => `${x.toFixed(2)}×`;
const fixed = (x: number | null, digits = 1) => (x === null || !Number.isFinite(x) ? '—' : x.toFixed(digits));

function verdicts(rows: Row[]): Verdict[] {
  const out: Verdict[] = [];
  const standalone = rows.find((r) => r.mode === 'standalone');
  const base = standalone?.available ? standalone.median : null;
  for (const mode of ['primary', 'allotments'] as const) {
    const row = rows.find((r) => r.mode === mode);
    if (!row) continue;
    const cpuGoal = mode === 'allotments' ? '≤ 1.20×' : 'reported (issue: ~2.8× today)';
    const rpsGoal = mode === 'allotments' ? '≥ 0.90×' : 'reported (issue: ~0.5× today)';
    if (!row.available) {
      out.push({ target: `${mode}: CPU per buy ÷ standalone`, goal: cpuGoal, measured: NOT_AVAILABLE, met: null });
      out.push({ target: `${mode}: req/s through all ports ÷ standalone`, goal: rpsGoal, measured: NOT_AVAILABLE, met: null });
      out.push({ target: `${mode}: hot SKU, units left unsold while buyers were refused`, goal: '0', measured: NOT_AVAILABLE, met: null });
      continue;
    }
    if (base) {
      const cpu = row.median.cpuUsPerBuy / base.cpuUsPerBuy;
      const rps = row.median.rps / base.rps;
      out.push({ target: `${mode}: CPU per buy ÷ standalone`, goal: cpuGoal, measured: ratioText(cpu), met: mode === 'allotments' ? cpu <= 1.2 : null });
      out.push({ target: `${mode}: req/s through all ports ÷ standalone`, goal: rpsGoal, measured: ratioText(rps), met: mode === 'allotments' ? rps >= 0.9 : null });
    }
    if (row.hot) {
      // Met only when the sale reached its end (someone was refused) with every outcome known.
      // Met only when the sale reached its end (someone was refused), nothing was left, and the
      // units sold agree with the answers (unknown outcomes may or may not have sold).
      const { unsoldWhileRefused, soldOut, unknown, soldWithinAnswers } = row.hot;
      const measured =
        soldOut === 0 ? 'the sale never sold out'
        : !soldWithinAnswers ? `${unsoldWhileRefused} (units sold disagree with the answers)`
        : unknown > 0 ? `${unsoldWhileRefused} (${unknown} outcomes unknown, settled by Peek)`
        : String(unsoldWhileRefused);
      out.push({ target: `${mode}: hot SKU, units left unsold while buyers were refused`, goal: '0', measured, met: soldOut > 0 && soldWithinAnswers && unsoldWhileRefused === 0 });
      out.push({ target: `${mode}: hot SKU, first sold-out answer → last unit sold`, goal: 'reported', measured: tailText(row.hot), met: null });
      if (row.hot.poolDrainedToLastSaleMs !== null) out.push({ target: `${mode}: hot SKU, pool's last chunk → last unit sold`, goal: 'reported', measured: `${row.hot.poolDrainedToLastSaleMs.toFixed(0)} ms`, met: null });
    } else {
      out.push({ target: `${mode}: hot SKU, units left unsold while buyers were refused`, goal: '0', measured: `not measured: ${row.hotError ?? 'no run'}`, met: false });
    }
  }
  return out;
}

function tailText(hot: HotSale): string {
  if (hot.firstSoldOutToLastSaleMs === null) return hot.soldOut === 0 ? 'no buyer was refused' : 'no sale';
  return hot.firstSoldOutToLastSaleMs <= 0 ? `0 ms (nothing sold after the first refusal, which came ${(-hot.firstSoldOutToLastSaleMs).toFixed(1)} ms after the last sale)` : `${hot.firstSoldOutToLastSaleMs.toFixed(1)} ms`;
}

/** Req/s a machine's cores could carry at a given CPU per buy, the replica alone on them. */
const ceiling = (cpuUsPerBuy: number) => (CORES * 1e6) / cpuUsPerBuy;

function projection(rows: Row[]): string[] {
  const available = rows.filter((r): r is Extract<Row, { available: true }> => r.available);
  const standalone = available.find((r) => r.mode === 'standalone');
  const primary = available.find((r) => r.mode === 'primary');
  const allotments = available.find((r) => r.mode === 'allotments');
  const machines = [3, 5, 10];
  const lines = [
    '### Projection for N machines (a projection from the CPU figures above, not a measurement)',
    '',
    `Each machine like this one (${CORES} cores) runs one replica and nothing else; a mode's ceiling is the cores it can spend`,
    'divided by the CPU one buy costs where it is decided. Primary mode: every buy costs the primary what it cost it here',
    "(its own share of the measured CPU per buy), whatever N — one seller. Allotments: a buy costs the cluster what it cost",
    'here summed over the replicas, spread evenly, so N machines carry N times one share. Not counted: the network between',
    "machines (loopback here) and the load generator (it shared these cores). The store is shown apart: in brackets, the",
    "ceiling of one such machine running the MongoDB wire server at the mode's own MongoDB CPU per buy (its group commits);",
    'a real `mongod` differs, and it is one store for all N.',
    '',
    standalone ? `One machine, one standalone replica: ${Math.round(ceiling(standalone.median.cpuUsPerBuy))} req/s (${CORES} × 10⁶ ÷ ${standalone.median.cpuUsPerBuy.toFixed(1)} µs).` : 'No standalone figure in this run.',
    '',
    `| N machines | primary mode (MongoDB) | allotments mode (MongoDB) |`,
    '|---|---|---|',
  ];
  const primaryIndex = primary ? primary.replicas.findIndex((r) => r.role === 'primary') : -1;
  const primaryShare = primary && primaryIndex >= 0 ? (primary.median.replicaCpuUsPerBuy[primaryIndex] as number) : null;
  const store = (row: Extract<Row, { available: true }>) => (row.median.mongoCpuUsPerBuy === null ? 'not measured' : String(Math.round(ceiling(row.median.mongoCpuUsPerBuy))));
  for (const n of machines) {
    const p = primary && primaryShare !== null ? `${Math.round(ceiling(primaryShare))} (${store(primary)})` : '—';
    const a = allotments ? `${Math.round(n * ceiling(allotments.median.cpuUsPerBuy))} (${store(allotments)})` : NOT_AVAILABLE;
    lines.push(`| ${n} | ${p} | ${a} |`);
  }
  if (primaryShare !== null && primary) {
    lines.push('', `Primary mode's primary spent ${primaryShare.toFixed(1)} µs per buy of the cluster (${((primaryShare / primary.median.cpuUsPerBuy) * 100).toFixed(0)} % of the cluster's ${primary.median.cpuUsPerBuy.toFixed(1)} µs); the secondaries spent the rest parsing, forwarding and relaying.`);
  }
  return lines;
}

function markdown(rows: Row[], results: Verdict[], meta: { startedAt: string; loadBefore: number[]; loadAfter: number[]; command: string }): string {
  const standalone = rows.find((r): r is Extract<Row, { available: true }> => r.mode === 'standalone' && r.available);
  const lines = [
    '## Cluster: one replica beside three',
    '',
    `Latest \`${meta.command}\` run, ${meta.startedAt}, on ${CORES} cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}.`,
    `Load average ${meta.loadBefore.map((l) => l.toFixed(1)).join(' / ')} before and ${meta.loadAfter.map((l) => l.toFixed(1)).join(' / ')} after${process.env.BENCH_LOAD ? ` (${process.env.BENCH_LOAD})` : ''}.`,
    `The \`${LANE}\` lane, \`DURABILITY=sync\`, one hot SKU with stock enough that nothing sells out, WORKERS=${REPLICA_WORKERS} in every replica`,
    `(standalone too, so a buy's CPU is compared between processes of one shape). Each system is driven at ${TOTAL_CONNECTIONS} connections in`,
    `total by three wrk processes (${CONNECTION_SPLIT.join(' + ')} connections), one per replica port — for the standalone replica all three on`,
    `its one port — and their req/s are summed. CPU per buy: every replica's own CPU time over the run (/proc/<pid>/stat, every`,
    "thread), summed, divided by the acknowledged (2xx) buys; beside it the same from each replica's own",
    '`superstock_process_cpu_seconds_total` (read on its metrics port before and after: the figure a cluster\'s Prometheus sees). Each cell: a',
    `${WARMUP} s warm-up, then the median (by req/s) of ${REPEATS} × ${DURATION} s runs in interleaved rounds. Idle CPU: what the replicas spent`,
    `in ${IDLE_SECONDS} s with no buyers (lease renewals, replication ticks, timers) — a fixed cost inside every CPU-per-buy figure.`,
    '',
    '| system | replicas (role) | req/s, all ports | spread | CPU µs per buy, all replicas | per replica | same, from process_cpu_seconds_total | × standalone req/s | × standalone CPU | idle CPU ms/s, all replicas | + MongoDB µs | + Redis µs | worst p99 ms | non-2xx |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const row of rows) {
    if (!row.available) {
      lines.push(`| ${row.mode} | — | ${row.reason} | | | | | | | | | | | |`);
      continue;
    }
    const m = row.median;
    const rps = row.runs.map((r) => r.rps);
    const base = standalone?.median;
    lines.push(
      `| ${row.mode} | ${row.replicas.map((r) => `${r.id} (${r.role})`).join(', ')} | ${Math.round(m.rps)} | ${Math.round(Math.min(...rps))}–${Math.round(Math.max(...rps))} | ${m.cpuUsPerBuy.toFixed(1)} | ${m.replicaCpuUsPerBuy.map((c) => c.toFixed(1)).join(' + ')} | ${fixed(m.metricCpuUsPerBuy)} | ${base ? ratioText(m.rps / base.rps) : '—'} | ${base ? ratioText(m.cpuUsPerBuy / base.cpuUsPerBuy) : '—'} | ${fixed(row.idleCpuMsPerSecond)} | ${fixed(m.mongoCpuUsPerBuy)} | ${fixed(m.redisCpuUsPerBuy)} | ${fixed(m.p99Ms, 2)} | ${m.non2xx} |`,
    );
  }
  lines.push(
    '',
    '### Hot SKU: the end of a sale',
    '',
    `One SKU of ${HOT_STOCK} units on the \`${LANE}\` lane, demand 1.5× that: first ${PRIMING_BUYS} buys through each other port (so, with allotments,`,
    `those replicas hold units of it), then ${TOTAL_CONNECTIONS} buyers, all on one replica's port, until the demand is spent. "Unsold while refused" is`,
    'what every port\'s Peek agrees is left at the end (it must lie within what the answers allow: unknown outcomes may have sold),',
    'counted when any buyer was told sold out (409); it must be 0. The tail is the time from the',
    'first sold-out answer to the last 200, both as the buyers saw them. A sale\'s 200 waits for its group commit to MongoDB while a',
    'refusal is answered at once, so even one replica shows about one commit here: the standalone row is the floor to read the',
    'others against. Where the mode has a pool, the time from the pool\'s last chunk (the replica that took it exports when,',
    '`superstock_allotment_pool_drained_timestamp_seconds`, ms resolution, one clock on this machine) to the last 200 is shown too.',
    'Peek is how long after the last answer every port\'s Peek showed one level the answers allow (polled every 10 ms).',
    '',
    '| system | buyers on | sold (200) | sold out (409) | 503/429 | unknown (5xx, no answer) | not 200 or 409, by status and code | unsold while refused | first sold-out → last sale | pool\'s last chunk → last sale | sale took | Peek on every port showed it after |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const row of rows) {
    if (!row.available) {
      lines.push(`| ${row.mode} | ${row.reason} | | | | | | | | | | |`);
      continue;
    }
    const h = row.hot;
    if (!h) {
      lines.push(`| ${row.mode} | not measured: ${row.hotError ?? 'no run'} | | | | | | | | | | |`);
      continue;
    }
    lines.push(`| ${row.mode} | ${h.buyersOn} | ${h.acked} | ${h.soldOut} | ${h.unavailable} | ${h.unknown} | ${Object.entries(h.refusalCodes).map(([code, n]) => `${code}: ${n}`).join(', ') || '—'} | ${h.unsoldWhileRefused} | ${tailText(h)} | ${h.poolDrainedToLastSaleMs === null ? 'no pool in this mode' : `${h.poolDrainedToLastSaleMs.toFixed(0)} ms`} | ${(h.saleMs / 1000).toFixed(1)} s | ${h.peekConvergedMs === null ? `not within ${PEEK_CONVERGENCE_LIMIT_MS / 1000} s (${h.peekRemaining.join(', ')})` : `${h.peekConvergedMs.toFixed(0)} ms`} |`);
  }
  lines.push('', '### Targets', '', '| target | goal | measured | |', '|---|---|---|---|');
  for (const v of results) lines.push(`| ${v.target} | ${v.goal} | ${v.measured} | ${v.met === null ? '' : v.met ? 'met' : 'missed'} |`);
  lines.push('', ...projection(rows), '');
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (!process.env.MONGO_URL || !process.env.REDIS_URL) throw new Error('set MONGO_URL and REDIS_URL (make bench-cluster starts both)');
  mkdirSync(OUT, { recursive: true });
  const startedAt = new Date().toISOString();
  const loadBefore = loadavg();
  const command = SMOKE ? 'make bench-cluster (smoke)' : QUICK ? 'make bench-cluster (quick)' : 'make bench-cluster';
  console.log(`bench-cluster: ${RUN_MODES.join(', ')}; ${LANE} lane, DURABILITY=sync, ${TOTAL_CONNECTIONS} connections (wrk ${CONNECTION_SPLIT.join('+')}), ${WARMUP}s warm-up + ${REPEATS} rounds × ${DURATION}s`);
  const clock = new DependencyClock(process.env.REDIS_URL, ROOT);
  const systems: System[] = [];
  const unavailable = new Map<Mode, string>();
  try {
    for (const mode of RUN_MODES) {
      try {
        systems.push(await startSystem(mode));
        console.log(`  ${mode}: started`);
      } catch (error) {
        if (!(error instanceof ModeNotAvailable)) throw error;
        unavailable.set(mode, error.message);
        console.log(`  ${mode}: ${error.message}`);
      }
    }
    // Roles once everything is up (a primary-mode cluster has elected by then: all three were ready).
    const roles = new Map(await Promise.all(systems.map(async (s) => [s.mode, await Promise.all(s.replicas.map(async (r) => ({ id: r.id, role: await roleOf(r) })))] as const)));
    const idle = new Map<Mode, number>();
    for (const system of systems) idle.set(system.mode, await idleCpuMsPerSecond(system, IDLE_SECONDS));
    for (const system of systems) await drive(system, WARMUP, clock, null);
    const runs = new Map<Mode, ClusterRun[]>(systems.map((s) => [s.mode, []]));
    for (let round = 0; round < REPEATS; round++) {
      for (const system of systems) runs.get(system.mode)?.push(await drive(system, DURATION, clock, round));
    }
    const rows: Row[] = [];
    for (const mode of RUN_MODES) {
      const system = systems.find((s) => s.mode === mode);
      if (!system) {
        rows.push({ mode, available: false, reason: unavailable.get(mode) ?? NOT_AVAILABLE });
        continue;
      }
      let hot: HotSale | null = null;
      let hotError: string | null = null;
      try {
        hot = await hotSale(system);
      } catch (error) {
        hotError = error instanceof Error ? error.message : String(error);
      }
      const modeRuns = runs.get(mode) ?? [];
      const row: Row = { mode, available: true, replicas: roles.get(mode) ?? [], idleCpuMsPerSecond: idle.get(mode) ?? NaN, runs: modeRuns, median: medianRun(modeRuns), hot, hotError };
      rows.push(row);
      const m = row.median;
      console.log(`  ${mode.padEnd(10)} ${Math.round(m.rps)} req/s  ${m.cpuUsPerBuy.toFixed(1)} µs CPU/buy (${m.replicaCpuUsPerBuy.map((c) => c.toFixed(1)).join(' + ')})  hot: ${hot ? `${hot.acked} sold, ${hot.soldOut} refused, unsold while refused ${hot.unsoldWhileRefused}, tail ${tailText(hot)}` : hotError}`);
    }
    const results = verdicts(rows);
    const loadAfter = loadavg();
    const page = markdown(rows, results, { startedAt, loadBefore, loadAfter, command });
    const settings = { LANE, DURATION, WARMUP, REPEATS, connections: CONNECTION_SPLIT, REPLICA_WORKERS, HOT_STOCK, PRIMING_BUYS, loadGenerator: `3 × wrk -t1 (${CONNECTION_SPLIT.join('+')})` };
    writeFileSync(join(OUT, 'cluster.json'), JSON.stringify({ startedAt, command, machine: { nproc: CORES, cpu: cpus()[0]?.model ?? 'unknown', node: process.version }, load: { before: loadBefore, after: loadAfter, note: process.env.BENCH_LOAD ?? null }, settings, rows, verdicts: results }, null, 2));
    writeFileSync(join(OUT, 'cluster.md'), page);
    // The reading is written by a person against a run; it travels with the latest cluster table.
    if (WRITE_DOCS) writeSection(join(ROOT, 'docs', 'benchmarks.md'), 'bench-cluster', `${page}\n${readFileSync(join(ROOT, 'bench', 'CLUSTER-ANALYSIS.md'), 'utf8')}`);
    console.log(`\n${page}\nwritten to ${OUT}`);
  } finally {
    clock.close();
    await Promise.all(systems.flatMap((s) => s.replicas.map(stopReplica)));
  }
  // The replicas wrote their profiles as they stopped.
  profile?.finish();
}

await main();
