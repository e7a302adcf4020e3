/**
 * Starting and stopping real service processes for the benches that run whole replicas
 * (`bench/cluster.ts`, `bench/flood.ts`): each on free ports of its own, waited on until it
 * answers ready (or until it exits, so a refused setting fails at once), its output kept — the
 * tail for error messages, and a count of every log message by its `msg`, so a bench can say how
 * often a replica stepped down or failed a lease round while it was driven.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, freePort } from './measure.js';

/** A replica (several may start at once, on a shared machine) must answer ready within this. */
const START_TIMEOUT_MS = 90_000;

export interface Replica {
  readonly id: string;
  readonly base: string;
  readonly metricsBase: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** The tail of what the process printed (stdout and stderr). */
  readonly output: () => string;
  /** How many log lines so far carried each `msg` (JSON log lines only). */
  readonly logged: ReadonlyMap<string, number>;
}

export class ReplicaExited extends Error {
  constructor(
    readonly id: string,
    readonly code: number,
    readonly output: string,
  ) {
    super(`${id} exited with code ${code} while starting: ${output.trim().split('\n').slice(-3).join(' | ')}`);
  }
}

/** Counts the `msg` of each complete JSON line fed to it. */
function messageCounter(): { feed: (chunk: string) => void; counts: Map<string, number> } {
  const counts = new Map<string, number>();
  let partial = '';
  return {
    counts,
    feed(chunk) {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const msg = /"msg":"((?:[^"\\]|\\.)*)"/.exec(line)?.[1];
        if (msg !== undefined) counts.set(msg, (counts.get(msg) ?? 0) + 1);
      }
    },
  };
}

export async function startReplica(id: string, childEnv: Record<string, string>, ready: 'readyz' | 'healthz' = 'readyz'): Promise<Replica> {
  const port = await freePort();
  const metricsPort = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'main.js')], {
    env: { ...process.env, ...childEnv, STOCK_HOST_ID: id, PORT: String(port), METRICS_PORT: String(metricsPort), ADVERTISE_URL: base },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const messages = messageCounter();
  const keep = (d: Buffer) => {
    const text = d.toString();
    out = (out + text).slice(-16_384);
    messages.feed(text);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const replica: Replica = { id, base, metricsBase: `http://127.0.0.1:${metricsPort}`, child, pid: child.pid as number, output: () => out, logged: messages.counts };
  // Ready, or exited (a refused setting exits at once: no waiting out the timeout for it).
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new ReplicaExited(id, child.exitCode, out);
    if (await fetch(`${base}/${ready}`).then((r) => r.status === 200, () => false)) return replica;
    if (Date.now() > deadline) {
      await stopReplica(replica);
      throw new Error(`${id} not ${ready} within ${START_TIMEOUT_MS / 1000} s: ${out.trim().split('\n').slice(-3).join(' | ')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function stopReplica({ child }: Replica): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

export async function metricsOf(replica: Replica): Promise<string> {
  return (await fetch(`${replica.metricsBase}/metrics`)).text();
}

export async function roleOf(replica: Replica): Promise<string> {
  const text = await metricsOf(replica).catch(() => '');
  const match = /^superstock_role\{role="primary"\} (\d+)/m.exec(text);
  return match === null ? '—' : match[1] === '1' ? 'primary' : 'secondary';
}
