/**
 * A real single-node Kubernetes for tests: the node `make kube-up-local` starts
 * (scripts/kube-node/node.sh — kubelet, containerd, runc, the CNI bridge, kube-proxy, CoreDNS and
 * the control plane, in network and mount namespaces of its own, images from `make image`), in a
 * fresh state directory per test file. Everything the test does to it goes through commands run
 * in the node's network namespace (kubectl, helm, curl), since its addresses exist only there.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './deps.js';
import type { CommandResult } from './kube.js';

const NODE_SCRIPT = join(REPO_ROOT, 'scripts', 'kube-node', 'node.sh');
const BIN = join(REPO_ROOT, '.tools', 'bin');

export interface LocalNode {
  readonly state: string;
  /** Run a command in the node's network namespace, KUBECONFIG set to the admin's. */
  run(command: string, args: readonly string[], timeoutMs?: number): CommandResult;
  kubectl(...args: string[]): CommandResult;
  helm(...args: string[]): CommandResult;
  /** The last lines of every component's log, for a failure message. */
  logTails(lines?: number): string;
  down(): Promise<void>;
}

function tails(state: string, lines = 30): string {
  const dir = join(state, 'logs');
  if (!existsSync(dir)) return '';
  return readdirSync(dir)
    .map((file) => `--- ${file} ---\n${readFileSync(join(dir, file), 'utf8').split('\n').slice(-lines).join('\n')}`)
    .join('\n');
}

function script(action: 'up' | 'down', state: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [NODE_SCRIPT, action, state], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new Error(`node.sh ${action} ${code === null ? `killed (${signal}) after ${timeoutMs} ms` : `exited ${code}`}:\n${output}\n${tails(state)}`));
    });
  });
}

export async function startLocalNode(): Promise<LocalNode> {
  const state = mkdtempSync(join(tmpdir(), 'superstock-node-'));
  const run = (command: string, args: readonly string[], timeoutMs = 120_000): CommandResult => {
    const result = spawnSync('bash', [NODE_SCRIPT, 'run', state, command, ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    if (result.error) throw new Error(`${command} in the node: ${result.error.message}`);
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  };
  const helmHome = join(state, 'helm');
  const node: LocalNode = {
    state,
    run,
    kubectl: (...args) => run(join(BIN, 'kubectl'), args),
    helm: (...args) => run('env', [`HELM_CACHE_HOME=${helmHome}`, `HELM_CONFIG_HOME=${helmHome}`, `HELM_DATA_HOME=${helmHome}`, join(BIN, 'helm'), ...args], 600_000),
    logTails: (lines) => tails(state, lines),
    async down() {
      await script('down', state, 120_000);
      rmSync(state, { recursive: true, force: true });
    },
  };
  try {
    await script('up', state, 480_000);
  } catch (error) {
    await node.down().catch(() => undefined);
    throw error;
  }
  return node;
}
