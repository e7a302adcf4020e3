/**
 * Where a buy's CPU goes, from `node --cpu-prof` profiles of whole replicas
 * (`make bench-cluster-profile`: `bench/cluster.ts`, and `make bench-profile`: `bench/run.ts`,
 * both with BENCH_CPU_PROF_DIR). The bench starts its servers with `profilingEnv()` and, through a
 * `ProfileRecorder`, records each measured round's window on the monotonic clock the profiles use,
 * its acknowledged buys, and every server thread's CPU time before and after it (/proc/<pid>/task). For each
 * JavaScript thread (the main thread, the worker threads) the samples inside the windows are
 * sorted into categories by the code they were taken in, and the thread's measured CPU time is
 * shared out in those proportions — so the figures add up to what the kernel counted, not to
 * the sampler's idea of time, which stretches when threads wait for a core. Threads without a
 * JavaScript profile (V8's GC and compiler helpers, libuv's pool, the profiler itself) are shown
 * by their names. Everything is divided by the acknowledged buys: µs per buy, summed over a
 * system's replicas, so a standalone replica and a three-replica cluster read side by side.
 *
 * A sample counts towards the code it was taken in (self time). Native frames (builtins such as
 * `JSON.parse` or a socket write) have no script and count towards the nearest caller that has one.
 *
 * `node dist/bench/cpu-profile.js <dir>` summarises a directory again.
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { env, threadCpu, type ThreadCpu } from './measure.js';

export const PROFILE_WINDOWS_FILE = 'windows.json';
/** BENCH_CPU_PROF_DIR: where the profiled servers write their profiles; null when not profiling. */
export const CPU_PROF_DIR = process.env.BENCH_CPU_PROF_DIR ? resolve(process.env.BENCH_CPU_PROF_DIR) : null;

/** What a server's environment gains to run under `node --cpu-prof` (every thread; BENCH_CPU_PROF_INTERVAL_US, 500) — nothing when not profiling. */
export function profilingEnv(): Record<string, string> {
  if (CPU_PROF_DIR === null) return {};
  const interval = env('BENCH_CPU_PROF_INTERVAL_US', '500');
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${CPU_PROF_DIR} --cpu-prof-interval=${interval}`.trim() };
}

/** The recorder of a bench run under BENCH_CPU_PROF_DIR; null when not profiling. */
export function profileRecorder(): ProfileRecorder | null {
  return CPU_PROF_DIR === null ? null : new ProfileRecorder(CPU_PROF_DIR);
}

/** The measured rounds' windows of one profiled bench run, written beside the profiles and summarised at the end. */
export class ProfileRecorder {
  private readonly windows: ProfileWindow[] = [];

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  /**
   * Opens a round's window now: every thread's CPU of each server and the monotonic clock (µs, as
   * the profiles' timestamps). The function returned closes it once the load has stopped.
   */
  open(mode: string, round: number, replicas: ReadonlyArray<{ readonly id: string; readonly pid: number }>): (acked: number) => void {
    const threadsBefore = replicas.map((r) => threadCpu(r.pid));
    const loadBefore = loadavg()[0] as number;
    const startUs = Number(process.hrtime.bigint() / 1000n);
    return (acked) => {
      const endUs = Number(process.hrtime.bigint() / 1000n);
      const threadsAfter = replicas.map((r) => threadCpu(r.pid));
      this.windows.push({
        mode,
        round,
        startUs,
        endUs,
        acked,
        load: [loadBefore, loadavg()[0] as number],
        replicas: replicas.map((r, i) => ({ id: r.id, pid: r.pid, threadsBefore: threadsBefore[i] ?? [], threadsAfter: threadsAfter[i] ?? [] })),
      });
    };
  }

  /**
   * Once every server has stopped (each thread writes its profile as it exits): writes the windows
   * and `profile.md` (the summary, then `appendix`), and prints them.
   */
  finish(appendix = ''): void {
    writeFileSync(join(this.dir, PROFILE_WINDOWS_FILE), JSON.stringify(this.windows));
    console.log(`\n${summarizeProfiles(this.dir, appendix)}\nwritten to ${join(this.dir, 'profile.md')}`);
  }
}

export interface ProfileWindow {
  readonly mode: string;
  readonly round: number;
  /** Monotonic clock, µs (as the profiles' `startTime` and `timeDeltas`). */
  readonly startUs: number;
  readonly endUs: number;
  readonly acked: number;
  /** One-minute load average before and after the round. */
  readonly load: readonly [number, number];
  readonly replicas: ReadonlyArray<{ readonly id: string; readonly pid: number; readonly threadsBefore: readonly ThreadCpu[]; readonly threadsAfter: readonly ThreadCpu[] }>;
}

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface CpuProfile {
  readonly nodes: ReadonlyArray<{ readonly id: number; readonly callFrame: CallFrame; readonly children?: readonly number[] }>;
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** A profile reduced to what the summary needs: each sample's time and the node it hit. */
interface LoadedProfile {
  readonly pid: number;
  /** Node's thread id: 0 is the main thread, workers count from 1. */
  readonly threadId: number;
  readonly times: Float64Array;
  readonly samples: readonly number[];
  readonly category: ReadonlyMap<number, string>;
  /** The category of the nearest caller outside Node's own code (what asked Node to do the work); Node's where none did. */
  readonly caller: ReadonlyMap<number, string>;
  readonly functionOf: ReadonlyMap<number, string>;
}

const IDLE = '(idle)';
const NODE_HTTP = 'Node HTTP (parser, server, response)';
const NODE_IO = 'Node net, streams, events, buffers';
const NODE_TICKS = 'Node timers, microtasks, promises';
const NODE_MESSAGING = 'worker messaging';
const NODE_OTHER = 'Node: other';
const NODE_CATEGORIES: ReadonlySet<string> = new Set([NODE_HTTP, NODE_IO, NODE_TICKS, NODE_MESSAGING, NODE_OTHER]);

/** Which category the code at `url` belongs to; null for a frame without a script (a native builtin). */
function categoryOfUrl(functionName: string, url: string): string | null {
  if (functionName === '(garbage collector)') return 'GC on the JS thread';
  if (functionName === '(program)') return 'V8/libuv outside JS ("(program)")';
  if (functionName === '(idle)') return IDLE;
  if (url === '') return null;
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
  if (pkg !== undefined) {
    if (pkg === 'mongodb' || pkg === 'bson' || pkg.startsWith('mongodb-')) return 'MongoDB driver + BSON';
    if (pkg === 'ioredis' || pkg === 'redis-parser' || pkg === 'denque' || pkg === '@ioredis/commands') return 'Redis client (ioredis)';
    if (pkg === 'prom-client' || pkg === 'tdigest' || pkg === 'bintrees') return 'metrics';
    if (pkg === 'zod') return 'validation (zod)';
    if (pkg.startsWith('pino') || pkg === 'sonic-boom' || pkg === 'thread-stream') return 'logging';
    return 'Express + its packages';
  }
  const ours = /\/dist\/src\/(.+)\.js$/.exec(url)?.[1];
  if (ours !== undefined) {
    if (ours.startsWith('cluster/ledger/')) return 'ledger: group commit, direct inserts';
    if (ours === 'cluster/allotments/levels') return 'allotments: levels over Redis';
    if (ours.startsWith('cluster/allotments/')) return 'allotments: lane, controller, pool';
    if (ours.startsWith('cluster/sync/')) return 'Redis sync (primary mode)';
    if (ours.startsWith('cluster/')) return 'cluster: state, election, fence beat';
    if (ours.startsWith('http/')) return 'service HTTP layer (routes, contract, answers, gate)';
    if (ours.startsWith('lanes/')) return 'lanes (the sale itself)';
    if (ours === 'metrics' || ours.includes('metrics')) return 'metrics';
    if (ours.startsWith('worker/')) return 'worker plumbing (rpc, idempotency batches)';
    return 'service: other';
  }
  if (url.startsWith('node:_http_') || url === 'node:http' || url.startsWith('node:internal/http')) return NODE_HTTP;
  if (url === 'node:net' || url === 'node:stream' || url.startsWith('node:internal/streams/') || url === 'node:internal/stream_base_commons' || url === 'node:events' || url === 'node:buffer' || url === 'node:internal/buffer') return NODE_IO;
  if (url.startsWith('node:internal/process/task_queues') || url.includes('timers') || url.startsWith('node:internal/async_hooks') || url.startsWith('node:internal/process/promises')) return NODE_TICKS;
  if (url.startsWith('node:internal/worker') || url === 'node:worker_threads' || url.includes('messageport')) return NODE_MESSAGING;
  return NODE_OTHER;
}

function loadProfile(path: string, pid: number, threadId: number): LoadedProfile {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const parent = new Map<number, number>();
  const frames = new Map<number, CallFrame>();
  for (const node of profile.nodes) {
    frames.set(node.id, node.callFrame);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const category = new Map<number, string>();
  const caller = new Map<number, string>();
  const functionOf = new Map<number, string>();
  for (const node of profile.nodes) {
    // A native frame counts towards its nearest caller with a script.
    let id: number | undefined = node.id;
    let found: string | null = null;
    while (id !== undefined && found === null) {
      const frame = frames.get(id) as CallFrame;
      found = categoryOfUrl(frame.functionName, frame.url);
      if (found === null) id = parent.get(id);
    }
    const own = found ?? 'native, no caller with a script';
    category.set(node.id, own);
    let callerFound: string | null = null;
    if (!own.startsWith('GC') && !own.startsWith('V8/libuv') && own !== IDLE) {
      for (let up: number | undefined = node.id; up !== undefined && callerFound === null; up = parent.get(up)) {
        const frame = frames.get(up) as CallFrame;
        const c = categoryOfUrl(frame.functionName, frame.url);
        if (c !== null && !NODE_CATEGORIES.has(c)) callerFound = c;
      }
    }
    caller.set(node.id, callerFound ?? own);
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url === '' ? '' : ` ${url.replace(/^.*\/(node_modules|dist)\//, '$1/').replace(/^file:\/\//, '')}:${lineNumber + 1}`;
    functionOf.set(node.id, `${functionName || '(anonymous)'}${where}`);
  }
  const times = new Float64Array(profile.samples.length);
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    times[i] = t;
  }
  return { pid, threadId, times, samples: profile.samples, category, caller, functionOf };
}

function loadProfiles(dir: string): LoadedProfile[] {
  const out: LoadedProfile[] = [];
  for (const name of readdirSync(dir)) {
    // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile
    const match = /^CPU\.\d+\.\d+\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(name);
    if (match) out.push(loadProfile(join(dir, name), Number(match[1]), Number(match[2])));
  }
  return out;
}

/** Per-buy µs by key, summed over windows and replicas. */
class Tally {
  readonly micros = new Map<string, number>();
  add(key: string, us: number): void {
    this.micros.set(key, (this.micros.get(key) ?? 0) + us);
  }
}

interface SystemSummary {
  readonly mode: string;
  readonly acked: number;
  readonly seconds: number;
  readonly loads: string;
  /** Every replica's CPU over the windows by category, µs. */
  readonly byCategory: Tally;
  /** The same, Node's own work counted towards the code that asked for it. */
  readonly byCaller: Tally;
  /** The same, the JavaScript threads apart: `main thread: …`, `worker thread(s): …`. */
  readonly byThreadCategory: Tally;
  readonly byThread: Tally;
  readonly byFunction: Tally;
  readonly replicas: number;
}

/** CPU seconds a window gave each thread of a replica, by OS thread. */
function threadDeltas(before: readonly ThreadCpu[], after: readonly ThreadCpu[]): ThreadCpu[] {
  const start = new Map(before.map((t) => [t.tid, t.seconds]));
  return after.map((t) => ({ tid: t.tid, comm: t.comm, seconds: t.seconds - (start.get(t.tid) ?? 0) }));
}

/** The samples of a thread's profiles inside [startUs, endUs], counted per node. */
function samplesIn(profiles: readonly LoadedProfile[], startUs: number, endUs: number): Array<{ profile: LoadedProfile; counts: Map<number, number>; total: number }> {
  return profiles.map((profile) => {
    const counts = new Map<number, number>();
    let total = 0;
    for (let i = 0; i < profile.samples.length; i++) {
      const at = profile.times[i] as number;
      if (at < startUs || at > endUs) continue;
      const node = profile.samples[i] as number;
      if (profile.category.get(node) === IDLE) continue;
      counts.set(node, (counts.get(node) ?? 0) + 1);
      total++;
    }
    return { profile, counts, total };
  });
}

function summarizeSystem(mode: string, windows: readonly ProfileWindow[], profiles: readonly LoadedProfile[]): SystemSummary {
  const byCategory = new Tally();
  const byThreadCategory = new Tally();
  const byCaller = new Tally();
  const byThread = new Tally();
  const byFunction = new Tally();
  let acked = 0;
  let seconds = 0;
  for (const window of windows) {
    acked += window.acked;
    seconds += (window.endUs - window.startUs) / 1e6;
    for (const replica of window.replicas) {
      const deltas = threadDeltas(replica.threadsBefore, replica.threadsAfter);
      const mainSeconds = deltas.filter((t) => t.tid === replica.pid).reduce((s, t) => s + t.seconds, 0);
      const workerSeconds = deltas.filter((t) => t.comm === 'WorkerThread').reduce((s, t) => s + t.seconds, 0);
      const mine = profiles.filter((p) => p.pid === replica.pid);
      const groups = [
        { name: 'main thread', seconds: mainSeconds, profiles: mine.filter((p) => p.threadId === 0) },
        { name: 'worker thread(s)', seconds: workerSeconds, profiles: mine.filter((p) => p.threadId !== 0) },
      ];
      for (const group of groups) {
        byThread.add(group.name, group.seconds * 1e6);
        const counted = samplesIn(group.profiles, window.startUs, window.endUs);
        const total = counted.reduce((s, c) => s + c.total, 0);
        if (total === 0) {
          byCategory.add(`${group.name}: no profile samples`, group.seconds * 1e6);
          byThreadCategory.add(`${group.name}: no profile samples`, group.seconds * 1e6);
          byCaller.add(`${group.name}: no profile samples`, group.seconds * 1e6);
          continue;
        }
        const usPerSample = (group.seconds * 1e6) / total;
        for (const { profile, counts } of counted) {
          for (const [node, n] of counts) {
            byCategory.add(profile.category.get(node) as string, n * usPerSample);
            byThreadCategory.add(`${group.name}: ${profile.category.get(node) as string}`, n * usPerSample);
            byCaller.add(`${group.name}: ${profile.caller.get(node) as string}`, n * usPerSample);
            byFunction.add(`${group.name === 'main thread' ? 'main' : 'worker'}: ${profile.functionOf.get(node) as string}`, n * usPerSample);
          }
        }
      }
      for (const t of deltas) {
        if (t.tid === replica.pid || t.comm === 'WorkerThread') continue;
        const name = t.comm === 'V8Worker' ? 'V8 helper threads (concurrent GC, compiler)' : t.comm === 'libuv-worker' ? 'libuv pool' : t.comm.startsWith('v8:Prof') ? 'the profiler itself (not in a normal run)' : `other threads (${t.comm})`;
        byThread.add(name, t.seconds * 1e6);
        byCategory.add(`thread: ${name}`, t.seconds * 1e6);
        byCaller.add(`thread: ${name}`, t.seconds * 1e6);
      }
    }
  }
  const loads = windows.map((w) => `${w.load[0].toFixed(1)}→${w.load[1].toFixed(1)}`).join(', ');
  return { mode, acked, seconds, loads, byCategory, byThreadCategory, byCaller, byThread, byFunction, replicas: windows[0]?.replicas.length ?? 0 };
}

const perBuy = (s: SystemSummary, key: string, tally: (s: SystemSummary) => Tally) => (tally(s).micros.get(key) ?? 0) / Math.max(1, s.acked);

function table(systems: readonly SystemSummary[], tally: (s: SystemSummary) => Tally, first: string, limit = Infinity, minUs = 0, totalRow = limit === Infinity): string[] {
  const base = systems[0] as SystemSummary;
  // Each other system against the first (the standalone replica, as `make bench-cluster` runs them).
  const others = systems.slice(1);
  const keys = new Set(systems.flatMap((s) => [...tally(s).micros.keys()]));
  const rows = [...keys].map((key) => ({ key, values: systems.map((s) => perBuy(s, key, tally)) }));
  const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(2)}`;
  // Sorted by how far the second system (allotments, when it ran) is from the first.
  const lead = (r: { values: number[] }) => Math.abs((r.values[1] ?? 0) - (r.values[0] as number));
  rows.sort((a, b) => lead(b) - lead(a));
  const shown = rows.filter((r) => Math.max(...r.values) >= minUs).slice(0, limit);
  const out = [
    `| ${first} | ${systems.map((s) => `${s.mode} µs/buy`).join(' | ')} | ${others.map((s) => `${s.mode} − ${base.mode}`).join(' | ')} |`,
    `|---|${systems.map(() => '---|').join('')}${others.map(() => '---|').join('')}`,
  ];
  for (const r of shown) out.push(`| ${r.key.replaceAll('|', '\\|')} | ${r.values.map((v) => v.toFixed(2)).join(' | ')} | ${r.values.slice(1).map((v) => signed(v - (r.values[0] as number))).join(' | ')} |`);
  if (totalRow) {
    const totals = systems.map((s) => [...tally(s).micros.values()].reduce((a, b) => a + b, 0) / Math.max(1, s.acked));
    out.push(`| **all** | ${totals.map((v) => `**${v.toFixed(1)}**`).join(' | ')} | ${totals.slice(1).map((v) => `**${signed(v - (totals[0] as number))}**`).join(' | ')} |`);
  }
  return out;
}

/** Writes `<dir>/profile.md` (and returns it) from the profiles and windows in `dir`, `appendix` at its end. */
export function summarizeProfiles(dir: string, appendix = ''): string {
  const windows = JSON.parse(readFileSync(join(dir, PROFILE_WINDOWS_FILE), 'utf8')) as ProfileWindow[];
  const profiles = loadProfiles(dir);
  const modes = [...new Set(windows.map((w) => w.mode))];
  const systems = modes.map((mode) => summarizeSystem(mode, windows.filter((w) => w.mode === mode), profiles));
  const lines = [
    '## CPU per acknowledged buy, by where it went (profiled)',
    '',
    `${profiles.length} profiles (\`node --cpu-prof\`, every JavaScript thread of every replica), the measured rounds only. Each thread's CPU time`,
    "(/proc) is shared out by its samples' categories (self time; a native frame counts towards its caller), then divided by the",
    'acknowledged buys and summed over the replicas. Profiling itself costs CPU, so totals run above an unprofiled run.',
    '',
    '| system | replicas | acknowledged buys | seconds driven | req/s | load average per round (before→after) |',
    '|---|---|---|---|---|---|',
    ...systems.map((s) => `| ${s.mode} | ${s.replicas} | ${s.acked} | ${s.seconds.toFixed(1)} | ${Math.round(s.acked / s.seconds)} | ${s.loads} |`),
    '',
    '### By thread',
    '',
    ...table(systems, (s) => s.byThread, 'thread'),
    '',
    '### By category',
    '',
    ...table(systems, (s) => s.byCategory, 'category'),
    '',
    '### The JavaScript threads apart (rows of ≥ 0.3 µs/buy in some system)',
    '',
    ...table(systems, (s) => s.byThreadCategory, 'thread: category', Infinity, 0.3, false),
    '',
    "### By the code that asked for it (Node's own work — socket writes, HTTP framing, timers — counted towards the nearest caller outside Node; rows of ≥ 0.3 µs/buy)",
    '',
    ...table(systems, (s) => s.byCaller, 'thread: caller', Infinity, 0.3, true),
    '',
    '### Functions that differ most (self time, ≥ 0.2 µs/buy in some system)',
    '',
    ...table(systems, (s) => s.byFunction, 'function', 40, 0.2),
    '',
  ];
  const text = lines.join('\n') + appendix;
  writeFileSync(join(dir, 'profile.md'), text);
  return text;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const dir = process.argv[2];
  if (dir === undefined) throw new Error('usage: node dist/bench/cpu-profile.js <dir written by make bench-cluster-profile>');
  console.log(summarizeProfiles(resolve(dir)));
}
