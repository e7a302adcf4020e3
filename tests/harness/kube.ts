/**
 * A real Kubernetes control plane for tests, as controller-runtime's envtest starts one: etcd and
 * kube-apiserver (built from pinned Go modules by scripts/kube-tools.sh) on free loopback ports,
 * RBAC on, no controllers, no kubelet. Objects are stored and validated by the real API server;
 * nothing schedules or runs pods. The harness authenticates as a static-token admin
 * (system:masters) and can mint real ServiceAccount tokens (TokenRequest) to act as the chart's
 * ServiceAccount.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './deps.js';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

const BIN = join(REPO_ROOT, '.tools', 'bin');
export const KUBECTL = join(BIN, 'kubectl');
export const HELM = join(BIN, 'helm');

export interface CommandResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ControlPlane {
  readonly url: string;
  /** A kubeconfig file for the admin. */
  readonly kubeconfig: string;
  readonly dir: string;
  /** Run kubectl as the admin. */
  kubectl(...args: string[]): CommandResult;
  /** Run helm as the admin. */
  helm(...args: string[]): CommandResult;
  /** A kubeconfig file that authenticates with `token` (e.g. a ServiceAccount's), optionally at another server URL. */
  kubeconfigFor(name: string, token: string, server?: string): string;
  /** A fresh token for a ServiceAccount, from the API server's TokenRequest. */
  serviceAccountToken(namespace: string, name: string): string;
  stop(): Promise<void>;
}

/** Run one of the tools in .tools/bin (helm, kubectl) to completion. */
export function runTool(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): CommandResult {
  const result = spawnSync(command, args, { encoding: 'utf8', env, timeout: 60_000 });
  if (result.error) throw new Error(`${command} could not run (${result.error.message}): run make setup`);
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function kubeconfigYaml(server: string, name: string, token: string): string {
  // The API server's self-generated certificate is not worth trusting for a loopback test run.
  return [
    'apiVersion: v1',
    'kind: Config',
    `clusters: [{ name: test, cluster: { server: "${server}", insecure-skip-tls-verify: true } }]`,
    `users: [{ name: ${name}, user: { token: "${token}" } }]`,
    `contexts: [{ name: ${name}, context: { cluster: test, user: ${name} } }]`,
    `current-context: ${name}`,
    '',
  ].join('\n');
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

function capture(child: ChildProcess): () => string {
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => output;
}

export async function startControlPlane(): Promise<ControlPlane> {
  const dir = mkdtempSync(join(tmpdir(), 'superstock-kube-'));
  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcd = spawn(
    join(BIN, 'etcd'),
    [
      '--data-dir', join(dir, 'etcd'),
      '--listen-client-urls', `http://127.0.0.1:${etcdPort}`,
      '--advertise-client-urls', `http://127.0.0.1:${etcdPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-cluster', `default=http://127.0.0.1:${peerPort}`,
      '--unsafe-no-fsync',
      '--log-level', 'error',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const etcdOutput = capture(etcd);

  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const adminToken = randomBytes(24).toString('hex');
  writeFileSync(join(dir, 'tokens.csv'), `${adminToken},admin,admin,"system:masters"\n`);
  const url = `https://127.0.0.1:${apiPort}`;
  const apiserver = spawn(
    join(BIN, 'kube-apiserver'),
    [
      '--bind-address', '127.0.0.1',
      '--advertise-address', '127.0.0.1',
      // The `kubernetes` Service's endpoints may not point at loopback; envtest turns it off too.
      '--endpoint-reconciler-type', 'none',
      '--secure-port', String(apiPort),
      '--cert-dir', join(dir, 'certs'),
      '--etcd-servers', `http://127.0.0.1:${etcdPort}`,
      '--service-cluster-ip-range', '10.96.0.0/16',
      '--service-account-issuer', url,
      '--service-account-key-file', join(dir, 'sa.pub'),
      '--service-account-signing-key-file', join(dir, 'sa.key'),
      '--token-auth-file', join(dir, 'tokens.csv'),
      '--authorization-mode', 'RBAC',
      '--allow-privileged',
      // No controller-manager runs, so nothing creates the `default` ServiceAccounts the
      // ServiceAccount admission plugin would insist on for every pod.
      '--disable-admission-plugins', 'ServiceAccount',
      '--v', '0',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const apiOutput = capture(apiserver);

  const kubeconfig = join(dir, 'admin.kubeconfig');
  writeFileSync(kubeconfig, kubeconfigYaml(url, 'admin', adminToken));
  const env = { ...process.env, KUBECONFIG: kubeconfig };
  const plane: ControlPlane = {
    url,
    kubeconfig,
    dir,
    kubectl: (...args) => runTool(KUBECTL, args, env),
    helm: (...args) => runTool(HELM, args, { ...env, HELM_CACHE_HOME: join(dir, 'helm'), HELM_CONFIG_HOME: join(dir, 'helm'), HELM_DATA_HOME: join(dir, 'helm') }),
    kubeconfigFor(name, token, server = url) {
      const file = join(dir, `${name}.kubeconfig`);
      writeFileSync(file, kubeconfigYaml(server, name, token));
      return file;
    },
    serviceAccountToken(namespace, name) {
      const result = plane.kubectl('create', 'token', name, '--namespace', namespace, '--duration', '1h');
      if (result.status !== 0) throw new Error(`kubectl create token: ${result.stderr}`);
      return result.stdout.trim();
    },
    async stop() {
      await stopChild(apiserver);
      await stopChild(etcd);
      rmSync(dir, { recursive: true, force: true });
    },
  };

  const exited = () =>
    ([['etcd', etcd, etcdOutput], ['kube-apiserver', apiserver, apiOutput]] as const).find(([, child]) => child.exitCode !== null || child.signalCode !== null);
  try {
    await waitFor(() => exited() !== undefined || plane.kubectl('get', '--raw', '/readyz').stdout.trim() === 'ok', {
      timeoutMs: 90_000,
      intervalMs: 250,
      message: `kube-apiserver ready at ${url}`,
    });
    const dead = exited();
    if (dead) throw new Error(`${dead[0]} exited (${dead[1].exitCode ?? dead[1].signalCode})`);
  } catch (error) {
    await plane.stop();
    throw new Error(`${(error as Error).message}\n--- etcd ---\n${etcdOutput()}\n--- kube-apiserver ---\n${apiOutput()}`, { cause: error });
  }
  return plane;
}
