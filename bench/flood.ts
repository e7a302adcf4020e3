/**
 * `make bench-flood` (and the flood section of `make bench`): what a durable replica does when
 * thousands of connections buy at once (issue 10, item 7). The backpressure test proves the
 * answers right under a 2,400-connection flood; this measures how the admitted ones fare. Each
 * system is driven at BENCH_FLOOD_REFERENCE connections (64) and at BENCH_FLOOD_CONNECTIONS
 * (2,400), side by side in interleaved rounds, on loopback, by `bench/flood-client.ts` (its own
 * process; it keeps admitted and refused latencies apart, which wrk cannot). The systems, all
 * `DURABILITY=sync` on one lane (atomic unless BENCH_FLOOD_LANE):
 *   - one replica with the default QUEUE_LIMIT (no bound reached at 2,400: everything queues);
 *   - one replica with QUEUE_LIMIT=BENCH_FLOOD_QUEUE_LIMIT (100): beyond it, fast 503s;
 *   - the same with the admission gate off (ADMISSION_LIMIT=1000000), as before the gate: the
 *     queues refuse only after Express has parsed a request — the gate's effect, side by side;
 *   - one replica with that QUEUE_LIMIT and one worker thread (WORKERS=1), as each replica of the
 *     cluster below has: every connection on one event loop (bench/FLOOD-ANALYSIS.md, "One worker
 *     thread");
 *   - the primary of three replicas (ELECTION=mongo, as `make cluster`) with the same limit,
 *     driven on its own port: whether the flood costs it the lease.
 * Reported per cell: admitted (200/409) req/s, the share refused with 503 and how many of those
 * carried Retry-After, p50/p99 of admitted and refused answers, the server's CPU per admitted
 * request and per answer (with most answers refusals, about the cost of one), its peak resident set (sampled every 100 ms), and requests left unanswered. Per
 * system, after every round: units sold (Peek) against the 200s counted (equal, unless some
 * answers never came: then within [200s, 200s + unanswered]), the epoch before and after, and
 * from the replicas' logs the step-downs, terms begun and failed lease rounds (0 expected).
 *
 * Writes bench/results/flood.{json,md} and, on a full run, the flood section of docs/benchmarks.md
 * (with bench/FLOOD-ANALYSIS.md, the hand-written reading, after it).
 * Environment: as bench/run.ts (BENCH_QUICK, BENCH_SMOKE, BENCH_DURATION, BENCH_WARMUP,
 * BENCH_REPEATS, BENCH_OUT, BENCH_DOCS, BENCH_LOAD, MONGO_URL, REDIS_URL), plus
 * BENCH_FLOOD_CONNECTIONS (2400), BENCH_FLOOD_REFERENCE (64), BENCH_FLOOD_QUEUE_LIMIT (100),
 * BENCH_FLOOD_LANE (atomic), BENCH_FLOOD_SYSTEMS (replica,replica-bounded,replica-ungated,replica-one-thread,cluster-primary; the
 * smoke run: cluster-primary at 16 and 200 connections, QUEUE_LIMIT=10).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { MAX_STOCK } from '../src/config.js';
import { writeSection } from './docs-section.js';
import type { FloodResult } from './flood-client.js';
import { DURATION, QUICK, REPEATS, ROOT, SMOKE, WARMUP, env, processCpuSeconds, residentMiB } from './measure.js';
import { metricsOf, roleOf, startReplica, stopReplica, type Replica } from './replicas.js';

const OUT = resolve(env('BENCH_OUT', join(ROOT, 'bench', 'results')));
const WRITE_DOCS = !SMOKE && (!QUICK || process.env.BENCH_DOCS === '1');
const FLOOD = Number(env('BENCH_FLOOD_CONNECTIONS', SMOKE ? '200' : '2400'));
const REFERENCE = Number(env('BENCH_FLOOD_REFERENCE', SMOKE ? '16' : '64'));
const QUEUE_LIMIT = env('BENCH_FLOOD_QUEUE_LIMIT', SMOKE ? '10' : '100');
const LANE = env('BENCH_FLOOD_LANE', 'atomic');
const TOKEN = randomBytes(16).toString('hex');
const SKU = 'FLOOD';
const CORES = availableParallelism();
const RSS_SAMPLE_MS = 100;
/** Log messages that mean a term ended or began, or a lease round failed (bench/replicas.ts counts them). */
const LEASE_EVENTS = { stepDowns: 'stepping down', termsBegun: 'became primary', failedRounds: 'lease round failed' } as const;

const SYSTEMS = ['replica', 'replica-bounded', 'replica-ungated', 'replica-one-thread', 'cluster-primary'] as const;
/** ADMISSION_LIMIT high enough that the gate never refuses: the service as it was before the gate. */
const GATE_OFF = '1000000';
type SystemName = (typeof SYSTEMS)[number];
// The smoke run (make test) floods only the cluster's primary: it walks every part of the harness
// but the one-line start of a lone replica, in a third of the time all three take.
const wantedSystems = env('BENCH_FLOOD_SYSTEMS', SMOKE ? 'cluster-primary' : SYSTEMS.join(',')).split(',');
const RUN_SYSTEMS = SYSTEMS.filter((s) => wantedSystems.includes(s));
const DESCRIPTIONS: Record<SystemName, string> = {
  replica: `one replica, default QUEUE_LIMIT`,
  'replica-bounded': `one replica, QUEUE_LIMIT=${QUEUE_LIMIT}`,
  'replica-ungated': `one replica, QUEUE_LIMIT=${QUEUE_LIMIT}, no admission gate`,
  'replica-one-thread': `one replica, WORKERS=1, QUEUE_LIMIT=${QUEUE_LIMIT}`,
  'cluster-primary': `primary of 3 (ELECTION=mongo), QUEUE_LIMIT=${QUEUE_LIMIT}`,
};

interface System {
  readonly name: SystemName;
  readonly replicas: Replica[];
  /** The replica every request goes to (the primary, for the cluster). */
  readonly driven: Replica;
}

/** How many connections, and whether a refused buyer waits its Retry-After before the next buy. */
interface Load {
  readonly connections: number;
  readonly waitRetryAfter: boolean;
}

interface Cell extends Load {
  readonly system: SystemName;
  readonly result: FloodResult;
  readonly admittedRps: number;
  /** Refused (503) ÷ answered. */
  readonly refusedShare: number;
  readonly cpuUsPerAdmitted: number;
  /** Server CPU per answer of any kind: where most are refusals, about what a refusal costs. */
  readonly cpuUsPerAnswer: number;
  readonly peakRssMiB: number;
}

interface LeaseEvents {
  readonly stepDowns: number;
  readonly termsBegun: number;
  readonly failedRounds: number;
}

interface Outcome {
  readonly system: SystemName;
  readonly acknowledged: number;
  /** Requests never answered, and 504 outcome_unknown answers: each may or may not have sold. */
  readonly unanswered: number;
  readonly sold: number;
  /** sold == acknowledged when every answer came, else acknowledged ≤ sold ≤ acknowledged + unanswered. */
  readonly exact: boolean;
  readonly epochBefore: number;
  readonly epochAfter: number;
  readonly primariesAfter: string[];
  /** Summed over the system's replicas, from the first warm-up to the end; null without election. */
  readonly leaseEvents: LeaseEvents | null;
}

// ---------------------------------------------------------------------------------------------
// Systems

async function startSystem(name: SystemName): Promise<System> {
  const database = `bench_flood_${name.replace('-', '_')}_${randomBytes(3).toString('hex')}`;
  const common = { DURABILITY: 'sync', SEED_SKUS: SKU, INITIAL_STOCK: String(MAX_STOCK), ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'info', HOST: '127.0.0.1', MONGO_DB: database };
  if (name !== 'cluster-primary') {
    const bound: Record<string, string> =
      name === 'replica-bounded' ? { QUEUE_LIMIT } : name === 'replica-ungated' ? { QUEUE_LIMIT, ADMISSION_LIMIT: GATE_OFF } : name === 'replica-one-thread' ? { QUEUE_LIMIT, WORKERS: '1' } : {};
    const replica = await startReplica(`flood-${name}`, { ...common, ELECTION: 'none', WORKERS: String(CORES), ...bound });
    return { name, replicas: [replica], driven: replica };
  }
  // As `make cluster`: three replicas of one worker each, started together.
  const started = await Promise.allSettled([0, 1, 2].map((i) => startReplica(`flood-cluster-${i}`, { ...common, ELECTION: 'mongo', CLUSTER_MODE: 'primary', WORKERS: '1', QUEUE_LIMIT })));
  const replicas = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(replicas.map(stopReplica));
    throw failed.reason;
  }
  const deadline = Date.now() + 30_000;
  for (;;) {
    const roles = await Promise.all(replicas.map(roleOf));
    const primaries = replicas.filter((_, i) => roles[i] === 'primary');
    if (primaries.length === 1) return { name, replicas, driven: primaries[0] as Replica };
    if (Date.now() > deadline) {
      await Promise.all(replicas.map(stopReplica));
      throw new Error(`no single primary among the flood cluster within 30 s (roles: ${roles.join(', ')})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function epochOf(replica: Replica): Promise<number> {
  return Number(/^superstock_epoch (\d+)/m.exec(await metricsOf(replica))?.[1] ?? Number.NaN);
}

function leaseEventsOf(system: System): LeaseEvents {
  const sum = (msg: string) => system.replicas.reduce((n, r) => n + (r.logged.get(msg) ?? 0), 0);
  return { stepDowns: sum(LEASE_EVENTS.stepDowns), termsBegun: sum(LEASE_EVENTS.termsBegun), failedRounds: sum(LEASE_EVENTS.failedRounds) };
}

// ---------------------------------------------------------------------------------------------
// One run: the load generator in its own process, the server's CPU and resident set around it

function runClient(url: string, { connections, waitRetryAfter }: Load, seconds: number): Promise<FloodResult> {
  return new Promise((done, fail) => {
    const args = [join(ROOT, 'dist', 'bench', 'flood-client.js'), url, String(connections), String(seconds), ...(waitRetryAfter ? ['wait-retry-after'] : [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', fail);
    child.once('exit', (status) => (status === 0 ? done(JSON.parse(out) as FloodResult) : fail(new Error(`flood client exited with ${status}: ${err}`))));
  });
}

async function drive(system: System, load: Load, seconds: number): Promise<Cell> {
  const { driven } = system;
  let peakRss = residentMiB(driven.pid);
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, residentMiB(driven.pid))), RSS_SAMPLE_MS);
  const cpuBefore = processCpuSeconds(driven.pid);
  try {
    const result = await runClient(`${driven.base}/v2/lanes/${LANE}/skus/${SKU}/buy`, load, seconds);
    const cpu = processCpuSeconds(driven.pid) - cpuBefore;
    const answered = Object.values(result.statuses).reduce((a, b) => a + b, 0);
    const admitted = result.admitted.count;
    return {
      system: system.name,
      ...load,
      result,
      admittedRps: result.elapsedS > 0 ? admitted / result.elapsedS : 0,
      refusedShare: answered > 0 ? result.refused.count / answered : 0,
      cpuUsPerAdmitted: admitted > 0 ? (cpu * 1e6) / admitted : Number.NaN,
      cpuUsPerAnswer: answered > 0 ? (cpu * 1e6) / answered : Number.NaN,
      peakRssMiB: Math.max(peakRss, residentMiB(driven.pid)),
    };
  } finally {
    clearInterval(sampler);
  }
}

const medianByRps = (cells: Cell[]): Cell => [...cells].sort((a, b) => a.admittedRps - b.admittedRps)[Math.floor(cells.length / 2)] as Cell;

// ---------------------------------------------------------------------------------------------
// Report

const fixed = (x: number | null | undefined, digits = 1) => (x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits));

function markdown(cells: Cell[], outcomes: Outcome[], meta: { startedAt: string; loadBefore: number[]; loadAfter: number[]; command: string }): string {
  const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(' / ');
  const note = process.env.BENCH_LOAD;
  return [
    '## Flood: thousands of connections at once',
    '',
    `Latest \`${meta.command}\` run, ${meta.startedAt}, on ${CORES} cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}. Load average`,
    `${load(meta.loadBefore)} before and ${load(meta.loadAfter)} after${note ? ` (${note})` : ''}. Every system runs \`DURABILITY=sync\` and sells`,
    `one SKU on the ${LANE} lane with stock enough that nothing sells out. Each is driven on loopback at ${REFERENCE} and at ${FLOOD.toLocaleString('en')}`,
    `keep-alive connections (each sends a buy, waits for its answer, sends the next) by \`bench/flood-client.ts\`, a Node process`,
    `of its own that times each request from its write to the last byte of its answer and keeps admitted answers (200 sold,`,
    `409 sold out) apart from refused ones (503) — wrk puts both in one histogram, where fast refusals flatter the p99. The`,
    `connections are all open before the first request. ${WARMUP}s warm-up at ${REFERENCE}, then ${REPEATS} interleaved round(s) of ${DURATION}s;`,
    `the median run by admitted req/s. Server CPU and peak resident set are the driven replica's own (every thread; the`,
    `resident set sampled every ${RSS_SAMPLE_MS} ms). "After a 503": buyers that buy again at once (as wrk does) keep every`,
    `connection's request outstanding, so an admitted buy waits behind ~connections ÷ answers per second whatever the queues`,
    `hold (refusals are answered too); buyers that wait the Retry-After they were given show what the bound buys for clients`,
    `that follow it. "504": outcome unknown (a store call timed out after it may have landed; the keyed retry resolves it).`,
    '',
    '| system | connections | after a 503 | admitted req/s | refused (503) | 503 with Retry-After | admitted p50 ms | admitted p99 ms | refused p99 ms | 504 | server CPU µs/admitted | server CPU µs/answer | peak RSS MiB | unanswered |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...cells.map((c) => {
      const refused = c.result.refused.count;
      return `| ${DESCRIPTIONS[c.system]} | ${c.connections.toLocaleString('en')} | ${c.waitRetryAfter ? 'waits Retry-After' : 'buys again at once'} | ${Math.round(c.admittedRps)} | ${(c.refusedShare * 100).toFixed(1)} % | ${refused === 0 ? '—' : `${c.result.refusedWithRetryAfter} of ${refused}`} | ${fixed(c.result.admitted.p50)} | ${fixed(c.result.admitted.p99)} | ${fixed(c.result.refused.p99)} | ${c.result.statuses['504'] ?? 0} | ${fixed(c.cpuUsPerAdmitted)} | ${fixed(c.cpuUsPerAnswer)} | ${c.peakRssMiB.toFixed(0)} | ${c.result.unanswered} |`;
    }),
    '',
    'After every round of a system: the units its Peek says were sold against the 200s the load generator counted (warm-ups',
    'included), and whether the flood cost the primary its term — the epoch before and after, and from the replicas\' logs the',
    'step-downs, terms begun and failed lease rounds over the whole run (all 0 expected; one replica alone has no lease).',
    '',
    '| system | 200s counted | sold (Peek) | unanswered or 504 | sold − 200s | sold == 200s (within the unknowns) | epoch before → after | primary after | step-downs | terms begun | failed lease rounds |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...outcomes.map((o) => {
      const lease = o.leaseEvents;
      return `| ${DESCRIPTIONS[o.system]} | ${o.acknowledged} | ${o.sold} | ${o.unanswered} | ${o.sold - o.acknowledged} | ${o.exact ? 'yes' : '**no**'} | ${o.epochBefore} → ${o.epochAfter} | ${o.primariesAfter.join(', ') || 'none'} | ${lease?.stepDowns ?? '—'} | ${lease?.termsBegun ?? '—'} | ${lease?.failedRounds ?? '—'} |`;
    }),
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------

async function measureSystem(name: SystemName, cells: Cell[], outcomes: Outcome[]): Promise<void> {
  const system = await startSystem(name);
  try {
    const base = system.driven.base;
    const put = await fetch(`${base}/v2/admin/skus/${SKU}`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ stock: MAX_STOCK }) });
    if (put.status !== 200 && put.status !== 201) throw new Error(`PUT ${SKU} on ${name}: ${put.status} ${await put.text()}`);
    const epochBefore = await epochOf(system.driven);
    const eventsBefore = leaseEventsOf(system);
    const runs: Cell[] = [await drive(system, { connections: REFERENCE, waitRetryAfter: false }, WARMUP)];
    // Buyers that wait out a Retry-After only differ from the others where something is refused.
    const loads: Load[] = [
      { connections: REFERENCE, waitRetryAfter: false },
      { connections: FLOOD, waitRetryAfter: false },
      ...(name === 'replica' ? [] : [{ connections: FLOOD, waitRetryAfter: true }]),
    ];
    const measured = loads.map((): Cell[] => []);
    for (let round = 0; round < REPEATS; round++) {
      for (const [i, load] of loads.entries()) {
        const cell = await drive(system, load, DURATION);
        runs.push(cell);
        measured[i]?.push(cell);
        console.log(`  ${DESCRIPTIONS[name].padEnd(48)} c=${String(load.connections).padEnd(5)}${load.waitRetryAfter ? ' (waits Retry-After)' : ''} ${Math.round(cell.admittedRps)} admitted/s  refused ${(cell.refusedShare * 100).toFixed(1)} %  admitted p50/p99 ${fixed(cell.result.admitted.p50)}/${fixed(cell.result.admitted.p99)} ms  RSS ${cell.peakRssMiB.toFixed(0)} MiB`);
      }
    }
    for (const group of measured) cells.push(medianByRps(group));
    const acknowledged = runs.reduce((n, c) => n + (c.result.statuses['200'] ?? 0), 0);
    const unanswered = runs.reduce((n, c) => n + c.result.unanswered + (c.result.statuses['504'] ?? 0), 0);
    const level = (await (await fetch(`${base}/v2/lanes/${LANE}/skus/${SKU}`)).json()) as { sold: number };
    const after = leaseEventsOf(system);
    const roles = await Promise.all(system.replicas.map(roleOf));
    outcomes.push({
      system: name,
      acknowledged,
      unanswered,
      sold: level.sold,
      exact: unanswered === 0 ? level.sold === acknowledged : level.sold >= acknowledged && level.sold <= acknowledged + unanswered,
      epochBefore,
      epochAfter: await epochOf(system.driven),
      primariesAfter: system.replicas.filter((_, i) => roles[i] === 'primary').map((r) => r.id),
      leaseEvents:
        name === 'cluster-primary'
          ? { stepDowns: after.stepDowns - eventsBefore.stepDowns, termsBegun: after.termsBegun - eventsBefore.termsBegun, failedRounds: after.failedRounds - eventsBefore.failedRounds }
          : null,
    });
  } finally {
    await Promise.all(system.replicas.map(stopReplica));
  }
}

async function main(): Promise<void> {
  if (!process.env.MONGO_URL || !process.env.REDIS_URL) throw new Error('set MONGO_URL and REDIS_URL (make bench-flood starts both)');
  mkdirSync(OUT, { recursive: true });
  const startedAt = new Date().toISOString();
  const loadBefore = loadavg();
  const command = SMOKE ? 'make bench-smoke' : QUICK ? 'make bench-quick' : 'make bench-flood';
  console.log(`flood: ${RUN_SYSTEMS.join(', ')} at ${REFERENCE} and ${FLOOD} connections, ${WARMUP}s warm-up + ${REPEATS} rounds × ${DURATION}s`);
  const cells: Cell[] = [];
  const outcomes: Outcome[] = [];
  // One system up at a time: what matters, 64 beside 2,400 connections, is interleaved within each
  // system, and the idle systems' lease and sync timers would otherwise share the cores.
  for (const name of RUN_SYSTEMS) await measureSystem(name, cells, outcomes);
  const loadAfter = loadavg();
  const page = markdown(cells, outcomes, { startedAt, loadBefore, loadAfter, command });
  writeFileSync(join(OUT, 'flood.json'), JSON.stringify({ startedAt, command, load: { before: loadBefore, after: loadAfter, note: process.env.BENCH_LOAD ?? null }, settings: { DURATION, WARMUP, REPEATS, FLOOD, REFERENCE, QUEUE_LIMIT, LANE }, cells, outcomes }, null, 2));
  writeFileSync(join(OUT, 'flood.md'), page);
  // The reading is written by a person against a run; it travels with the latest table.
  if (WRITE_DOCS) writeSection(join(ROOT, 'docs', 'benchmarks.md'), 'bench-flood', `${page}\n${readFileSync(join(ROOT, 'bench', 'FLOOD-ANALYSIS.md'), 'utf8')}`);
  console.log(`\n${page}\nwritten to ${OUT}`);
}

await main();
