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
  cells: Array<{ target: string; connections: number; median: { rps: number; p99: number } }>;
  memory: { skus: number; rssLoadedMiB: number };
  machine: { nproc: number; node: string };
}

test('make bench-smoke produces figures for every cell, a table and a PNG chart', async () => {
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
  for (const cell of json.cells) expect(cell.median.rps).toBeGreaterThan(0);
  expect(json.memory.skus).toBe(2000);
  expect(json.memory.rssLoadedMiB).toBeGreaterThan(0);
  expect(json.machine.node).toMatch(/^v24\./);

  const markdown = readFileSync(join(out, 'bench.md'), 'utf8');
  expect(markdown).toContain('| target | connections | req/s (median) | spread (min–max) | p50 ms | p99 ms | × express no-op | non-2xx |');
  expect(markdown).toMatch(/\| atomic \| 16 \| \d+ \|/);
  const png = readFileSync(join(out, 'bench.png'));
  expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
}, 180_000);
