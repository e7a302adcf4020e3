/**
 * The chart, serving, on a real single-node Kubernetes built here (tests/harness/local-kube.ts):
 * `helm install` with the image `make image` built, the MongoDB wire server as an external
 * MongoDB, Redis from the chart with the Debian-built image. Three pods Ready with their own
 * STOCK_HOST_ID, non-root on a read-only root; exactly one labelled primary and the primary
 * Service's endpoints on it; `helm upgrade` without changes restarts nothing; buys through the main
 * Service from a Job inside the cluster while the primary pod is deleted — a successor takes over
 * and no acknowledged sale is lost; the original's siege run as an in-cluster Job; a real
 * Prometheus scrapes the pods, the dashboard's queries return data and every alert rule evaluates.
 * Run by `make kube-test-local` (budget: about 8 minutes, most of it starting the node).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../harness/deps.js';
import { startLocalNode, type LocalNode } from '../harness/local-kube.js';
import { waitFor } from '../harness/wait.js';

const CHART = join(REPO_ROOT, 'deploy', 'helm', 'superstock');
const FIXTURES = join(REPO_ROOT, 'tests', 'containers', 'fixtures');
const NAMESPACE = 'shop';
const RELEASE = 'shop';
const FULLNAME = `${RELEASE}-superstock`;
const SELECTOR = `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=service`;
const PRIMARY_SELECTOR = `${SELECTOR},superstock.io/role=primary`;
const MAIN_URL = `http://${FULLNAME}:5059`;
const LANES = ['atomic', 'lock', 'signal', 'db', 'redis'] as const;
/** The install's values: the images built here, the wire server as the external MongoDB. */
const values = (mongoAddress: string) => [
  '--set', 'image.repository=superstock', '--set', 'image.tag=dev', '--set', 'image.pullPolicy=Never',
  '--set', 'mongodb.enabled=false', '--set', `externalMongodb.url=mongodb://${mongoAddress}:27017/`,
  '--set', 'redis.image=localhost/superstock-redis:local',
];
let VALUES: string[] = [];

interface Pod {
  metadata: { name: string; uid: string; labels?: Record<string, string> };
  status: { podIP?: string; conditions?: Array<{ type: string; status: string }>; containerStatuses?: Array<{ restartCount: number }> };
}

let node: LocalNode;

function ok(result: { status: number | null; stdout: string; stderr: string }, what: string): string {
  if (result.status !== 0) throw new Error(`${what} exited ${result.status}: ${result.stderr}${result.stdout.slice(-2000)}`);
  return result.stdout;
}
const kubectl = (...args: string[]) => ok(node.kubectl(...args), `kubectl ${args.join(' ')}`);
const json = <T>(...args: string[]): T => JSON.parse(kubectl(...args, '-o', 'json')) as T;
const pods = (selector = SELECTOR) => json<{ items: Pod[] }>('get', 'pods', '-n', NAMESPACE, '-l', selector).items.filter((p) => p.status.podIP !== undefined);
const ready = (pod: Pod) => pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
const leaseHolder = () => kubectl('get', 'lease', `${FULLNAME}-primary`, '-n', NAMESPACE, '-o', 'jsonpath={.spec.holderIdentity}').trim();
/** curl from the client pod: what any pod in the cluster gets. */
const curl = (...args: string[]) => kubectl('exec', '-n', NAMESPACE, 'client', '--', 'curl', '-s', '--max-time', '10', ...args);
function apply(name: string, manifest: unknown): void {
  const file = join(node.state, `${name}.json`);
  writeFileSync(file, JSON.stringify(manifest));
  kubectl('apply', '-f', file);
}

beforeAll(async () => {
  node = await startLocalNode();
  try {
    kubectl('create', 'namespace', NAMESPACE);
    // No storage provisioner runs here: two hostPath volumes without a class stand ready for the
    // chart's claims (Redis's data), as a cluster's default storage would. Pods run non-root.
    apply('volumes', {
      apiVersion: 'v1',
      kind: 'List',
      items: [0, 1].map((i) => {
        const path = join(node.state, 'volumes', `pv-${i}`);
        mkdirSync(path, { recursive: true });
        chmodSync(path, 0o777);
        return { apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: `local-${i}` }, spec: { capacity: { storage: '2Gi' }, accessModes: ['ReadWriteOnce'], hostPath: { path, type: 'Directory' } } };
      }),
    });
    kubectl('apply', '-f', join(FIXTURES, 'local-deps.yaml'));
    kubectl('create', 'configmap', 'buyer', '-n', NAMESPACE, `--from-file=buyer.sh=${join(FIXTURES, 'buyer.sh')}`);
    kubectl('wait', '-n', NAMESPACE, '--for=condition=Available', 'deployment/mongo', '--timeout=120s');
    // The Service's address rather than its DNS name: a replica whose very first MongoDB
    // connection misses DEPENDENCY_TIMEOUT_MS (1 s; five search-domain lookups and a cold JVM on
    // a loaded machine can) never recovers — see the README's note on what running here found.
    VALUES = values(kubectl('get', 'service', 'mongo', '-n', NAMESPACE, '-o', 'jsonpath={.spec.clusterIP}').trim());
    ok(node.helm('install', RELEASE, CHART, '--namespace', NAMESPACE, ...VALUES, '--wait', '--timeout', '5m'), 'helm install');
    kubectl('wait', '-n', NAMESPACE, '--for=condition=Ready', 'pod/client', '--timeout=60s');
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${node.logTails(15)}\n${node.kubectl('get', 'pods', '-A', '-o', 'wide').stdout}`, { cause: error });
  }
}, 900_000);

afterAll(async () => {
  await node?.down();
}, 180_000);

describe('the chart on a real single-node Kubernetes', () => {
  test('three pods Ready, each with its own STOCK_HOST_ID (its pod name), non-root on a read-only root filesystem', () => {
    const running = pods();
    expect(running.map((p) => p.metadata.name).sort()).toEqual([0, 1, 2].map((i) => `${FULLNAME}-${i}`));
    for (const pod of running) {
      expect(ready(pod)).toBe(true);
      const exec = (...command: string[]) => node.kubectl('exec', '-n', NAMESPACE, pod.metadata.name, '--', ...command);
      expect(exec('printenv', 'STOCK_HOST_ID').stdout.trim()).toBe(pod.metadata.name);
      expect(exec('id', '-u').stdout.trim()).toBe('1000');
      const write = exec('sh', '-c', 'echo x > /app/probe');
      expect(write.status).not.toBe(0);
      expect(write.stderr).toContain('Read-only file system');
      expect(kubectl('logs', '-n', NAMESPACE, pod.metadata.name)).toContain(`"hostId":"${pod.metadata.name}"`);
    }
  });

  test('exactly one pod is labelled primary, it holds the Lease, and the primary Service routes to it alone', async () => {
    await waitFor(() => pods(PRIMARY_SELECTOR).length === 1, { timeoutMs: 30_000, intervalMs: 500, message: 'one pod labelled primary' });
    const [primary] = pods(PRIMARY_SELECTOR) as [Pod];
    expect(leaseHolder()).toBe(primary.metadata.name);
    await waitFor(
      () => {
        const slices = json<{ items: Array<{ endpoints?: Array<{ addresses: string[] }> }> }>('get', 'endpointslices', '-n', NAMESPACE, '-l', `kubernetes.io/service-name=${FULLNAME}-primary`).items;
        const addresses = slices.flatMap((s) => s.endpoints ?? []).flatMap((e) => e.addresses);
        return addresses.length === 1 && addresses[0] === primary.status.podIP;
      },
      { timeoutMs: 15_000, intervalMs: 500, message: 'the primary Service endpoints are the primary pod' },
    );
    // Through that Service, from inside the cluster, the answer comes from the primary: it holds
    // the authoritative count.
    expect(JSON.parse(curl(`http://${FULLNAME}-primary:5059/v2/lanes/atomic/skus/NVDA`))).toMatchObject({ sku: 'NVDA', initial: 15000 });
  });

  test('helm upgrade with no changes restarts nothing', () => {
    const before = pods().map((p) => [p.metadata.name, p.metadata.uid]).sort();
    const revision = kubectl('get', 'statefulset', FULLNAME, '-n', NAMESPACE, '-o', 'jsonpath={.status.updateRevision}');
    ok(node.helm('upgrade', RELEASE, CHART, '--namespace', NAMESPACE, ...VALUES, '--wait', '--timeout', '3m'), 'helm upgrade');
    expect(kubectl('get', 'statefulset', FULLNAME, '-n', NAMESPACE, '-o', 'jsonpath={.status.updateRevision}')).toBe(revision);
    expect(pods().map((p) => [p.metadata.name, p.metadata.uid]).sort()).toEqual(before);
  });

  test('buys from a Job through the main Service; the primary pod deleted mid-run → another takes over; no acknowledged sale is lost', async () => {
    const STOCK = 300;
    const SKU = 'KUBE';
    const token = Buffer.from(kubectl('get', 'secret', FULLNAME, '-n', NAMESPACE, '-o', 'jsonpath={.data.admin-token}'), 'base64').toString();
    const put = curl('-o', '/dev/null', '-w', '%{http_code}', '-X', 'PUT', '-H', `authorization: Bearer ${token}`, '-H', 'content-type: application/json', '-d', `{"stock":${STOCK}}`, `${MAIN_URL}/v2/admin/skus/${SKU}`);
    expect(Number(put)).toBeLessThan(300);

    apply('buyer-job', {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'buyer', namespace: NAMESPACE },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: 'Never',
            securityContext: { runAsNonRoot: true, runAsUser: 1000 },
            containers: [{ name: 'buyer', image: 'localhost/superstock-siege:local', imagePullPolicy: 'Never', command: ['bash', '/scripts/buyer.sh', MAIN_URL, SKU, '25', '2', ...LANES], volumeMounts: [{ name: 'scripts', mountPath: '/scripts' }] }],
            volumes: [{ name: 'scripts', configMap: { name: 'buyer' } }],
          },
        },
      },
    });
    const jobLines = () => node.kubectl('logs', '-n', NAMESPACE, 'job/buyer').stdout.split('\n').filter((l) => l.split(' ').length === 4);
    await waitFor(() => jobLines().length >= 50, { timeoutMs: 60_000, intervalMs: 500, message: 'the buyer Job is buying' });

    const old = leaseHolder();
    const deletedAt = Date.now();
    kubectl('delete', 'pod', old, '-n', NAMESPACE, '--wait=false');
    let successor = '';
    await waitFor(
      () => {
        successor = leaseHolder();
        return successor !== '' && successor !== old;
      },
      { timeoutMs: 20_000, intervalMs: 200, message: 'another pod takes the Lease' },
    );
    const takeoverMs = Date.now() - deletedAt;
    await waitFor(() => pods(PRIMARY_SELECTOR).map((p) => p.metadata.name).join() === successor, { timeoutMs: 10_000, intervalMs: 300, message: 'the successor alone labelled primary' });
    // The pod deleted gracefully releases the Lease: no lease duration to wait out.
    expect(takeoverMs).toBeLessThan(15_000);

    kubectl('wait', '-n', NAMESPACE, '--for=condition=Complete', 'job/buyer', '--timeout=180s');
    const log = kubectl('logs', '-n', NAMESPACE, 'job/buyer');
    expect(log.trim().endsWith('done')).toBe(true);
    const answers = log.split('\n').filter((l) => l.split(' ').length === 4).map((l) => l.split(' ') as [string, string, string, string]);
    expect(answers.every(([, , status]) => status === '200' || status === '409')).toBe(true);
    for (const lane of LANES) {
      const acknowledged = answers.filter(([l, , status]) => l === lane && status === '200').length;
      const level = JSON.parse(curl(`http://${FULLNAME}-primary:5059/v2/lanes/${lane}/skus/${SKU}`)) as { remaining: number; sold: number };
      expect({ lane, acknowledged: acknowledged > 0, sold: level.sold, total: level.remaining + level.sold }).toEqual({ lane, acknowledged: true, sold: acknowledged, total: STOCK });
      expect(level.remaining).toBeGreaterThanOrEqual(0);
    }
    await waitFor(() => pods().filter(ready).length === 3, { timeoutMs: 120_000, intervalMs: 1000, message: 'the deleted pod back and Ready' });
  }, 420_000);

  test("the original's siege commands run as an in-cluster Job", () => {
    apply('siege-job', {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'siege', namespace: NAMESPACE },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: 'Never',
            securityContext: { runAsNonRoot: true, runAsUser: 1000 },
            containers: [{ name: 'siege', image: 'localhost/superstock-siege:local', imagePullPolicy: 'Never', command: ['siege', '-c5', '-t5S', '-b', `${MAIN_URL}/api/v1/OneStock/Cache/Atomic/Buy POST`], env: [{ name: 'HOME', value: '/tmp' }] }],
          },
        },
      },
    });
    kubectl('wait', '-n', NAMESPACE, '--for=condition=Complete', 'job/siege', '--timeout=120s');
    const report = JSON.parse(/\{[\s\S]*\}/.exec(kubectl('logs', '-n', NAMESPACE, 'job/siege'))?.[0] ?? '{}') as { transactions?: number; successful_transactions?: number; failed_transactions?: number };
    expect(report.transactions).toBeGreaterThan(100);
    expect(report.successful_transactions).toBe(report.transactions);
    expect(report.failed_transactions).toBe(0);
  }, 180_000);

  describe('a real Prometheus scraping the pods', () => {
    let prometheus: ChildProcess;
    const query = (expr: string) =>
      JSON.parse(ok(node.run('curl', ['-s', '--data-urlencode', `query=${expr}`, 'http://127.0.0.1:9090/api/v1/query']), `query ${expr}`)) as { status: string; data: { result: unknown[] } };

    beforeAll(async () => {
      // The targets, as the Operator would derive them from the Service's EndpointSlices.
      await waitFor(() => pods().filter(ready).length === 3, { timeoutMs: 120_000, intervalMs: 1000, message: 'three pods Ready' });
      type Slice = { endpoints?: Array<{ addresses: string[]; targetRef?: { name: string } }>; ports?: Array<{ name: string; port: number }> };
      const slices = json<{ items: Slice[] }>('get', 'endpointslices', '-n', NAMESPACE, '-l', `kubernetes.io/service-name=${FULLNAME}`).items;
      const targets = slices.flatMap((slice) => {
        const port = slice.ports?.find((p) => p.name === 'metrics')?.port;
        return (slice.endpoints ?? []).map((e) => ({
          targets: [`${e.addresses[0]}:${port}`],
          labels: { namespace: NAMESPACE, service: FULLNAME, pod: e.targetRef?.name ?? '', container: 'superstock', endpoint: 'metrics' },
        }));
      });
      expect(targets).toHaveLength(3);
      writeFileSync(join(node.state, 'targets.json'), JSON.stringify(targets));
      const config = readFileSync(join(FIXTURES, 'prometheus.yml'), 'utf8')
        .replaceAll('TARGETS_FILE', join(node.state, 'targets.json'))
        .replaceAll('RULES_FILE', join(CHART, 'files', 'rules', 'superstock.rules.yaml'));
      writeFileSync(join(node.state, 'prometheus.yml'), config);
      const log = openSync(join(node.state, 'logs', 'prometheus.log'), 'w');
      prometheus = spawn('bash', [join(REPO_ROOT, 'scripts', 'kube-node', 'node.sh'), 'run', node.state, 'prometheus', `--config.file=${join(node.state, 'prometheus.yml')}`, `--storage.tsdb.path=${join(node.state, 'prometheus')}`, '--web.listen-address=127.0.0.1:9090'], { stdio: ['ignore', log, log] });
      await waitFor(() => query('count(up{job="superstock"} == 1)').data.result.length === 1 && (query('count(up{job="superstock"} == 1)').data.result[0] as { value: [number, string] }).value[1] === '3', {
        timeoutMs: 60_000,
        intervalMs: 1000,
        message: 'Prometheus scrapes the three pods',
      }).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}\n${readFileSync(join(node.state, 'logs', 'prometheus.log'), 'utf8').slice(-3000)}`, { cause: error });
      });
      // Rates need two samples in their window; a little traffic makes them non-zero.
      for (let i = 0; i < 5; i++) curl('-o', '/dev/null', '-X', 'POST', `${MAIN_URL}/api/v1/ManyStock/Cache/BuyFastAtomic/NVDA`);
      await waitFor(() => query('sum(rate(superstock_requests_total[1m])) > 0').data.result.length === 1, { timeoutMs: 30_000, intervalMs: 1000, message: 'rates have data' });
    }, 120_000);

    afterAll(() => {
      prometheus?.kill('SIGTERM');
    });

    test('every query of the Grafana dashboard is valid, and those about sales, roles and latency return data', () => {
      const dashboard = JSON.parse(readFileSync(join(CHART, 'files', 'dashboards', 'superstock.json'), 'utf8')) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> };
      const mayBeEmpty = /dependency_errors|forwarded_requests|replication_lag/;
      for (const panel of dashboard.panels) {
        for (const { expr } of panel.targets ?? []) {
          const answer = query(expr);
          expect({ panel: panel.title, expr, status: answer.status }).toEqual({ panel: panel.title, expr, status: 'success' });
          if (!mayBeEmpty.test(expr)) expect({ panel: panel.title, expr, series: answer.data.result.length > 0 }).toEqual({ panel: panel.title, expr, series: true });
        }
      }
    });

    test('every alert rule evaluates cleanly; none of the invariant alerts fires', async () => {
      type Rules = { data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string; state?: string }> }> } };
      const rules = () => (JSON.parse(ok(node.run('curl', ['-s', 'http://127.0.0.1:9090/api/v1/rules']), 'rules')) as Rules).data.groups.flatMap((g) => g.rules);
      await waitFor(() => rules().every((r) => r.health !== 'unknown'), { timeoutMs: 20_000, intervalMs: 1000, message: 'every rule evaluated once' });
      const all = rules();
      expect(all.length).toBeGreaterThan(0);
      expect(all.filter((r) => r.health !== 'ok')).toEqual([]);
      expect(all.filter((r) => ['SuperstockNoPrimary', 'SuperstockTwoPrimaries', 'SuperstockOversell'].includes(r.name) && r.state === 'firing')).toEqual([]);
    });
  });
});
