/**
 * The users' own path, `make kind-up` and `make k6` (deploy/kube.mk, scripts/k6-job.sh), run
 * against a real kube-apiserver (tests/harness/kube.ts) with the real helm and kubectl, from a
 * kubeconfig whose *current* context points somewhere else — so a call that does not name the
 * kind context fails. Docker and kind cannot run here (no Docker engine): two small stand-ins on
 * PATH record what the Makefile asks of them, which is all that is under test there (which image
 * is built and loaded, and the fall-back to an archive when `kind load docker-image` fails). No
 * controllers or kubelet run, so the test plays the Job controller and the kubelet for `make k6`:
 * it creates the Job's pod and moves its status along, checking at each step that the script
 * waits rather than racing ahead.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { REPO_ROOT } from '../harness/deps.js';
import { startControlPlane, type ControlPlane } from '../harness/kube.js';
import { waitFor } from '../harness/wait.js';

const CHART = join(REPO_ROOT, 'deploy', 'helm', 'superstock');
const APP_VERSION = /^appVersion: "?([^"\n]+)"?$/m.exec(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'))?.[1] as string;
// The Makefile's defaults: cluster, release and namespace `superstock`, context `kind-superstock`.
const NAMESPACE = 'superstock';
const RELEASE = 'superstock';

let plane: ControlPlane;
let env: NodeJS.ProcessEnv;
let stubLog: string;

/** Stand-ins for docker and kind: they log every call; `kind load docker-image` fails as it does with Docker's containerd image store unless told otherwise. */
const STUBS = {
  docker: `#!/bin/sh
echo "docker $*" >> "$STUB_LOG"
case "$1" in
  build) exit 0 ;;
  save) [ "$2" = -o ] && printf 'archive of %s\\n' "$4" > "$3" && exit 0 ;;
esac
exit 1
`,
  kind: `#!/bin/sh
echo "kind $*" >> "$STUB_LOG"
case "$1 $2" in
  "get clusters") echo superstock; exit 0 ;;
  "load docker-image") [ "$STUB_DOCKER_IMAGE_LOAD" = ok ] && exit 0
    echo 'ERROR: failed to load image: command "docker exec --privileged -i superstock-worker ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -" failed with error: exit status 1' >&2; exit 1 ;;
  "load image-archive") echo "kind loaded: $(cat "$3")" >> "$STUB_LOG"; [ "$STUB_ARCHIVE_LOAD" = fail ] && exit 1; exit 0 ;;
esac
exit 1
`,
};

function make(target: string, extraEnv: NodeJS.ProcessEnv = {}, ...vars: string[]) {
  writeFileSync(stubLog, '');
  const result = spawnSync('make', ['--no-print-directory', '-C', REPO_ROOT, target, 'HELM_WAIT=', ...vars], { env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, calls: readFileSync(stubLog, 'utf8').trim().split('\n').filter((l) => l !== '') };
}

function kubectlJson<T>(...args: string[]): T {
  const result = plane.kubectl(...args, '-o', 'json');
  if (result.status !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

interface StatefulSet {
  metadata: { generation: number };
  spec: { template: { metadata: { annotations: Record<string, string> }; spec: { containers: Array<{ image: string }> } } };
}
const statefulSet = () => kubectlJson<StatefulSet>('get', 'statefulset', RELEASE, '--namespace', NAMESPACE);
const adminToken = () => kubectlJson<{ data: Record<string, string> }>('get', 'secret', RELEASE, '--namespace', NAMESPACE).data['admin-token'];

beforeAll(async () => {
  plane = await startControlPlane();
  const dir = join(plane.dir, 'user');
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  for (const [name, text] of Object.entries(STUBS)) {
    writeFileSync(join(bin, name), text);
    chmodSync(join(bin, name), 0o755);
  }
  stubLog = join(dir, 'calls.log');
  // The user's kubeconfig: the kind cluster's context, and a current context that is not it.
  const config = parse(readFileSync(plane.kubeconfig, 'utf8')) as {
    clusters: Array<{ name: string; cluster: Record<string, unknown> }>;
    users: unknown[];
    contexts: Array<{ name: string; context: { cluster: string; user: string } }>;
    'current-context': string;
  };
  config.clusters.push({ name: 'production', cluster: { server: 'https://127.0.0.1:1', 'insecure-skip-tls-verify': true } });
  config.contexts = [
    { name: 'kind-superstock', context: { cluster: 'test', user: 'admin' } },
    { name: 'production', context: { cluster: 'production', user: 'admin' } },
  ];
  config['current-context'] = 'production';
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, stringify(config));
  const helmHome = join(dir, 'helm');
  // A fresh make: not one that inherits the flags of the `make test` running these tests.
  const { MAKEFLAGS: _flags, MAKELEVEL: _level, MFLAGS: _mflags, ...outer } = process.env;
  env = {
    ...outer,
    PATH: `${bin}:${process.env.PATH ?? ''}`,
    KUBECONFIG: kubeconfig,
    STUB_LOG: stubLog,
    HELM_CACHE_HOME: helmHome,
    HELM_CONFIG_HOME: helmHome,
    HELM_DATA_HOME: helmHome,
    TMPDIR: dir,
  };
}, 120_000);

afterAll(async () => {
  await plane?.stop();
});

describe('make kind-up', () => {
  test("builds the chart's default image, loads it through an archive when kind load docker-image fails, installs through the kind context only", () => {
    const run = make('kind-up');
    expect(run.status === 0 ? 'made' : `${run.stdout}\n${run.stderr}`).toBe('made');
    const image = `superstock:${APP_VERSION}`;
    const archive = /docker save -o (\S+) /.exec(run.calls.join('\n'))?.[1] as string;
    expect(run.calls).toEqual([
      'kind get clusters',
      `docker build -t ${image} .`,
      `kind load docker-image ${image} --name superstock`,
      `docker save -o ${archive} ${image}`,
      `kind load image-archive ${archive} --name superstock`,
      `kind loaded: archive of ${image}`,
    ]);
    expect(run.stderr).toContain('loading an archive from docker save instead');
    // The archive was a temporary file, and is gone.
    expect(existsSync(archive)).toBe(false);
    expect(readdirSync(join(plane.dir, 'user')).filter((f) => f.startsWith('superstock-image.'))).toEqual([]);
    expect(statefulSet().spec.template.spec.containers[0]?.image).toBe(image);
    // Nothing reached the current context (its server does not exist: any call there would have failed the target).
    expect(run.stderr).not.toMatch(/127\.0\.0\.1:1\b/);
  });

  test('no fall-back when kind load docker-image works; a failed fall-back fails the target', () => {
    const loaded = make('kind-load', { STUB_DOCKER_IMAGE_LOAD: 'ok' });
    expect({ status: loaded.status, calls: loaded.calls }).toEqual({ status: 0, calls: [`kind load docker-image superstock:${APP_VERSION} --name superstock`] });
    const failed = make('kind-load', { STUB_ARCHIVE_LOAD: 'fail' });
    expect(failed.status).not.toBe(0);
    expect(failed.calls.map((c) => c.split(' ').slice(0, 3).join(' '))).toEqual(['kind load docker-image', 'docker save -o', 'kind load image-archive', 'kind loaded: archive']);
  });

  test('running it again, and any upgrade with the same values, restarts nothing: same pod template, same generation, same token', () => {
    const before = statefulSet();
    const token = adminToken();
    expect(before.metadata.generation).toBe(1);
    const again = make('kind-up', { STUB_DOCKER_IMAGE_LOAD: 'ok' });
    expect(again.status === 0 ? 'made' : `${again.stdout}\n${again.stderr}`).toBe('made');
    // What `make monitoring-up` does to the release once the Prometheus Operator is installed.
    const reused = plane.helm('upgrade', RELEASE, CHART, '--namespace', NAMESPACE, '--reuse-values');
    expect(reused.status).toBe(0);
    const after = statefulSet();
    expect(after.metadata.generation).toBe(1);
    expect(after.spec.template).toEqual(before.spec.template);
    expect(adminToken()).toBe(token);
    const history = kubectlJson<{ items: unknown[] }>('get', 'secrets', '--namespace', NAMESPACE, '-l', `owner=helm,name=${RELEASE}`).items;
    expect(history).toHaveLength(3);
  });
});

describe('make k6', () => {
  let k6: ChildProcess | null = null;

  afterAll(() => {
    if (k6 && k6.exitCode === null) k6.kill('SIGTERM');
  });

  test("waits for the Job's pod to start, exits with k6's exit code, and leaves the release as it was", async () => {
    const revisionsBefore = kubectlJson<{ items: unknown[] }>('get', 'secrets', '--namespace', NAMESPACE, '-l', `owner=helm,name=${RELEASE}`).items.length;
    let out = '';
    k6 = spawn('make', ['--no-print-directory', '-C', REPO_ROOT, 'k6', 'K6_SCRIPT=v2-buy.ts'], { env: { ...env, K6_START_TIMEOUT: '60', K6_RUN_TIMEOUT: '60' }, stdio: ['ignore', 'pipe', 'pipe'] });
    k6.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    k6.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => k6?.once('exit', (code) => resolve(code)));
    const running = () => k6?.exitCode === null && k6.signalCode === null;

    interface Job {
      metadata: { name: string };
      spec: { template: { spec: { containers: Array<{ image: string; args: string[]; env: Array<{ name: string; value: string }> }> } } };
    }
    let job: Job | undefined;
    await waitFor(
      () => {
        job = kubectlJson<{ items: Job[] }>('get', 'jobs', '--namespace', NAMESPACE, '-l', 'app.kubernetes.io/component=k6').items[0];
        return job !== undefined;
      },
      { timeoutMs: 30_000, message: `the k6 Job created (output so far: ${out})` },
    );
    const name = (job as Job).metadata.name;
    expect(name).toMatch(/^superstock-k6-run-\d{14}-\d+$/);
    const container = (job as Job).spec.template.spec.containers[0];
    expect(container?.args).toEqual(['run', '/scripts/v2-buy.ts']);
    expect(container?.env).toContainEqual({ name: 'BASE_URL', value: 'http://superstock:5059' });

    // No pod yet: the script waits (the old target's `kubectl wait` failed here at once).
    await waitFor(() => out.includes(`waiting for the pod of job/${name}`), { timeoutMs: 30_000, message: 'the script waiting for the pod' });
    expect(running()).toBe(true);

    // The Job controller's part: the pod, Pending while its image is pulled.
    const podName = `${name}-x7k2p`;
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: podName, namespace: NAMESPACE, labels: { 'job-name': name, 'batch.kubernetes.io/job-name': name } },
      spec: { restartPolicy: 'Never', containers: [{ name: 'k6', image: container?.image }] },
    };
    const podFile = join(plane.dir, 'k6-pod.json');
    writeFileSync(podFile, JSON.stringify(pod));
    expect(plane.kubectl('create', '-f', podFile).status).toBe(0);
    await waitFor(() => out.includes(`pod/${podName} Pending`), { timeoutMs: 30_000, message: 'the script seeing the pod Pending' });
    expect(running()).toBe(true);

    // The kubelet's part: the container runs. The script streams its logs; with no kubelet here
    // the stream is empty and ends at once, as a dropped stream would: the script must go on
    // waiting for the container to end...
    const startedAt = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const status = (phase: string, state: Record<string, unknown>) =>
      plane.kubectl('patch', 'pod', podName, '--namespace', NAMESPACE, '--subresource', 'status', '--type', 'merge', '-p', JSON.stringify({
        status: { phase, containerStatuses: [{ name: 'k6', image: container?.image, imageID: '', ready: phase === 'Running', restartCount: 0, state }] },
      }));
    expect(status('Running', { running: { startedAt } }).stderr).toBe('');
    await waitFor(() => out.includes('waiting for it to end'), { timeoutMs: 30_000, message: `the script past the logs (output so far: ${out})` });
    expect(running()).toBe(true);

    // ...and ends: k6 exits 99 when a threshold fails, and so must make.
    expect(status('Failed', { terminated: { exitCode: 99, reason: 'Error', startedAt, finishedAt: startedAt } }).stderr).toBe('');
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([exited, new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still running'), 30_000)))]);
    clearTimeout(timer);
    expect(code).toBe(2); // make's own code when a recipe fails...
    expect(out).toContain('k6: exit code 99'); // ...and the recipe's, k6's
    expect(out).toMatch(/\[Makefile:\d+: k6\] Error 99|\[deploy\/kube\.mk:\d+: k6\] Error 99/);

    // The release is untouched: no new revision, k6 not enabled in its values. The scripts'
    // ConfigMap is gone; the Job stays for its TTL.
    expect(kubectlJson<{ items: unknown[] }>('get', 'secrets', '--namespace', NAMESPACE, '-l', `owner=helm,name=${RELEASE}`).items).toHaveLength(revisionsBefore);
    const values = plane.helm('get', 'values', RELEASE, '--namespace', NAMESPACE, '--all', '--output', 'json');
    expect((JSON.parse(values.stdout) as { k6: { enabled: boolean } }).k6.enabled).toBe(false);
    expect(plane.kubectl('get', 'configmap', name, '--namespace', NAMESPACE).status).not.toBe(0);
    expect(plane.kubectl('get', 'job', name, '--namespace', NAMESPACE).status).toBe(0);
  }, 150_000);

  test('a pod that never starts is reported, and its Job deleted so that it cannot start later', () => {
    const run = spawnSync('make', ['--no-print-directory', '-C', REPO_ROOT, 'k6'], { env: { ...env, K6_START_TIMEOUT: '3' }, encoding: 'utf8', timeout: 60_000 });
    expect(run.status).not.toBe(0);
    const name = /job\/(superstock-k6-run-\S+) runs/.exec(run.stdout)?.[1] as string;
    expect(run.stderr).toContain(`k6: the Job's pod (not created) did not start within 3s`);
    expect(plane.kubectl('get', 'job', name, '--namespace', NAMESPACE).status).not.toBe(0);
    expect(plane.kubectl('get', 'configmap', name, '--namespace', NAMESPACE).status).not.toBe(0);
  });
});
