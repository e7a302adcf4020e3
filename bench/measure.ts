/**
 * What both benches (`bench/run.ts`, one replica lane by lane; `bench/cluster.ts`, one replica
 * beside three-replica clusters) measure with: free ports for the servers they start, waiting on a
 * condition, a process's resident set, and CPU clocks — its own CPU time from /proc/<pid>/stat (every thread), and
 * Redis's and the MongoDB wire server's, so a row can say what the stores spent beside the service.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';

export type Dependency = 'redis' | 'mongo';

/** The knobs both benches share: BENCH_SMOKE (the tests' tiny run) and BENCH_QUICK set the defaults. */
export const ROOT = resolve(import.meta.dirname, '..', '..');
export const SMOKE = process.env.BENCH_SMOKE === '1';
export const QUICK = process.env.BENCH_QUICK === '1';
export const env = (name: string, fallback: string): string => process.env[name] ?? fallback;
export const DURATION = Number(env('BENCH_DURATION', SMOKE ? '1' : QUICK ? '3' : '5'));
export const WARMUP = Number(env('BENCH_WARMUP', SMOKE ? '1' : QUICK ? '1' : '2'));
export const REPEATS = Number(env('BENCH_REPEATS', SMOKE ? '1' : '3'));

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      s.close(() => done(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const LATENCY_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000 };

/** A percentile of wrk's latency (`--latency`) in ms, to the microsecond wrk reports (43us × 0.001 would print as 0.043000000000000003). */
export function latencyMs(wrkOutput: string, percentile: string): number {
  const match = new RegExp(`^\\s+${percentile}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(wrkOutput);
  return match ? Math.round(Number(match[1]) * (LATENCY_UNITS[match[2] ?? 'ms'] ?? 1) * 1000) / 1000 : NaN;
}

/** CPU seconds used so far by every thread of `pid` (utime + stime). */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** One OS thread of a process and the CPU seconds it has used so far (utime + stime). */
export interface ThreadCpu {
  readonly tid: number;
  /** The thread's name (`MainThread`, `WorkerThread`, `V8Worker`, `libuv-worker` …). */
  readonly comm: string;
  readonly seconds: number;
}

/** CPU seconds used so far by each thread of `pid` (threads that ended meanwhile are not listed). */
export function threadCpu(pid: number): ThreadCpu[] {
  const out: ThreadCpu[] = [];
  for (const entry of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ tid: Number(entry), comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), seconds: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS });
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/** The resident set of `pid` now (VmRSS: every thread), MiB. */
export function residentMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(line?.split(/\s+/)[1] ?? 0) / 1024;
}

/** Reads the CPU time Redis and the MongoDB wire server have used, where they can be read. */
export class DependencyClock {
  private readonly redis: Redis;
  private readonly mongoPid: number | null;

  /** @param root the repository, whose `.data/mongo.pid` names the wire server `make bench` started. */
  constructor(redisUrl: string, root: string) {
    this.redis = new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 1 });
    // `make bench` starts the wire server itself (scripts/deps.sh) and knows its pid; a MONGO_URL of your own is not measured.
    const pidFile = join(root, '.data', 'mongo.pid');
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : NaN;
    this.mongoPid = Number.isInteger(pid) && existsSync(`/proc/${pid}/stat`) ? pid : null;
  }

  async seconds(dependency: Dependency): Promise<number | null> {
    if (dependency === 'mongo') return this.mongoPid === null ? null : processCpuSeconds(this.mongoPid);
    const info = await this.redis.info('cpu');
    const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
    return field('used_cpu_sys') + field('used_cpu_user');
  }

  close(): void {
    this.redis.disconnect();
  }
}
