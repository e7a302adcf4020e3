/**
 * The real service as a separate process, exactly as `make run` starts it (`node dist/src/main.js`,
 * built by `npm run build`), on free ports. Ready means `/readyz` answered 200; a test of a
 * dependency that is not there yet waits only until it is alive (`/healthz`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './deps.js';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

export { waitFor } from './wait.js';

const MAIN = join(REPO_ROOT, 'dist', 'src', 'main.js');

export interface ServiceHandle {
  readonly url: string;
  readonly metricsUrl: string;
  readonly port: number;
  readonly pid: number;
  /** Send `signal` (default SIGTERM) and resolve with the exit code (null if killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** SIGKILL, no waiting for anything. */
  kill(): void;
  output(): string;
}

/**
 * @param env overrides; an empty string unsets a variable (e.g. `MONGO_URL: ''` for no MongoDB).
 *   MONGO_URL and REDIS_URL default to the shared instances from the global setup.
 */
export async function startService(env: Record<string, string> = {}, options: { until?: 'ready' | 'alive'; startTimeoutMs?: number } = {}): Promise<ServiceHandle> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first (make test does)`);
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const metricsPort = env.METRICS_PORT ? Number(env.METRICS_PORT) : await freePort();
  const merged: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    WORKERS: '2',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    ...(process.env.MONGO_URL ? { MONGO_URL: process.env.MONGO_URL } : {}),
    ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
    ...env,
    PORT: String(port),
    METRICS_PORT: String(metricsPort),
  };
  for (const [key, value] of Object.entries(merged)) if (value === '') delete merged[key];

  let output = '';
  const child: ChildProcess = spawn(process.execPath, [MAIN], { env: merged, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;

  // A service that exited will not become ready: stop waiting at once rather than at the timeout.
  let exited = false;
  void exit.then(() => (exited = true));
  try {
    await waitFor(
      async () => {
        if (exited || child.exitCode !== null) return true;
        const res = await fetch(`${url}/${options.until === 'alive' ? 'healthz' : 'readyz'}`);
        await res.arrayBuffer();
        return res.status === 200;
      },
      { timeoutMs: options.startTimeoutMs ?? 30_000, intervalMs: 50, message: `service on ${url} ${options.until === 'alive' ? 'alive' : 'ready'}` },
    );
    if (exited || child.exitCode !== null) throw new Error(`service on ${url} exited with ${child.exitCode ?? child.signalCode} before it was ready`);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${(error as Error).message}\n--- service output ---\n${output.slice(-4000)}`, { cause: error });
  }

  return {
    url,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    port,
    pid: child.pid as number,
    stop: (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exit;
    },
    kill: () => {
      child.kill('SIGKILL');
    },
    output: () => output,
  };
}
