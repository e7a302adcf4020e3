/**
 * The benchmark harnesses, in seconds instead of minutes, so they cannot rot: the lane bench and
 * the flood bench must run end to end and produce well-formed JSON and Markdown (and the lane
 * bench its chart). Figures are only checked for being there; what is asserted beyond that is
 * correctness the flood must keep whatever the load (answers counted once, Retry-After on every
 * 503, sold == the 200s). `make bench-profile`'s path (the lane bench under `node --cpu-prof`)
 * must leave every server thread's profile and a summary of each target's measured rounds.
 * Budget: ~60 s for the lane bench, ~20–35 s for the flood bench, ~15 s for the profiled one.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './harness/deps.js';

interface BenchJson {
  cells: Array<{ target: string; connections: number; cpuMedianUs: number; median: { rps: number; p99: number; requests: number } }>;
  loads: Array<{ path: string; skus: number; rssLoadedMiB: number; seconds: number; bytesPerSku: number }>;
  verdicts: Array<{ target: string; measured: string }>;
  machine: { nproc: number; node: string };
}

/** Runs `dist/bench/<script>` in its smoke size, writing into a fresh folder; resolves with its exit code and the folder. */
async function runSmoke(script: string, extraEnv: (out: string) => Record<string, string> = () => ({})): Promise<{ exitCode: number | null; out: string }> {
  const out = mkdtempSync(join(tmpdir(), 'superstock-bench-'));
  const exitCode = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'bench', script)], {
      env: { ...process.env, BENCH_SMOKE: '1', BENCH_OUT: out, ...extraEnv(out) },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    child.once('exit', resolve);
  });
  return { exitCode, out };
}

test('make bench-smoke produces req/s and server CPU per request for every cell, both bulk loads, a table and a PNG chart', async () => {
  const { exitCode, out } = await runSmoke('run.js');
  expect(exitCode).toBe(0);

  const json = JSON.parse(readFileSync(join(out, 'bench.json'), 'utf8')) as BenchJson;
  expect(json.cells.map((c) => `${c.target}@${c.connections}`).sort()).toEqual(['atomic@1', 'atomic@16', 'express no-op@1', 'express no-op@16']);
  for (const cell of json.cells) {
    expect(cell.median.rps).toBeGreaterThan(0);
    expect(cell.median.requests).toBeGreaterThan(0);
    // Server CPU per request, from the server's own CPU time: present and plausible (0.1 µs – 100 ms).
    expect(cell.cpuMedianUs).toBeGreaterThan(0.1);
    expect(cell.cpuMedianUs).toBeLessThan(100_000);
  }
  expect(json.loads.map((l) => [l.path, l.skus])).toEqual([
    ['POST /v2/admin/skus:bulk (NDJSON)', 2000],
    ['SEED_FILE at start-up (NDJSON)', 2000],
  ]);
  for (const load of json.loads) expect(load.rssLoadedMiB).toBeGreaterThan(0);
  expect(json.verdicts.map((v) => v.target)).toEqual(expect.arrayContaining(['2,000 SKUs by SEED_FILE at start-up (NDJSON): resident']));
  expect(json.machine.node).toMatch(/^v24\./);

  const markdown = readFileSync(join(out, 'bench.md'), 'utf8');
  expect(markdown).toContain('| target | connections | req/s (median) | spread (min–max) | server CPU µs/req | + store CPU µs/req | p50 ms | p99 ms | req/s × express no-op | CPU × express no-op | non-2xx |');
  expect(markdown).toMatch(/\| atomic \| 16 \| \d+ \| \d+–\d+ \| [\d.]+ \|/);
  const png = readFileSync(join(out, 'bench.png'));
  expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
}, 180_000);

test('make bench-profile, tiny: every server thread profiled, each target\'s rounds summarised per request side by side', async () => {
  const { exitCode, out } = await runSmoke('run.js', (dir) => ({ BENCH_CPU_PROF_DIR: dir, BENCH_TARGETS: 'express no-op,atomic', BENCH_CONNECTIONS: '16' }));
  expect(exitCode).toBe(0);

  const windows = JSON.parse(readFileSync(join(out, 'windows.json'), 'utf8')) as Array<{ mode: string; acked: number; startUs: number; endUs: number; replicas: Array<{ pid: number; threadsAfter: unknown[] }> }>;
  expect(windows.map((w) => w.mode)).toEqual(['express no-op @16', 'atomic @16']);
  for (const window of windows) {
    expect(window.acked).toBeGreaterThan(0);
    expect(window.endUs).toBeGreaterThan(window.startUs);
    expect(window.replicas[0]?.threadsAfter.length).toBeGreaterThan(1);
  }
  // Each server's main thread (0) and its worker threads wrote a profile as it stopped.
  const profiles = readdirSync(out).map((name) => /^CPU\.\d+\.\d+\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(name)).filter((m) => m !== null);
  for (const pid of windows.map((w) => String(w.replicas[0]?.pid))) {
    const threads = profiles.filter((m) => m[1] === pid).map((m) => Number(m[2]));
    expect(threads).toContain(0);
    expect(threads.some((t) => t > 0)).toBe(true);
  }
  const summary = readFileSync(join(out, 'profile.md'), 'utf8');
  expect(summary).toContain('| category | express no-op @16 µs/buy | atomic @16 µs/buy | atomic @16 − express no-op @16 |');
  expect(summary).toMatch(/\| \*\*all\*\* \| \*\*[1-9][\d.]*\*\* \| \*\*[1-9][\d.]*\*\* \|/);
  expect(summary).toMatch(/\| atomic \| 16 \| \d+ \| \d+–\d+ \| [\d.]+ \|/);
}, 120_000);

interface FloodJson {
  cells: Array<{ system: string; connections: number; waitRetryAfter: boolean; admittedRps: number; peakRssMiB: number; result: { sent: number; refusedWithRetryAfter: number; unanswered: number; statuses: Record<string, number>; admitted: { count: number; p99: number }; refused: { count: number } } }>;
  outcomes: Array<{ system: string; acknowledged: number; sold: number; unanswered: number; exact: boolean; leaseEvents: { stepDowns: number; termsBegun: number; failedRounds: number } | null }>;
}

test('the flood bench, tiny: admitted and refused answers apart, every 503 with Retry-After, sold == the 200s counted, lease events reported', async () => {
  const { exitCode, out } = await runSmoke('flood.js');
  expect(exitCode).toBe(0);

  const json = JSON.parse(readFileSync(join(out, 'flood.json'), 'utf8')) as FloodJson;
  expect(json.cells.map((c) => `${c.system}@${c.connections}${c.waitRetryAfter ? ', waiting Retry-After' : ''}`)).toEqual(['cluster-primary@16', 'cluster-primary@200', 'cluster-primary@200, waiting Retry-After']);
  for (const cell of json.cells) {
    expect(cell.result.admitted.count).toBeGreaterThan(0);
    expect(cell.result.admitted.p99).toBeGreaterThan(0);
    expect(cell.peakRssMiB).toBeGreaterThan(0);
    // Every answer is counted once, by its class: the load generator keeps them apart.
    const answered = Object.values(cell.result.statuses).reduce((a, b) => a + b, 0);
    expect(answered + cell.result.unanswered).toBe(cell.result.sent);
    expect(cell.result.refused.count).toBe(cell.result.statuses['503'] ?? 0);
    // A refusal always says when to retry.
    expect(cell.result.refusedWithRetryAfter).toBe(cell.result.refused.count);
  }
  const [outcome] = json.outcomes;
  // The exact-count invariant, whatever the load: sold is the 200s counted (or within the unknowns).
  expect(outcome?.exact).toBe(true);
  expect(outcome?.sold).toBeGreaterThanOrEqual(outcome?.acknowledged ?? Number.NaN);
  expect(outcome?.leaseEvents).toEqual({ stepDowns: expect.any(Number), termsBegun: expect.any(Number), failedRounds: expect.any(Number) });
  expect(readFileSync(join(out, 'flood.md'), 'utf8')).toContain('| system | connections | after a 503 | admitted req/s | refused (503) | 503 with Retry-After | admitted p50 ms | admitted p99 ms |');
}, 180_000);
