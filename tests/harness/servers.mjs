// Launching the real dependency servers: redis-server and a MongoDB wire-protocol server. Plain JavaScript (ESM) because jest loads its global
// setup outside the TypeScript transform; tests/harness/deps.ts builds on the same functions.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WIRE_SERVER = join(REPO_ROOT, 'scripts', 'mongo-wire-server.sh');
const WIRE_CLASSES = join(REPO_ROOT, '.tools', 'mongo-wire-server', 'classes');

/**
 * @param {'redis' | 'mongo'} kind @param {number} port @param {string} dir
 * @param {boolean} [persistent] Redis only: an append-only file synced on every write, in `dir`, so a restart keeps the data
 * @returns {{ url: string, child: import('node:child_process').ChildProcess }}
 */
export function spawnServer(kind, port, dir, persistent = false) {
  if (kind === 'redis') {
    const durability = persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...durability, '--dir', dir];
    return { url: `redis://127.0.0.1:${port}`, child: spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }) };
  }
  // mongo-java-server keeps its data in memory: `dir` is unused, and a restart starts empty.
  if (!existsSync(WIRE_CLASSES)) throw new Error('the MongoDB wire server is missing: run `make setup` (scripts/setup.sh)');
  // The shared instance holds every test file's databases: under the script's 1 GiB cap its old
  // generation was 85 % full by the end of `make test`, so its serial collector ran ever more full
  // collections — pauses a test's dependency timeout can mistake for an outage. A cap, not a size.
  const env = { ...process.env, MONGO_WIRE_JAVA_OPTS: process.env.MONGO_WIRE_JAVA_OPTS ?? '-Xmx3g' };
  return { url: `mongodb://127.0.0.1:${port}/`, child: spawn(WIRE_SERVER, [String(port)], { stdio: ['ignore', 'pipe', 'pipe'], env }) };
}

/** @param {number} port @returns {Promise<boolean>} */
export function accepts(port) {
  return new Promise((done) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

/** Resolve once `port` accepts connections; reject if `child` exits first or time runs out. */
export async function untilAccepting(port, child, timeoutMs = 30_000) {
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const deadline = Date.now() + timeoutMs;
  while (!(await accepts(port))) {
    if (child.exitCode !== null) throw new Error(`${child.spawnfile} exited (${child.exitCode}): ${output.slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`${child.spawnfile} did not accept on ${port} within ${timeoutMs} ms: ${output.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
