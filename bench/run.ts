/**
 * `make bench`: every lane side by side with the no-op ceilings, in one run on one machine, so
 * the ratios hold even when the machine is noisy. The load generator (autocannon) runs in its own
 * process; each cell has a warm-up that is thrown away, then BENCH_REPEATS measured runs whose
 * median is reported with its spread. Also: 1 worker vs all workers, and resident memory with
 * BENCH_SKUS SKUs loaded. Writes bench/results/ (raw JSON, Markdown, SVG + PNG chart) and, on a
 * full run, docs/benchmarks.md.
 *
 * Environment: BENCH_DURATION (s, 5), BENCH_WARMUP (s, 2), BENCH_REPEATS (3),
 * BENCH_CONNECTIONS (1,16,64,256), BENCH_TARGETS (all), BENCH_SKUS (1000000), BENCH_SMOKE (tiny
 * run for the test suite), BENCH_OUT (bench/results), MONGO_URL / REDIS_URL (required).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { availableParallelism, cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { MAX_STOCK } from '../src/config.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const SMOKE = process.env.BENCH_SMOKE === '1';
const env = (name: string, fallback: string): string => process.env[name] ?? fallback;
const DURATION = Number(env('BENCH_DURATION', SMOKE ? '1' : '5'));
const WARMUP = Number(env('BENCH_WARMUP', SMOKE ? '1' : '2'));
const REPEATS = Number(env('BENCH_REPEATS', SMOKE ? '1' : '3'));
const CONNECTIONS = env('BENCH_CONNECTIONS', SMOKE ? '1,16' : '1,16,64,256').split(',').map(Number);
const SKUS = Number(env('BENCH_SKUS', SMOKE ? '2000' : '1000000'));
const OUT = resolve(env('BENCH_OUT', join(ROOT, 'bench', 'results')));
const WORKERS = availableParallelism();
const TOKEN = randomBytes(16).toString('hex');
// As much as a SKU may hold (MAX_STOCK): no run sells it out.
const STOCK = MAX_STOCK;

type ServerSpec = { readonly kind: 'noop'; readonly mode: 'http' | 'express' } | { readonly kind: 'service'; readonly env: Record<string, string> };

interface Target {
  readonly name: string;
  readonly server: string;
  readonly path: string;
}

interface Run {
  readonly rps: number;
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
}

const SERVICE_ENV = { ELECTION: 'none', DURABILITY: 'none', SEED_SKUS: 'BENCH,NVDA', INITIAL_STOCK: String(STOCK), ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'warn' };
const SERVERS: Record<string, ServerSpec> = {
  'noop-http': { kind: 'noop', mode: 'http' },
  'noop-express': { kind: 'noop', mode: 'express' },
  service: { kind: 'service', env: { ...SERVICE_ENV, DB_LANE_MODE: 'combined' } },
  'service-db-single': { kind: 'service', env: { ...SERVICE_ENV, DB_LANE_MODE: 'single' } },
  'service-durable': { kind: 'service', env: { ...SERVICE_ENV, DURABILITY: 'sync' } },
};
const ALL_TARGETS: Target[] = [
  { name: 'node:http no-op', server: 'noop-http', path: '/noop' },
  { name: 'express no-op', server: 'noop-express', path: '/noop' },
  { name: 'atomic', server: 'service', path: '/v2/lanes/atomic/skus/BENCH/buy' },
  { name: 'signal', server: 'service', path: '/v2/lanes/signal/skus/BENCH/buy' },
  { name: 'lock', server: 'service', path: '/v2/lanes/lock/skus/BENCH/buy' },
  { name: 'ManyStock (atomic, v1)', server: 'service', path: '/api/v1/ManyStock/Cache/BuyFastAtomic/NVDA' },
  { name: 'redis', server: 'service', path: '/v2/lanes/redis/skus/BENCH/buy' },
  { name: 'db combined', server: 'service', path: '/v2/lanes/db/skus/BENCH/buy' },
  { name: 'db single', server: 'service-db-single', path: '/v2/lanes/db/skus/BENCH/buy' },
  { name: 'atomic, durable', server: 'service-durable', path: '/v2/lanes/atomic/skus/BENCH/buy' },
];
const SMOKE_TARGETS = ['express no-op', 'atomic'];
const wanted = process.env.BENCH_TARGETS?.split(',') ?? (SMOKE ? SMOKE_TARGETS : ALL_TARGETS.map((t) => t.name));
const TARGETS = ALL_TARGETS.filter((t) => wanted.includes(t.name));

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      s.close(() => done(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Started {
  readonly base: string;
  readonly child: ChildProcess;
}

async function startServer(spec: ServerSpec, workers: number, extra: Record<string, string> = {}): Promise<Started> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const childEnv = { ...process.env, PORT: String(port), METRICS_PORT: String(await freePort()), HOST: '127.0.0.1', WORKERS: String(workers), ...extra };
  if (spec.kind === 'noop') {
    const child = spawn(process.execPath, [join(ROOT, 'dist', 'bench', 'noop-server.js'), spec.mode], { env: childEnv, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await until('no-op server', async () => out.includes('ready'));
    return { base, child };
  }
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'main.js')], {
    env: { ...childEnv, MONGO_DB: `bench_${randomBytes(4).toString('hex')}`, ...spec.env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await until('service ready', async () => (await fetch(`${base}/readyz`)).status === 200);
  return { base, child };
}

async function stopServer({ child }: Started): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** One autocannon run in its own process; its JSON summary parsed. */
function autocannon(url: string, connections: number, seconds: number): Run {
  const result = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'autocannon', 'autocannon.js'), '--json', '-c', String(connections), '-d', String(seconds), '-m', 'POST', url], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`autocannon failed: ${result.stderr}`);
  const summary = JSON.parse(result.stdout) as { requests: { average: number }; latency: { p50: number; p99: number }; non2xx: number; errors: number };
  return { rps: summary.requests.average, p50: summary.latency.p50, p99: summary.latency.p99, non2xx: summary.non2xx, errors: summary.errors };
}

function medianOf(runs: Run[]): Run {
  const sorted = [...runs].sort((a, b) => a.rps - b.rps);
  return sorted[Math.floor(sorted.length / 2)] as Run;
}

async function measure(target: Target, base: string, connections: number, workers: number): Promise<Cell> {
  if (target.server.startsWith('service')) {
    // Plenty of stock in every lane before each cell, so nothing sells out mid-run.
    const res = await fetch(`${base}/v2/admin/skus/BENCH`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ stock: STOCK }) });
    if (res.status >= 300) throw new Error(`could not reset stock: ${res.status} ${await res.text()}`);
  }
  const url = base + target.path;
  autocannon(url, connections, WARMUP);
  const runs = Array.from({ length: REPEATS }, () => autocannon(url, connections, DURATION));
  const rps = runs.map((r) => r.rps);
  const cell: Cell = { target: target.name, connections, workers, runs, median: medianOf(runs), min: Math.min(...rps), max: Math.max(...rps) };
  console.log(`  ${target.name.padEnd(24)} c=${String(connections).padEnd(4)} w=${workers}  ${Math.round(cell.median.rps)} req/s  p99 ${cell.median.p99} ms${cell.median.non2xx ? `  non-2xx ${cell.median.non2xx}` : ''}`);
  return cell;
}

async function runTargets(targets: Target[], connections: number[], workers: number): Promise<Cell[]> {
  const cells: Cell[] = [];
  for (const serverName of [...new Set(targets.map((t) => t.server))]) {
    const spec = SERVERS[serverName];
    if (!spec) throw new Error(`unknown server ${serverName}`);
    const started = await startServer(spec, workers);
    try {
      for (const target of targets.filter((t) => t.server === serverName)) {
        for (const c of connections) cells.push(await measure(target, started.base, c, workers));
      }
    } finally {
      await stopServer(started);
    }
  }
  return cells;
}

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(line?.split(/\s+/)[1] ?? 0) / 1024;
}

/** Resident memory of the whole service with `count` SKUs created through the admin API. */
async function memoryWithSkus(count: number): Promise<{ skus: number; rssEmptyMiB: number; rssLoadedMiB: number; loadSeconds: number }> {
  const started = await startServer({ kind: 'service', env: { ...SERVICE_ENV, MONGO_URL: '', REDIS_URL: '', MAX_SKUS: String(count + 10) } }, WORKERS, { MONGO_URL: '', REDIS_URL: '' });
  try {
    const pid = started.child.pid as number;
    const rssEmptyMiB = rssMiB(pid);
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });
    const { port } = new URL(started.base);
    let next = 0;
    const t0 = Date.now();
    const put = (i: number) =>
      new Promise<void>((done, fail) => {
        const body = '{"stock":100}';
        const req = request({ host: '127.0.0.1', port, method: 'PUT', path: `/v2/admin/skus/M${i}`, agent, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 201 ? done() : fail(new Error(`PUT M${i}: ${res.statusCode}`))));
        });
        req.on('error', fail);
        req.end(body);
      });
    await Promise.all(Array.from({ length: 64 }, async () => {
      for (let i = next++; i < count; i = next++) await put(i);
    }));
    agent.destroy();
    return { skus: count, rssEmptyMiB, rssLoadedMiB: rssMiB(pid), loadSeconds: (Date.now() - t0) / 1000 };
  } finally {
    await stopServer(started);
  }
}

function chart(cells: Cell[]): string {
  const targets = [...new Set(cells.map((c) => c.target))];
  const conns = [...new Set(cells.map((c) => c.connections))];
  const colors = ['#9ecae1', '#4292c6', '#08519c', '#08306b'];
  const max = Math.max(...cells.map((c) => c.median.rps), 1);
  const width = 140 + targets.length * (conns.length * 18 + 30);
  const height = 420;
  const plotTop = 50;
  const plotBottom = 300;
  const y = (v: number) => plotBottom - (v / max) * (plotBottom - plotTop);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="20" y="25" font-size="16" font-weight="bold">SuperStock: requests per second by lane and connections (median of ${REPEATS})</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    parts.push(`<line x1="90" x2="${width - 20}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="84" y="${y(v) + 4}" text-anchor="end">${Math.round(v)}</text>`);
  }
  targets.forEach((t, ti) => {
    const x0 = 100 + ti * (conns.length * 18 + 30);
    conns.forEach((c, ci) => {
      const cell = cells.find((k) => k.target === t && k.connections === c);
      if (!cell) return;
      const x = x0 + ci * 18;
      parts.push(`<rect x="${x}" y="${y(cell.median.rps)}" width="16" height="${plotBottom - y(cell.median.rps)}" fill="${colors[ci % colors.length]}"/>`);
    });
    parts.push(`<text transform="translate(${x0 + 8},${plotBottom + 12}) rotate(35)">${t}</text>`);
  });
  conns.forEach((c, ci) => parts.push(`<rect x="${width - 150}" y="${40 + ci * 18}" width="12" height="12" fill="${colors[ci % colors.length]}"/><text x="${width - 132}" y="${50 + ci * 18}">${c} connections</text>`));
  parts.push('</svg>');
  return parts.join('\n');
}

function table(cells: Cell[]): string {
  const baseline = (c: number) => cells.find((k) => k.target === 'express no-op' && k.connections === c && k.workers === WORKERS)?.median.rps;
  const rows = ['| target | connections | req/s (median) | spread (min–max) | p50 ms | p99 ms | × express no-op | non-2xx |', '|---|---|---|---|---|---|---|---|'];
  for (const c of cells) {
    const base = baseline(c.connections);
    rows.push(
      `| ${c.target} | ${c.connections} | ${Math.round(c.median.rps)} | ${Math.round(c.min)}–${Math.round(c.max)} | ${c.median.p50} | ${c.median.p99} | ${base ? (c.median.rps / base).toFixed(2) : '—'} | ${c.median.non2xx} |`,
    );
  }
  return rows.join('\n');
}

function rpsOf(cells: Cell[], target: string, connections: number, workers = WORKERS): number | undefined {
  return cells.find((c) => c.target === target && c.connections === connections && c.workers === workers)?.median.rps;
}

interface Verdict {
  readonly target: string;
  readonly goal: string;
  readonly measured: string;
  readonly pass: boolean | null;
}

function verdicts(cells: Cell[], memory: Awaited<ReturnType<typeof memoryWithSkus>> | null): Verdict[] {
  const at = 64;
  const express = rpsOf(cells, 'express no-op', at);
  const redis = rpsOf(cells, 'redis', at);
  const out: Verdict[] = [];
  for (const lane of ['atomic', 'signal', 'lock']) {
    const r = rpsOf(cells, lane, at);
    if (r === undefined) continue;
    if (express) out.push({ target: `${lane} vs express no-op @${at}`, goal: '≥ 0.90×', measured: `${(r / express).toFixed(2)}×`, pass: r / express >= 0.9 });
    if (redis) out.push({ target: `${lane} vs redis lane @${at}`, goal: '≥ 2×', measured: `${(r / redis).toFixed(2)}×`, pass: r / redis >= 2 });
  }
  const combined = rpsOf(cells, 'db combined', at);
  const single = rpsOf(cells, 'db single', at);
  if (combined && single) out.push({ target: `db combined vs db single @${at}, one SKU`, goal: '≥ 5×', measured: `${(combined / single).toFixed(2)}×`, pass: combined / single >= 5 });
  if (memory) out.push({ target: `resident memory, ${memory.skus.toLocaleString('en')} SKUs`, goal: '≤ 256 MiB', measured: `${memory.rssLoadedMiB.toFixed(0)} MiB`, pass: memory.skus >= 1_000_000 ? memory.rssLoadedMiB <= 256 : null });
  return out;
}

async function main(): Promise<void> {
  if (!process.env.MONGO_URL || !process.env.REDIS_URL) throw new Error('set MONGO_URL and REDIS_URL (make bench starts both)');
  mkdirSync(OUT, { recursive: true });
  const startedAt = new Date().toISOString();
  console.log(`bench: ${TARGETS.length} targets × ${CONNECTIONS.join('/')} connections, ${WARMUP}s warm-up + ${REPEATS}×${DURATION}s, ${WORKERS} workers`);
  const cells = await runTargets(TARGETS, CONNECTIONS, WORKERS);

  const scalingTargets = TARGETS.filter((t) => ['atomic', 'signal', 'lock'].includes(t.name));
  const scalingAt = CONNECTIONS.includes(64) ? 64 : (CONNECTIONS.at(-1) as number);
  const oneWorker = WORKERS > 1 ? await runTargets(scalingTargets, [scalingAt], 1) : [];
  const scaling = oneWorker.map((c) => ({ target: c.target, connections: scalingAt, oneWorker: c.median.rps, allWorkers: rpsOf(cells, c.target, scalingAt) ?? 0 }));

  console.log(`memory: creating ${SKUS} SKUs`);
  const memory = await memoryWithSkus(SKUS);
  const results = verdicts(cells, memory);

  const machine = { nproc: WORKERS, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${process.platform} ${process.arch}` };
  const command = SMOKE ? 'make bench-smoke' : 'make bench';
  writeFileSync(join(OUT, 'bench.json'), JSON.stringify({ startedAt, machine, command, settings: { DURATION, WARMUP, REPEATS, CONNECTIONS, WORKERS }, cells, scaling, memory, verdicts: results }, null, 2));
  const svg = chart(cells);
  writeFileSync(join(OUT, 'bench.svg'), svg);
  const png = spawnSync('rsvg-convert', ['-o', join(OUT, 'bench.png'), join(OUT, 'bench.svg')]);
  if (png.status !== 0) throw new Error('rsvg-convert failed (apt-get install librsvg2-bin): ' + String(png.stderr));

  const markdown = [
    `# Benchmarks`,
    '',
    `Latest \`${command}\` run, ${startedAt}, on ${machine.nproc} cores (${machine.cpu}), Node ${machine.node}. The load generator`,
    `(autocannon, its own process) shares those cores with the server: absolute figures are this machine's; the ratios, measured`,
    `side by side in one run, are the point. Every lane sells one hot SKU with enough stock that nothing sells out; the service`,
    `runs standalone with \`DURABILITY=none\` (the original's comparison), plus one row with \`DURABILITY=sync\`.`,
    `Each cell: ${WARMUP}s warm-up, then the median of ${REPEATS} × ${DURATION}s runs with its spread.`,
    '',
    '![requests per second by lane](benchmarks.png)',
    '',
    table(cells),
    '',
    '## Targets',
    '',
    '| target | goal | measured | |',
    '|---|---|---|---|',
    ...results.map((v) => `| ${v.target} | ${v.goal} | ${v.measured} | ${v.pass === null ? 'n/a (smaller run)' : v.pass ? 'PASS' : 'MISS'} |`),
    '',
    '## Scaling: 1 worker vs all workers',
    '',
    '| lane | connections | 1 worker | all workers | ratio |',
    '|---|---|---|---|---|',
    ...scaling.map((s) => `| ${s.target} | ${s.connections} | ${Math.round(s.oneWorker)} | ${Math.round(s.allWorkers)} | ${(s.allWorkers / s.oneWorker).toFixed(2)}× |`),
    '',
    '## Memory',
    '',
    `Resident set of the whole process (all threads): ${memory.rssEmptyMiB.toFixed(0)} MiB at start with room for ${memory.skus.toLocaleString('en')} SKUs,`,
    `${memory.rssLoadedMiB.toFixed(0)} MiB with all ${memory.skus.toLocaleString('en')} created (through the admin API, ${memory.loadSeconds.toFixed(0)} s).`,
    '',
  ].join('\n');
  writeFileSync(join(OUT, 'bench.md'), markdown);
  if (!SMOKE) {
    // The analysis is written by a person against a run; it travels with the latest table.
    writeFileSync(join(ROOT, 'docs', 'benchmarks.md'), `${markdown}\n${readFileSync(join(ROOT, 'bench', 'ANALYSIS.md'), 'utf8')}`);
    copyFileSync(join(OUT, 'bench.png'), join(ROOT, 'docs', 'benchmarks.png'));
  }
  console.log(`\n${markdown}\nwritten to ${OUT}`);
}

await main();
