/**
 * `make run` and `make cluster` as a person uses them, run for real in a subprocess (make, the
 * scripts, setup, Redis, the MongoDB wire server, the replicas), each on free ports and a private
 * data directory:
 * - Ctrl-C (SIGINT to the whole process group) and SIGTERM (to make alone, as a supervisor sends
 *   it) stop every process the target started — replicas, Redis, the wire server — and make exits
 *   by that same signal, within the shutdown grace;
 * - a taken port (the service's, a metrics port, Redis's or MongoDB's) fails at once with a line
 *   naming the port and what holds it, exit non-zero, nothing started;
 * - a replica that dies while starting stops the cluster, with the reason;
 * - the service itself exits 98 with the port's name when its port is taken;
 * - the set-up tier `make run` uses needs no Go and builds no Go tool.
 * Every process a run starts inherits a marker variable, so "all gone" is checked by scanning
 * /proc, orphans and daemons included (and Redis, which hides its environment, by its pid file).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './harness/deps.js';
import { startService } from './harness/service.js';
import { waitFor } from './harness/wait.js';

const MARKER = 'SUPERSTOCK_SCRIPT_TEST_RUN';
const SHUTDOWN_TIMEOUT_MS = 3000;
/** What the scripts allow the replicas (SHUTDOWN_TIMEOUT_MS + 5 s) plus the dependencies' 10 s. */
const STOP_WITHIN_MS = SHUTDOWN_TIMEOUT_MS + 5000 + 10_000;

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

interface Run {
  readonly child: ChildProcess;
  readonly exit: Promise<Exit>;
  readonly marker: string;
  readonly dataDir: string;
  output(): string;
}

interface MarkedProcess {
  readonly pid: number;
  readonly name: string;
}

/** Ports that are free now and distinct from each other (all held open until all are chosen). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Server>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    return typeof address === 'object' && address ? address.port : 0;
  });
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** A plain listener holding `port`, as another program would. */
function occupy(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** The process `pid` if it is alive (a zombie holds nothing), named by its program. */
function liveProcess(pid: number): MarkedProcess | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return null;
    const program = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split(/[\0 ]/)[0] ?? '';
    return { pid, name: program.split('/').pop() ?? program };
  } catch {
    return null; // gone while we looked
  }
}

/**
 * Every live process whose environment carries this run's marker, and the dependencies named by
 * the run's pid files (Redis rewrites its process title over its environment, hiding the marker).
 */
function processesOf(run: Run): MarkedProcess[] {
  const pids = new Set<number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(`${MARKER}=${run.marker}`)) pids.add(Number(entry));
    } catch {
      // gone while we looked, or not ours to read
    }
  }
  for (const name of ['redis', 'mongo']) {
    const file = join(run.dataDir, `${name}.pid`);
    if (existsSync(file)) pids.add(Number(readFileSync(file, 'utf8')));
  }
  return [...pids].map(liveProcess).filter((p): p is MarkedProcess => p !== null);
}

/** Which of `processes` are still alive. */
function stillAlive(processes: readonly MarkedProcess[]): MarkedProcess[] {
  return processes.filter((p) => liveProcess(p.pid) !== null);
}

/** `make TARGET` in its own process group, as a terminal would run it, with `env` on top of ours. */
function make(target: string, env: Record<string, string>): Run {
  const marker = randomUUID();
  const dataDir = mkdtempSync(join(tmpdir(), 'superstock-scripts-'));
  // As from a user's shell: under `make test` the outer make's MAKELEVEL would make this one
  // report itself as `make[1]`.
  const { MAKELEVEL: _level, MAKEFLAGS: _flags, MFLAGS: _mflags, ...outside } = process.env;
  const merged: NodeJS.ProcessEnv = { ...outside, [MARKER]: marker, DATA_DIR: dataDir, WORKERS: '1', LOG_LEVEL: 'warn', SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS), ...env };
  // The jest run's shared Redis and MongoDB would be used instead of starting the target's own.
  delete merged.REDIS_URL;
  delete merged.MONGO_URL;
  const child = spawn('make', ['--no-print-directory', target], { cwd: REPO_ROOT, env: merged, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exit = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, exit, marker, dataDir, output: () => output };
}

async function exited(run: Run, withinMs: number): Promise<Exit> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`make did not exit within ${withinMs} ms\n--- output ---\n${run.output().slice(-3000)}`)), withinMs);
  });
  return Promise.race([run.exit, timeout]).finally(() => clearTimeout(timer));
}

async function answers(url: string, method = 'GET'): Promise<number> {
  const res = await fetch(url, { method, signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.status;
}

const runs: Run[] = [];
afterEach(() => {
  // A failed test must not leave its processes behind for the next ones.
  for (const run of runs.splice(0)) {
    for (const { pid } of processesOf(run)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(run.dataDir, { recursive: true, force: true });
  }
});

function started(run: Run): Run {
  runs.push(run);
  return run;
}

function names(processes: readonly MarkedProcess[]): string[] {
  return processes.map((p) => p.name).sort();
}

describe('make run: Ctrl-C and SIGTERM stop everything it started', () => {
  test.each([
    ['Ctrl-C (SIGINT to the process group)', 'SIGINT'],
    ['SIGTERM to make alone', 'SIGTERM'],
  ] as const)('%s: the replica, Redis and the wire server are gone, make exits by that signal', async (_how, signal) => {
    const [port, metricsPort, redisPort, mongoPort] = (await freePorts(4)) as [number, number, number, number];
    const run = started(make('run', { PORT: String(port), METRICS_PORT: String(metricsPort), REDIS_PORT: String(redisPort), MONGO_PORT: String(mongoPort) }));

    // Ready means a buy is answered (the first run here may still build).
    await waitFor(
      async () => {
        if (run.child.exitCode !== null) throw new Error(`make run exited: ${run.output()}`);
        return (await answers(`http://127.0.0.1:${port}/api/v1/OneStock/Cache/Atomic/Buy`, 'POST')) === 200;
      },
      { timeoutMs: 120_000, intervalMs: 200, message: 'make run answering a buy' },
    );
    const before = processesOf(run);
    expect(names(before)).toEqual(expect.arrayContaining(['java', 'node', 'redis-server']));

    if (signal === 'SIGINT') process.kill(-(run.child.pid as number), 'SIGINT');
    else run.child.kill('SIGTERM');

    expect(await exited(run, STOP_WITHIN_MS)).toEqual({ code: null, signal });
    expect(stillAlive(before)).toEqual([]);
    expect(processesOf(run)).toEqual([]);
    for (const p of [port, metricsPort, redisPort, mongoPort]) expect(await isFree(p)).toBe(true);
    expect(existsSync(join(run.dataDir, 'redis.pid')) || existsSync(join(run.dataDir, 'mongo.pid'))).toBe(false);
  });
});

describe('make cluster: Ctrl-C and SIGTERM stop everything it started', () => {
  test.each([
    ['Ctrl-C (SIGINT to the process group)', 'SIGINT', 'primary'],
    ['SIGTERM to make alone', 'SIGTERM', 'primary'],
    // Every replica sells from its own allotment: each one's buys answer 200 without forwarding.
    ['SIGTERM to make alone, CLUSTER_MODE=allotments', 'SIGTERM', 'allotments'],
  ] as const)('%s: three replicas, Redis and the wire server are gone, make exits by that signal', async (_how, signal, mode) => {
    const ports = await freePorts(8);
    const [replicaPorts, metricsPorts] = [ports.slice(0, 3), ports.slice(3, 6)];
    const run = started(make('cluster', { CLUSTER_MODE: mode, CLUSTER_PORTS: replicaPorts.join(' '), CLUSTER_METRICS_PORTS: metricsPorts.join(' '), REDIS_PORT: String(ports[6]), MONGO_PORT: String(ports[7]) }));

    await waitFor(
      async () => {
        if (run.child.exitCode !== null) throw new Error(`make cluster exited: ${run.output()}`);
        if (mode === 'allotments' ? (run.output().match(/SELLING/g) ?? []).length < 3 : !run.output().includes('PRIMARY')) return false;
        const statuses = await Promise.all(replicaPorts.map((p) => answers(`http://127.0.0.1:${p}/api/v1/OneStock/Cache/Atomic/Buy`, 'POST')));
        return statuses.every((s) => s === 200);
      },
      { timeoutMs: 120_000, intervalMs: 200, message: 'a primary elected and every replica selling' },
    );
    const before = processesOf(run);
    expect(names(before).filter((n) => n === 'node')).toHaveLength(3);
    expect(names(before)).toEqual(expect.arrayContaining(['java', 'redis-server']));

    if (signal === 'SIGINT') process.kill(-(run.child.pid as number), 'SIGINT');
    else run.child.kill('SIGTERM');

    expect(await exited(run, STOP_WITHIN_MS)).toEqual({ code: null, signal });
    expect(stillAlive(before)).toEqual([]);
    expect(processesOf(run)).toEqual([]);
    for (const p of ports) expect(await isFree(p)).toBe(true);
  });

  test('a replica that exits while starting stops the cluster with its reason, and everything it started', async () => {
    const ports = await freePorts(8);
    const run = started(
      make('cluster', {
        CLUSTER_PORTS: ports.slice(0, 3).join(' '),
        CLUSTER_METRICS_PORTS: ports.slice(3, 6).join(' '),
        REDIS_PORT: String(ports[6]),
        MONGO_PORT: String(ports[7]),
        INITIAL_STOCK: '-1', // refused by every replica's configuration check (exit 78)
      }),
    );
    const exit = await exited(run, 120_000);
    expect(exit).toEqual({ code: 2, signal: null });
    expect(run.output()).toMatch(/\[cluster\] replica-0 exited with code 78 while starting/);
    expect(run.output()).toContain('INITIAL_STOCK');
    expect(run.output()).toMatch(/make: \*\*\* \[Makefile:\d+: cluster\] Error 78/);
    expect(processesOf(run)).toEqual([]);
  });
});

describe('a taken port fails at once, naming the port and what holds it', () => {
  let held: Server | null = null;
  afterEach(async () => {
    await new Promise((r) => (held ? held.close(r) : r(undefined)));
    held = null;
  });

  test.each([
    ['run', 'PORT', 0, /\[run\] port (\d+) \(PORT\) is already in use by \S+ \(pid (\d+)\)/],
    ['run', 'METRICS_PORT', 1, /\[run\] port (\d+) \(METRICS_PORT\) is already in use by \S+ \(pid (\d+)\)/],
    ['run', 'REDIS_PORT', 2, /\[deps\] port (\d+) \(REDIS_PORT, Redis\) is already in use by \S+ \(pid (\d+)\)/],
    ['cluster', "replica-1's port", 5, /\[cluster\] port (\d+) \(replica-1, CLUSTER_PORTS\) is already in use by \S+ \(pid (\d+)\)/],
    ['cluster', "replica-2's metrics port", 9, /\[cluster\] port (\d+) \(replica-2 metrics, CLUSTER_METRICS_PORTS\) is already in use by \S+ \(pid (\d+)\)/],
    ['cluster', 'MONGO_PORT', 3, /\[deps\] port (\d+) \(MONGO_PORT, MongoDB wire server\) is already in use by \S+ \(pid (\d+)\)/],
  ] as const)('make %s with %s taken: exit non-zero (98 from the script), nothing started', async (target, _what, takenIndex, message) => {
    // 0 PORT, 1 METRICS_PORT, 2 REDIS_PORT, 3 MONGO_PORT, 4-6 CLUSTER_PORTS, 7-9 CLUSTER_METRICS_PORTS
    const ports = await freePorts(10);
    const taken = ports[takenIndex] as number;
    held = await occupy(taken);
    const run = started(
      make(target, {
        PORT: String(ports[0]),
        METRICS_PORT: String(ports[1]),
        REDIS_PORT: String(ports[2]),
        MONGO_PORT: String(ports[3]),
        CLUSTER_PORTS: ports.slice(4, 7).join(' '),
        CLUSTER_METRICS_PORTS: ports.slice(7, 10).join(' '),
      }),
    );
    const exit = await exited(run, 30_000);
    expect(exit).toEqual({ code: 2, signal: null });
    const [, reportedPort, holder] = message.exec(run.output()) ?? [];
    expect(Number(reportedPort)).toBe(taken);
    expect(Number(holder)).toBe(process.pid);
    expect(run.output()).toMatch(new RegExp(`make: \\*\\*\\* \\[Makefile:\\d+: ${target}\\] Error 98`));
    expect(run.output()).not.toContain('[setup]');
    expect(processesOf(run)).toEqual([]);
    expect(readdirSync(run.dataDir)).toEqual([]);
  });
});

/** The service alone on `port`, no stores, its stderr collected (the tests of a taken port read its last line). */
function spawnBareService(port: number, metricsPort: number): { child: ChildProcess; stderr: () => string } {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'main.js')], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', WORKERS: '2', ELECTION: 'none', PORT: String(port), METRICS_PORT: String(metricsPort) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return { child, stderr: () => stderr };
}

describe('the service itself, when its port is taken', () => {
  test.each(['PORT', 'METRICS_PORT'] as const)('%s taken: one message naming the port, exit code 98', async (variable) => {
    const [port, metricsPort] = (await freePorts(2)) as [number, number];
    const taken = variable === 'PORT' ? port : metricsPort;
    const holder = await occupy(taken);
    try {
      const { child, stderr } = spawnBareService(port, metricsPort);
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).toBe(98);
      const fatal = JSON.parse(stderr().trim().split('\n').pop() ?? '{}') as { level?: string; msg?: string; port?: number; variable?: string };
      expect(fatal).toMatchObject({ level: 'fatal', port: taken, variable });
      expect(fatal.msg).toContain(`port ${taken} (${variable}) is already in use`);
      expect(stderr()).not.toContain('    at '); // one line, no stack trace
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });

  test('PORT held by a running replica (whose workers bind with SO_REUSEPORT, which the kernel would share): exit code 98, and the first keeps its port', async () => {
    const first = await startService({ ELECTION: 'none', MONGO_URL: '', REDIS_URL: '' });
    try {
      const metricsPort = (await freePorts(1))[0] as number;
      const { child, stderr } = spawnBareService(first.port, metricsPort);
      // Before the fix it did not exit at all: it served on beside the first.
      const code = await new Promise<number | null | 'still running'>((resolve) => {
        child.once('exit', resolve);
        setTimeout(() => resolve('still running'), 20_000).unref();
      });
      child.kill('SIGKILL');
      expect({ code, last: stderr().trim().split('\n').pop() }).toEqual({ code: 98, last: expect.stringContaining(`port ${first.port} (PORT) is already in use`) });
      expect((await fetch(`${first.url}/readyz`)).status).toBe(200);
    } finally {
      await first.stop();
    }
  });
});

describe('set-up tiers', () => {
  test('the run tier (make run / cluster / deps-up) needs no Go and builds no Go tool; the helm tier does', () => {
    // A copy of the repository's set-up inputs whose .tools has what running needs (Node 24, the
    // wire server) and nothing else: no helm, no kube tools, and no `go` on PATH.
    const root = mkdtempSync(join(tmpdir(), 'superstock-tiers-'));
    try {
      cpSync(join(REPO_ROOT, 'scripts'), join(root, 'scripts'), { recursive: true, preserveTimestamps: true });
      for (const file of ['package.json', 'package-lock.json']) cpSync(join(REPO_ROOT, file), join(root, file), { preserveTimestamps: true });
      symlinkSync(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'));
      mkdirSync(join(root, '.tools'));
      for (const tool of ['node24', 'mongo-wire-server']) symlinkSync(join(REPO_ROOT, '.tools', tool), join(root, '.tools', tool));
      // HOME is the empty copy, so no ~/.bashrc puts Go back on PATH.
      const env = { PATH: ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':'), HOME: root };
      expect(spawnSync('bash', ['-c', 'command -v go'], { env }).status).not.toBe(0);
      const setup = (tier: string) => spawnSync('bash', [join(root, 'scripts', 'setup.sh'), tier], { env, encoding: 'utf8' });

      const run = setup('run');
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      expect(existsSync(join(root, '.tools', 'bin'))).toBe(false);

      const helm = setup('helm');
      expect(helm.status).not.toBe(0);
      expect(helm.stderr).toContain('Go is needed to build helm');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
