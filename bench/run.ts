/**
 * `make bench`: every lane side by side with the no-op ceilings, in one run on one machine, so
 * the ratios hold even when the machine is noisy. Every server is started first and stays up;
 * then, for each connection count, every target is warmed up and measured in interleaved rounds
 * (A B C …, A B C …), so a slow minute on a shared machine hits every row alike. The load
 * generator is wrk (C, its own process, one thread). Beside req/s, each run reports the server's
 * CPU time per request, read from the server process's own counters (/proc/<pid>/stat, every
 * thread) before and after — a figure the load generator sharing the cores does not distort —
 * and, for the rows that use one, Redis's or MongoDB's own CPU per request. It then loads
 * BENCH_SKUS SKUs through both bulk paths (SEED_FILE and POST /v2/admin/skus:bulk) and reports
 * the time, the resident memory and the bytes per SKU. Every target of the issue is checked on
 * req/s and on CPU and reported met or missed — never asserted.
 *
 * Writes bench/results/ (raw JSON, Markdown, SVG + PNG chart) and, on a full run, docs/benchmarks.md
 * (keeping the sections that `make bench-cluster` and `make bench-flood` write there; see bench/docs-section.ts).
 *
 * Environment: BENCH_QUICK=1 (64 connections, 3 s runs: a few minutes), BENCH_SMOKE=1 (seconds,
 * for the test suite), BENCH_DURATION (s, 5), BENCH_WARMUP (s, 2), BENCH_REPEATS (3),
 * BENCH_CONNECTIONS (1,16,64,256), BENCH_TARGETS (all), BENCH_SKUS (1000000), BENCH_OUT
 * (bench/results), BENCH_DOCS=1 (write docs/benchmarks.md from a quick run too), BENCH_LOAD (a
 * note on what else ran on the machine, printed with the figures), MONGO_URL / REDIS_URL (required).
 * `atomic (again)` is the atomic lane on a second, identical server: beside `atomic`, an A/A row
 * that shows how far two measurements of the same thing differ. A full run measures it (not a quick
 * or smoke run, unless BENCH_TARGETS names it) and reads every ratio target against it: a miss no
 * larger than the A/A pair's widest round-by-round gap at that concurrency is reported as within
 * this run's noise, not as a verdict either way.
 *
 * BENCH_CPU_PROF_DIR=<dir> (`make bench-profile`) runs only the targets: every server under `node
 * --cpu-prof` (every thread), each measured round's window and every server thread's CPU recorded,
 * then `bench/cpu-profile.ts`'s CPU per request by thread and category, the targets side by side
 * against the first (`<dir>/profile.md`). Profiling costs CPU of its own: not the bench's figures.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, createReadStream, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { MongoClient } from 'mongodb';
import { MAX_STOCK } from '../src/config.js';
import { DURATION, DependencyClock, QUICK, REPEATS, ROOT, SMOKE, WARMUP, env, freePort, latencyMs, processCpuSeconds, residentMiB, until, type Dependency } from './measure.js';
import { keepSections } from './docs-section.js';
import { profileRecorder, profilingEnv } from './cpu-profile.js';

const CONNECTIONS = env('BENCH_CONNECTIONS', SMOKE ? '1,16' : QUICK ? '64' : '1,16,64,256').split(',').map(Number);
const SKUS = Number(env('BENCH_SKUS', SMOKE ? '2000' : '1000000'));
const OUT = resolve(env('BENCH_OUT', join(ROOT, 'bench', 'results')));
const WRITE_DOCS = !SMOKE && (!QUICK || process.env.BENCH_DOCS === '1');
const WORKERS = availableParallelism();
const TOKEN = randomBytes(16).toString('hex');
// As much as a SKU may hold (MAX_STOCK): no run sells it out.
const STOCK = MAX_STOCK;
const WRK_DIR = join(ROOT, 'bench', 'wrk');

type ServerSpec = { readonly kind: 'noop'; readonly mode: 'http' | 'express' } | { readonly kind: 'service'; readonly env: Record<string, string> };

interface Target {
  readonly name: string;
  readonly server: string;
  readonly path: string;
  readonly keyed?: true;
  /** The store whose own CPU time this row adds. */
  readonly dependency?: Dependency;
  /** Measured by a full run, or when BENCH_TARGETS names it. */
  readonly fullRunOnly?: true;
}

interface Run {
  readonly rps: number;
  readonly requests: number;
  /** Server process CPU (all threads) per request, µs. */
  readonly cpuUs: number;
  /** The dependency's own CPU per request, µs, where one is used and measurable. */
  readonly dependencyCpuUs: number | null;
  readonly p50: number;
  readonly p99: number;
  readonly non2xx: number;
  readonly errors: number;
}

interface Cell {
  readonly target: string;
  readonly connections: number;
  readonly workers: number;
  readonly runs: Run[];
  readonly median: Run;
  readonly min: number;
  readonly max: number;
  readonly cpuMedianUs: number;
}

const SERVICE_ENV = { ELECTION: 'none', DURABILITY: 'none', SEED_SKUS: 'BENCH,NVDA', INITIAL_STOCK: String(STOCK), ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'warn' };
/** The service the lane rows share; `atomic (again)` runs a second, identical one. */
const SERVICE: ServerSpec = { kind: 'service', env: { ...SERVICE_ENV, DB_LANE_MODE: 'combined' } };
const SERVERS: Record<string, ServerSpec> = {
  'noop-http': { kind: 'noop', mode: 'http' },
  'noop-express': { kind: 'noop', mode: 'express' },
  service: SERVICE,
  'service-again': SERVICE,
  'service-db-single': { kind: 'service', env: { ...SERVICE_ENV, DB_LANE_MODE: 'single' } },
  'service-durable': { kind: 'service', env: { ...SERVICE_ENV, DURABILITY: 'sync' } },
  // The same with the ledger's batches sent through the driver's insertOne (before direct inserts): for before ÷ after.
  'service-durable-driver': { kind: 'service', env: { ...SERVICE_ENV, DURABILITY: 'sync', LEDGER_INSERTS: 'driver' } },
};
const buyPath = (lane: string) => `/v2/lanes/${lane}/skus/BENCH/buy`;
const ALL_TARGETS: Target[] = [
  { name: 'node:http no-op', server: 'noop-http', path: '/noop' },
  { name: 'express no-op', server: 'noop-express', path: '/noop' },
  { name: 'atomic', server: 'service', path: buyPath('atomic') },
  { name: 'atomic (again)', server: 'service-again', path: buyPath('atomic'), fullRunOnly: true },
  { name: 'signal', server: 'service', path: buyPath('signal') },
  { name: 'lock', server: 'service', path: buyPath('lock') },
  { name: 'atomic, Idempotency-Key', server: 'service', path: buyPath('atomic'), keyed: true },
  { name: 'ManyStock (atomic, v1)', server: 'service', path: '/api/v1/ManyStock/Cache/BuyFastAtomic/NVDA' },
  { name: 'redis', server: 'service', path: buyPath('redis'), dependency: 'redis' },
  { name: 'db combined', server: 'service', path: buyPath('db'), dependency: 'mongo' },
  { name: 'db single', server: 'service-db-single', path: buyPath('db'), dependency: 'mongo' },
  { name: 'atomic, durable', server: 'service-durable', path: buyPath('atomic'), dependency: 'mongo' },
  { name: 'signal, durable', server: 'service-durable', path: buyPath('signal'), dependency: 'mongo' },
  { name: 'lock, durable', server: 'service-durable', path: buyPath('lock'), dependency: 'mongo' },
  { name: 'atomic, durable, driver inserts', server: 'service-durable-driver', path: buyPath('atomic'), dependency: 'mongo' },
];
const MEMORY_LANES = ['atomic', 'signal', 'lock'] as const;
const SMOKE_TARGETS = ['express no-op', 'atomic'];
// Names may hold ", " ("atomic, durable"): only a comma without a space after it separates them.
const wanted = process.env.BENCH_TARGETS?.split(/,(?! )/) ?? (SMOKE ? SMOKE_TARGETS : ALL_TARGETS.filter((t) => !QUICK || !t.fullRunOnly).map((t) => t.name));
const TARGETS = ALL_TARGETS.filter((t) => wanted.includes(t.name));
/** The measured rounds' windows, for the profiles (BENCH_CPU_PROF_DIR). */
const profile = profileRecorder();

interface Started {
  readonly base: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything the process printed on stdout. */
  readonly output: () => string;
  /** The service's own MongoDB database (none for the no-op servers). */
  readonly database?: string;
}

async function startServer(spec: ServerSpec, workers: number, extra: Record<string, string> = {}): Promise<Started> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const childEnv = { ...process.env, PORT: String(port), METRICS_PORT: String(await freePort()), HOST: '127.0.0.1', WORKERS: String(workers), ...profilingEnv() };
  let out = '';
  if (spec.kind === 'noop') {
    const child = spawn(process.execPath, [join(ROOT, 'dist', 'bench', 'noop-server.js'), spec.mode], { env: childEnv, stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await until('no-op server', async () => out.includes('ready'));
    return { base, child, pid: child.pid as number, output: () => out };
  }
  const database = `bench_${randomBytes(4).toString('hex')}`;
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'main.js')], {
    env: { ...childEnv, MONGO_DB: database, ...spec.env, ...extra },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  await until('service ready', async () => {
    if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}`);
    return (await fetch(`${base}/readyz`)).status === 200;
  });
  return { base, child, pid: child.pid as number, output: () => out, database };
}

/**
 * Stop a server; a service's database goes with it. The wire server keeps everything on its heap
 * (~1.4 KB per ledger batch, and a durable row writes 1,000–3,000 batches a second), so what the
 * earlier servers left would fill it under the later rows and benches, whose every request then
 * waits out multi-second full collections (bench/ANALYSIS.md).
 */
async function stopServer({ child, database }: Started): Promise<void> {
  if (child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  if (database && process.env.MONGO_URL) {
    const client = await new MongoClient(process.env.MONGO_URL).connect();
    try {
      const batches = await client.db(database).collection('ledger').estimatedDocumentCount();
      if (batches > 0) console.log(`  (${database}: ${batches} ledger batches, dropped with the database)`);
      await client.db(database).dropDatabase();
    } finally {
      await client.close();
    }
  }
}

/** One wrk run (its own process, one thread) against `url`; the server's CPU read around it. */
async function wrk(target: Target, url: string, connections: number, seconds: number, serverPid: number, clock: DependencyClock): Promise<Run> {
  const script = join(WRK_DIR, target.keyed ? 'post-keyed.lua' : 'post.lua');
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', script, url, ...(target.keyed ? ['--', randomBytes(6).toString('hex')] : [])];
  const cpuBefore = processCpuSeconds(serverPid);
  const depBefore = target.dependency ? await clock.seconds(target.dependency) : null;
  const result = await new Promise<{ status: number | null; stdout: string; stderr: string }>((done) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', (error) => done({ status: -1, stdout, stderr: error.message }));
    child.once('exit', (status) => done({ status, stdout, stderr }));
  });
  const cpuAfter = processCpuSeconds(serverPid);
  const depAfter = target.dependency ? await clock.seconds(target.dependency) : null;
  if (result.status !== 0) throw new Error(`wrk failed (install it: apt-get install wrk): ${result.stderr}`);
  const out = result.stdout;
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
    requests,
    cpuUs: requests > 0 ? ((cpuAfter - cpuBefore) * 1e6) / requests : NaN,
    dependencyCpuUs: depBefore !== null && depAfter !== null && requests > 0 ? ((depAfter - depBefore) * 1e6) / requests : null,
    p50: latencyMs(out, '50'),
    p99: latencyMs(out, '99'),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    errors: socketErrors ? socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

function cellOf(target: string, connections: number, workers: number, runs: Run[]): Cell {
  const rps = runs.map((r) => r.rps);
  const byRps = [...runs].sort((a, b) => a.rps - b.rps);
  return {
    target,
    connections,
    workers,
    runs,
    median: byRps[Math.floor(byRps.length / 2)] as Run,
    min: Math.min(...rps),
    max: Math.max(...rps),
    cpuMedianUs: median(runs.map((r) => r.cpuUs)),
  };
}

/** Every target at every connection count: a warm-up each, then REPEATS interleaved rounds. */
async function runTargets(targets: Target[], connections: number[], workers: number, clock: DependencyClock): Promise<Cell[]> {
  const servers = new Map<string, Started>();
  try {
    for (const name of new Set(targets.map((t) => t.server))) {
      const spec = SERVERS[name];
      if (!spec) throw new Error(`unknown server ${name}`);
      servers.set(name, await startServer(spec, workers));
    }
    const cells: Cell[] = [];
    for (const c of connections) {
      const runs = new Map<string, Run[]>(targets.map((t) => [t.name, []]));
      for (const target of targets) {
        const server = servers.get(target.server) as Started;
        await wrk(target, server.base + target.path, c, WARMUP, server.pid, clock);
      }
      for (let round = 0; round < REPEATS; round++) {
        for (const target of targets) {
          const server = servers.get(target.server) as Started;
          const closeWindow = profile?.open(`${target.name} @${c}`, round, [{ id: target.server, pid: server.pid }]);
          const run = await wrk(target, server.base + target.path, c, DURATION, server.pid, clock);
          closeWindow?.(run.requests - run.non2xx);
          runs.get(target.name)?.push(run);
        }
      }
      for (const target of targets) {
        const cell = cellOf(target.name, c, workers, runs.get(target.name) ?? []);
        cells.push(cell);
        const dep = cell.median.dependencyCpuUs === null ? '' : ` (+${target.dependency} ${cell.median.dependencyCpuUs.toFixed(0)} µs)`;
        console.log(`  ${target.name.padEnd(24)} c=${String(c).padEnd(4)} w=${workers}  ${Math.round(cell.median.rps)} req/s  ${cell.cpuMedianUs.toFixed(1)} µs CPU/req${dep}  p99 ${cell.median.p99} ms${cell.median.non2xx ? `  non-2xx ${cell.median.non2xx}` : ''}`);
      }
    }
    return cells;
  } finally {
    for (const server of servers.values()) await stopServer(server);
  }
}


interface BulkLoad {
  readonly path: string;
  readonly skus: number;
  readonly seconds: number;
  readonly rssEmptyMiB: number;
  readonly rssLoadedMiB: number;
  readonly bytesPerSku: number;
}

/** A resident-set figure once the process has settled (a second without load). */
async function settledRss(pid: number): Promise<number> {
  await new Promise((r) => setTimeout(r, 1000));
  return residentMiB(pid);
}

/**
 * `count` SKUs loaded into an in-memory replica (DURABILITY=none, no MongoDB or Redis: what is
 * measured is the replica's own memory) through both bulk paths: SEED_FILE at start-up, and the
 * bulk admin route streaming the same list into a running replica.
 */
async function bulkLoads(count: number): Promise<BulkLoad[]> {
  const file = join(OUT, `skus-${count}.ndjson`);
  const lines: string[] = [];
  for (let i = 0; i < count; i++) lines.push(`{"sku":"SKU-${String(i).padStart(7, '0')}","stock":100}`);
  writeFileSync(file, lines.join('\n') + '\n');
  lines.length = 0;
  const memoryOnly = { ...SERVICE_ENV, MONGO_URL: '', REDIS_URL: '', MAX_SKUS: String(count + 10) };
  const results: BulkLoad[] = [];
  try {
    // The same replica empty, for the baseline of both paths.
    const empty = await startServer({ kind: 'service', env: memoryOnly }, WORKERS);
    const rssEmptyMiB = await settledRss(empty.pid);
    try {
      const { port } = new URL(empty.base);
      const t0 = performance.now();
      const answer = await new Promise<{ status: number; body: string }>((done, fail) => {
        const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v2/admin/skus:bulk', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-ndjson' } }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => done({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', fail);
        createReadStream(file).pipe(req);
      });
      const seconds = (performance.now() - t0) / 1000;
      if (answer.status !== 200) throw new Error(`bulk load failed: ${answer.status} ${answer.body}`);
      const rssLoadedMiB = await settledRss(empty.pid);
      results.push({ path: 'POST /v2/admin/skus:bulk (NDJSON)', skus: count, seconds, rssEmptyMiB, rssLoadedMiB, bytesPerSku: ((rssLoadedMiB - rssEmptyMiB) * 1048576) / count });
    } finally {
      await stopServer(empty);
    }
    const seeded = await startServer({ kind: 'service', env: { ...memoryOnly, LOG_LEVEL: 'info', SEED_FILE: file } }, WORKERS);
    try {
      const rssLoadedMiB = await settledRss(seeded.pid);
      const logged = /"skus":(\d+),"ms":(\d+)[^\n]*"msg":"SEED_FILE loaded"/.exec(seeded.output());
      if (!logged || Number(logged[1]) !== count) throw new Error('the SEED_FILE load was not logged');
      results.push({ path: 'SEED_FILE at start-up (NDJSON)', skus: count, seconds: Number(logged[2]) / 1000, rssEmptyMiB, rssLoadedMiB, bytesPerSku: ((rssLoadedMiB - rssEmptyMiB) * 1048576) / count });
    } finally {
      await stopServer(seeded);
    }
  } finally {
    rmSync(file, { force: true });
  }
  return results;
}

function chart(cells: Cell[]): string {
  const targets = [...new Set(cells.map((c) => c.target))];
  const conns = [...new Set(cells.map((c) => c.connections))];
  const colors = ['#9ecae1', '#4292c6', '#08519c', '#08306b'];
  const max = Math.max(...cells.map((c) => c.median.rps), 1);
  const width = 140 + targets.length * (conns.length * 18 + 30);
  const height = 440;
  const plotTop = 50;
  const plotBottom = 300;
  const y = (v: number) => plotBottom - (v / max) * (plotBottom - plotTop);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="20" y="25" font-size="16" font-weight="bold">SuperStock: requests per second by lane and connections (median of ${REPEATS}; CPU µs per request above each group at the highest count)</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    parts.push(`<line x1="90" x2="${width - 20}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="84" y="${y(v) + 4}" text-anchor="end">${Math.round(v)}</text>`);
  }
  targets.forEach((t, ti) => {
    const x0 = 100 + ti * (conns.length * 18 + 30);
    let top = plotBottom;
    conns.forEach((c, ci) => {
      const cell = cells.find((k) => k.target === t && k.connections === c);
      if (!cell) return;
      const x = x0 + ci * 18;
      top = Math.min(top, y(cell.median.rps));
      parts.push(`<rect x="${x}" y="${y(cell.median.rps)}" width="16" height="${plotBottom - y(cell.median.rps)}" fill="${colors[ci % colors.length]}"/>`);
    });
    const last = cells.find((k) => k.target === t && k.connections === conns.at(-1));
    if (last) parts.push(`<text x="${x0}" y="${top - 6}" font-size="10">${last.cpuMedianUs.toFixed(0)} µs</text>`);
    parts.push(`<text transform="translate(${x0 + 8},${plotBottom + 12}) rotate(35)">${t}</text>`);
  });
  conns.forEach((c, ci) => parts.push(`<rect x="${width - 150}" y="${40 + ci * 18}" width="12" height="12" fill="${colors[ci % colors.length]}"/><text x="${width - 132}" y="${50 + ci * 18}">${c} connections</text>`));
  parts.push('</svg>');
  return parts.join('\n');
}

function cellAt(cells: Cell[], target: string, connections: number, workers = WORKERS): Cell | undefined {
  return cells.find((c) => c.target === target && c.connections === connections && c.workers === workers);
}

function table(cells: Cell[]): string {
  const rows = [
    '| target | connections | req/s (median) | spread (min–max) | server CPU µs/req | + store CPU µs/req | p50 ms | p99 ms | req/s × express no-op | CPU × express no-op | non-2xx |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const c of cells) {
    const base = cellAt(cells, 'express no-op', c.connections, c.workers);
    const dep = c.median.dependencyCpuUs;
    rows.push(
      `| ${c.target} | ${c.connections} | ${Math.round(c.median.rps)} | ${Math.round(c.min)}–${Math.round(c.max)} | ${c.cpuMedianUs.toFixed(1)} | ${dep === null ? '—' : dep.toFixed(1)} | ${c.median.p50} | ${c.median.p99} | ${base ? (c.median.rps / base.median.rps).toFixed(2) : '—'} | ${base ? (c.cpuMedianUs / base.cpuMedianUs).toFixed(2) : '—'} | ${c.median.non2xx} |`,
    );
  }
  return rows.join('\n');
}

interface Verdict {
  readonly target: string;
  readonly goal: string;
  readonly measured: string;
  /** null: reported, no goal (or not measured in this run). */
  readonly met: boolean | null;
  /** A miss no larger than this run's A/A gap at that concurrency (the gap, as a fraction). */
  readonly withinNoise?: number;
}

/**
 * How far the A/A pair (`atomic` and `atomic (again)`: two identical servers) was apart at
 * `connections`, round by round: the widest relative gap of req/s and of CPU per request in any
 * round (the rounds interleave, so each pair was measured moments apart). Null without the pair.
 */
function noiseAt(cells: Cell[], connections: number): { rps: number; cpu: number; rounds: string } | null {
  const a = cellAt(cells, 'atomic', connections);
  const b = cellAt(cells, 'atomic (again)', connections);
  if (!a || !b) return null;
  const pairs = a.runs.flatMap((x, i): Array<readonly [Run, Run]> => {
    const y = b.runs[i];
    return y !== undefined && x.rps > 0 && y.rps > 0 ? [[x, y]] : [];
  });
  const gap = (ratios: number[]) => Math.max(0, ...ratios.map((r) => Math.max(r, 1 / r) - 1));
  const rpsRatios = pairs.map(([x, y]) => y.rps / x.rps);
  const cpuRatios = pairs.map(([x, y]) => y.cpuUs / x.cpuUs);
  const range = (rs: number[]) => `${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)}×`;
  return { rps: gap(rpsRatios), cpu: gap(cpuRatios), rounds: `req/s ${range(rpsRatios)}, CPU ${range(cpuRatios)} by round` };
}

function verdicts(cells: Cell[], loads: BulkLoad[]): Verdict[] {
  const out: Verdict[] = [];
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
  /** A ratio target: met, or missed — and whether by less than the run's A/A gap `noise`. */
  const target = (name: string, value: number, goal: number, atLeast: boolean, noise: number | undefined): Verdict => {
    const met = atLeast ? value >= goal : value <= goal;
    const shortfall = atLeast ? goal / value - 1 : value / goal - 1;
    return { target: name, goal: `${atLeast ? '≥' : '≤'} ${goal.toFixed(2)}×`, measured: `${value.toFixed(2)}×`, met, ...(!met && noise !== undefined && shortfall <= noise ? { withinNoise: noise } : {}) };
  };
  const noiseBy = new Map([64, 256].map((at) => [at, noiseAt(cells, at)] as const));
  for (const [at, noise] of noiseBy) {
    if (noise) out.push({ target: `A/A: atomic (again) ÷ atomic @${at}, two identical servers`, goal: 'reported', measured: noise.rounds, met: null });
  }
  // Durable in-memory lanes beside the same lane without durability.
  for (const [at, noise] of noiseBy) {
    for (const lane of MEMORY_LANES) {
      const plain = cellAt(cells, lane, at);
      const durable = cellAt(cells, `${lane}, durable`, at);
      if (!plain || !durable) continue;
      out.push(target(`${lane}, durable ÷ ${lane} @${at}: req/s`, durable.median.rps / plain.median.rps, 0.8, true, noise?.rps));
      out.push(target(`${lane}, durable ÷ ${lane} @${at}: CPU per buy`, durable.cpuMedianUs / plain.cpuMedianUs, 1.25, false, noise?.cpu));
    }
  }
  const express = cellAt(cells, 'express no-op', 64);
  const redis = cellAt(cells, 'redis', 64);
  const noise64 = noiseBy.get(64);
  for (const lane of MEMORY_LANES) {
    const cell = cellAt(cells, lane, 64);
    if (!cell) continue;
    if (express) {
      out.push(target(`${lane} ÷ express no-op @64: req/s`, cell.median.rps / express.median.rps, 1, true, noise64?.rps));
      out.push(target(`${lane} ÷ express no-op @64: CPU per request`, cell.cpuMedianUs / express.cpuMedianUs, 1, false, noise64?.cpu));
    }
    if (redis) {
      out.push({ target: `${lane} ÷ redis lane @64: req/s`, goal: 'reported', measured: ratio(cell.median.rps, redis.median.rps), met: null });
      const redisTotal = redis.cpuMedianUs + (redis.median.dependencyCpuUs ?? 0);
      out.push({ target: `redis lane ÷ ${lane} @64: CPU per buy, Redis's own included`, goal: 'reported', measured: ratio(redisTotal, cell.cpuMedianUs), met: null });
    }
  }
  const combined = cellAt(cells, 'db combined', 64);
  const single = cellAt(cells, 'db single', 64);
  if (combined && single) out.push({ target: 'db combined ÷ db single @64, one SKU: req/s', goal: '≥ 5×', measured: ratio(combined.median.rps, single.median.rps), met: combined.median.rps / single.median.rps >= 5 });
  for (const load of loads) {
    const full = load.skus >= 1_000_000;
    out.push({ target: `${load.skus.toLocaleString('en')} SKUs by ${load.path}: resident`, goal: '≤ 256 MiB', measured: `${load.rssLoadedMiB.toFixed(0)} MiB`, met: full ? load.rssLoadedMiB <= 256 : null });
    out.push({ target: `${load.skus.toLocaleString('en')} SKUs by ${load.path}: load time`, goal: '≤ 10 s', measured: `${load.seconds.toFixed(1)} s`, met: full ? load.seconds <= 10 : null });
  }
  return out;
}

async function main(): Promise<void> {
  if (!process.env.MONGO_URL || !process.env.REDIS_URL) throw new Error('set MONGO_URL and REDIS_URL (make bench starts both)');
  mkdirSync(OUT, { recursive: true });
  const startedAt = new Date().toISOString();
  const loadBefore = loadavg();
  const command = SMOKE ? 'make bench-smoke' : QUICK ? 'make bench-quick' : 'make bench';
  console.log(`bench: ${TARGETS.length} targets × ${CONNECTIONS.join('/')} connections, interleaved: ${WARMUP}s warm-up + ${REPEATS} rounds × ${DURATION}s, ${WORKERS} workers, wrk -t1`);
  const clock = new DependencyClock(process.env.REDIS_URL, ROOT);
  if (profile !== null) {
    let profiled: Cell[];
    try {
      profiled = await runTargets(TARGETS, CONNECTIONS, WORKERS, clock);
    } finally {
      clock.close();
    }
    // The servers wrote their profiles as they stopped. The bench's own reading of the same rounds goes beside them.
    writeFileSync(join(OUT, 'bench.json'), JSON.stringify({ startedAt, load: { before: loadBefore, after: loadavg() }, cells: profiled }, null, 2));
    profile.finish(`\n### The same rounds as \`make bench\` reads them (medians; the store's own CPU beside the server's)\n\n${table(profiled)}\n`);
    return;
  }
  let cells: Cell[];
  let scaling: Array<{ target: string; connections: number; oneWorker: number; allWorkers: number; oneWorkerCpuUs: number; allWorkersCpuUs: number }>;
  try {
    cells = await runTargets(TARGETS, CONNECTIONS, WORKERS, clock);
    const scalingTargets = TARGETS.filter((t) => (MEMORY_LANES as readonly string[]).includes(t.name));
    const scalingAt = CONNECTIONS.includes(64) ? 64 : (CONNECTIONS.at(-1) as number);
    const oneWorker = WORKERS > 1 && !SMOKE ? await runTargets(scalingTargets, [scalingAt], 1, clock) : [];
    scaling = oneWorker.map((c) => {
      const all = cellAt(cells, c.target, scalingAt);
      return { target: c.target, connections: scalingAt, oneWorker: c.median.rps, allWorkers: all?.median.rps ?? 0, oneWorkerCpuUs: c.cpuMedianUs, allWorkersCpuUs: all?.cpuMedianUs ?? 0 };
    });
  } finally {
    clock.close();
  }

  console.log(`bulk loads: ${SKUS} SKUs through SEED_FILE and POST /v2/admin/skus:bulk`);
  const loads = await bulkLoads(SKUS);
  const results = verdicts(cells, loads);
  const loadAfter = loadavg();

  const machine = { nproc: WORKERS, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${process.platform} ${process.arch}` };
  const load = { before: loadBefore, after: loadAfter, note: process.env.BENCH_LOAD ?? null };
  writeFileSync(join(OUT, 'bench.json'), JSON.stringify({ startedAt, machine, load, command, settings: { DURATION, WARMUP, REPEATS, CONNECTIONS, WORKERS, loadGenerator: 'wrk -t1' }, cells, scaling, loads, verdicts: results }, null, 2));
  writeFileSync(join(OUT, 'bench.svg'), chart(cells));
  const png = spawnSync('rsvg-convert', ['-o', join(OUT, 'bench.png'), join(OUT, 'bench.svg')]);
  if (png.status !== 0) throw new Error('rsvg-convert failed (apt-get install librsvg2-bin): ' + String(png.stderr));

  const verdictMark = (v: Verdict) =>
    v.met === null
      ? v.goal === 'reported'
        ? ''
        : 'n/a (smaller run)'
      : v.met
        ? 'met'
        : v.withinNoise !== undefined
          ? `missed, within this run's A/A gap (${(v.withinNoise * 100).toFixed(0)} %)`
          : 'missed';
  const markdown = [
    `# Benchmarks`,
    '',
    `Latest \`${command}\` run, ${startedAt}, on ${machine.nproc} cores (${machine.cpu}), Node ${machine.node}.`,
    `Load average ${loadBefore.map((l) => l.toFixed(1)).join(' / ')} before and ${loadAfter.map((l) => l.toFixed(1)).join(' / ')} after${load.note ? ` (${load.note})` : ''}.`,
    `The load generator (wrk, one thread, its own process) shares those cores with the server: absolute req/s are this machine's at that`,
    `moment; the ratios, measured side by side in interleaved rounds, are the point, and the server CPU per request (the server`,
    `process's own CPU time over the run, every thread, divided by the requests served) is the figure the shared cores distort least.`,
    `Every lane sells one hot SKU with enough stock that nothing sells out; the service runs standalone with \`DURABILITY=none\``,
    `(the original's comparison), plus the \`DURABILITY=sync\` rows. Each cell: ${WARMUP}s warm-up, then the median of ${REPEATS} × ${DURATION}s`,
    `runs, one per round, with its spread. "+ store CPU" is Redis's (INFO cpu) or the MongoDB wire server's own CPU per request.`,
    '',
    '![requests per second by lane](benchmarks.png)',
    '',
    table(cells),
    '',
    '## Targets',
    '',
    'The A/A rows measure the atomic lane on two identical servers side by side: how far this run could put two measurements of',
    'the same thing apart, round by round, at that concurrency. A ratio that misses its goal by less than that gap is marked',
    'within the A/A gap: this run cannot tell it from a pass (bench/ANALYSIS.md, "The remaining misses profiled").',
    '',
    '| target | goal | measured | |',
    '|---|---|---|---|',
    ...results.map((v) => `| ${v.target} | ${v.goal} | ${v.measured} | ${verdictMark(v)} |`),
    '',
    '## Scaling: 1 worker vs all workers',
    '',
    '| lane | connections | 1 worker req/s | all workers req/s | ratio | CPU µs/req, 1 worker | CPU µs/req, all |',
    '|---|---|---|---|---|---|---|',
    ...scaling.map((s) => `| ${s.target} | ${s.connections} | ${Math.round(s.oneWorker)} | ${Math.round(s.allWorkers)} | ${(s.allWorkers / s.oneWorker).toFixed(2)}× | ${s.oneWorkerCpuUs.toFixed(1)} | ${s.allWorkersCpuUs.toFixed(1)} |`),
    '',
    '## A million SKUs: bulk load and memory',
    '',
    `An in-memory replica (\`DURABILITY=none\`, no MongoDB or Redis: the replica's own memory), ${WORKERS} workers, SKUs named`,
    '`SKU-0000000` … (11 characters). Resident set of the whole process (every thread), settled for a second.',
    '',
    '| path | SKUs | load time | resident empty | resident loaded | bytes per SKU |',
    '|---|---|---|---|---|---|',
    ...loads.map((l) => `| ${l.path} | ${l.skus.toLocaleString('en')} | ${l.seconds.toFixed(1)} s | ${l.rssEmptyMiB.toFixed(0)} MiB | ${l.rssLoadedMiB.toFixed(0)} MiB | ${l.bytesPerSku.toFixed(0)} |`),
    '',
  ].join('\n');
  writeFileSync(join(OUT, 'bench.md'), markdown);
  if (WRITE_DOCS) {
    // The analysis is written by a person against a run; it travels with the latest table.
    keepSections(join(ROOT, 'docs', 'benchmarks.md'), `${markdown}\n${readFileSync(join(ROOT, 'bench', 'ANALYSIS.md'), 'utf8')}`);
    copyFileSync(join(OUT, 'bench.png'), join(ROOT, 'docs', 'benchmarks.png'));
  }
  console.log(`\n${markdown}\nwritten to ${OUT}`);
}

await main();
