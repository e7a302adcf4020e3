/**
 * The benchmark harness, in seconds instead of minutes, so it cannot rot: it must run end to
 * end and produce a well-formed JSON, Markdown table and chart.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './harness/deps.js';

interface BenchJson {
  cells: Array<{ target: string; connections: number; cpuMedianUs: number; median: { rps: number; p99: number; requests: number } }>;
  loads: Array<{ path: string; skus: number; rssLoadedMiB: number; seconds: number; bytesPerSku: number }>;
  verdicts: Array<{ target: string; measured: string }>;
  machine: { nproc: number; node: string };
}

test('make bench-smoke produces req/s and server CPU per request for every cell, both bulk loads, a table and a PNG chart', async () => {
  const out = mkdtempSync(join(tmpdir(), 'superstock-bench-'));
  const exitCode = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'bench', 'run.js')], {
      env: { ...process.env, BENCH_SMOKE: '1', BENCH_OUT: out },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    child.once('exit', resolve);
  });
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
