/**
 * The Kubernetes side proven against a real API server (etcd + kube-apiserver from pinned Go
 * modules, tests/harness/kube.ts): the chart installs and every object passes the server's own
 * validation; the chart's ServiceAccount may do exactly what the elector needs; the Lease elector
 * elects, fails over, fences and hands over with three contenders acting as that ServiceAccount;
 * and three real service processes elect through it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiException, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, Watch, type V1Lease, type V1Pod } from '@kubernetes/client-node';
import { MongoClient } from 'mongodb';
import { pino } from 'pino';
import type { Leadership } from '../../src/cluster/election/elector.js';
import { KubeApi, microTime } from '../../src/cluster/election/kube-api.js';
import { HOLDER_URL_ANNOTATION, KubernetesLeaseElector } from '../../src/cluster/election/kubernetes-lease-elector.js';
import { Fence } from '../../src/cluster/ledger/ledger.js';
import { PRIMARY_ROLE, PrimaryPodLabeler, ROLE_LABEL } from '../../src/cluster/election/pod-labeler.js';
import { REPO_ROOT } from '../harness/deps.js';
import { startControlPlane, type ControlPlane } from '../harness/kube.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { waitFor } from '../harness/wait.js';
import { TestCluster } from '../support/cluster.js';
import { buy } from '../support/http.js';

const CHART = join(REPO_ROOT, 'deploy', 'helm', 'superstock');
const NAMESPACE = 'sales';
const RELEASE = 'shop';
const FULLNAME = `${RELEASE}-superstock`;
const LEASE = `${FULLNAME}-primary`;
const SERVICE_ACCOUNT = `system:serviceaccount:${NAMESPACE}:${FULLNAME}`;
const POD_SELECTOR = `app.kubernetes.io/name=superstock,app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=service`;
// A lease long enough that "taken over without waiting it out" cannot be luck on a slow machine.
const TIMINGS = { leaseDurationMs: 4000, renewDeadlineMs: 2500, retryPeriodMs: 300 };
const JITTER = 1.2;

let plane: ControlPlane;
/**
 * The chart in primary mode (the Kubernetes elector's: allotments mode, the default, uses no
 * Kubernetes API), installed once for the whole file: the RBAC and election tests act as its
 * ServiceAccount.
 */
let installed: { status: number | null; stderr: string };

beforeAll(async () => {
  plane = await startControlPlane();
  installed = plane.helm('install', RELEASE, CHART, '--namespace', NAMESPACE, '--create-namespace', '--set', 'cluster.mode=primary');
}, 120_000);

/** helm's own informational lines (e.g. about the k6 scripts' symlink) are not errors. */
const helmErrors = (stderr: string) => stderr.replace(/^level=INFO.*\n/gm, '');

afterAll(async () => {
  await plane?.stop();
});

function kubectlJson<T>(...args: string[]): T {
  const result = plane.kubectl(...args, '-o', 'json');
  if (result.status !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

interface ObjectList {
  items: Array<{ kind: string; metadata: { name: string; labels?: Record<string, string> }; spec?: { replicas?: number } }>;
}

describe('helm install into a real kube-apiserver', () => {
  test('the chart in primary mode installs: the API server accepts every object', () => {
    expect({ status: installed.status, stderr: helmErrors(installed.stderr) }).toEqual({ status: 0, stderr: '' });

    const objects = kubectlJson<ObjectList>('get', 'statefulsets,deployments,services,serviceaccounts,roles,rolebindings,poddisruptionbudgets,secrets,configmaps', '--namespace', NAMESPACE).items;
    const names = (kind: string) => objects.filter((o) => o.kind === kind).map((o) => o.metadata.name).sort();
    expect(names('StatefulSet')).toEqual([`${FULLNAME}`, `${FULLNAME}-mongodb`, `${FULLNAME}-redis`].sort());
    expect(names('Deployment')).toEqual([]);
    expect(objects.find((o) => o.kind === 'StatefulSet' && o.metadata.name === FULLNAME)?.spec?.replicas).toBe(3);
    expect(names('Service')).toEqual(expect.arrayContaining([FULLNAME, `${FULLNAME}-headless`, `${FULLNAME}-primary`, `${FULLNAME}-mongodb`, `${FULLNAME}-redis`]));
    expect(names('ServiceAccount')).toContain(FULLNAME);
    expect(names('Role')).toEqual([FULLNAME]);
    expect(names('RoleBinding')).toEqual([FULLNAME]);
    expect(names('PodDisruptionBudget')).toEqual([FULLNAME]);
    expect(names('Secret')).toContain(FULLNAME);
    expect(objects.some((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1')).toBe(true);
  });

  test('the default (allotments mode) with the Prometheus Operator API present and external MongoDB/Redis: ServiceMonitor and PrometheusRule install, no in-chart stores, no RBAC', () => {
    const crds = plane.kubectl('apply', '-f', join(REPO_ROOT, 'tests', 'deploy', 'fixtures', 'prometheus-operator-crds.yaml'));
    expect(crds.status).toBe(0);
    const established = plane.kubectl('wait', '--for', 'condition=Established', '--timeout', '30s', 'crd/servicemonitors.monitoring.coreos.com', 'crd/prometheusrules.monitoring.coreos.com');
    expect(established.status).toBe(0);

    const values = 'mongodb.enabled=false,externalMongodb.url=mongodb://db.example:27017/,redis.enabled=false,externalRedis.url=redis://cache.example:6379';
    const result = plane.helm('install', 'ext', CHART, '--namespace', 'monitored', '--create-namespace', '--set', values);
    expect({ status: result.status, stderr: helmErrors(result.stderr) }).toEqual({ status: 0, stderr: '' });
    const objects = kubectlJson<ObjectList>('get', 'servicemonitors,prometheusrules,statefulsets,deployments', '--namespace', 'monitored').items;
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(['PrometheusRule/ext-superstock', 'ServiceMonitor/ext-superstock', 'StatefulSet/ext-superstock']);
    expect(kubectlJson<ObjectList>('get', 'roles,rolebindings', '--namespace', 'monitored').items).toEqual([]);
  });
});

describe("RBAC: kubectl auth can-i as the chart's ServiceAccount", () => {
  /** `resource` may carry extra flags after a space (e.g. `pods --all-namespaces`). */
  const canI = (verb: string, resource: string) => {
    const [name, ...flags] = resource.split(' ');
    const result = plane.kubectl('auth', 'can-i', verb, name as string, ...flags, '--namespace', NAMESPACE, '--as', SERVICE_ACCOUNT);
    return `${verb} ${resource}: ${result.stdout.trim()}`;
  };

  test('allows what the elector and the pod labeler need', () => {
    const needed: Array<[string, string]> = [
      ['get', `leases.coordination.k8s.io/${LEASE}`],
      ['update', `leases.coordination.k8s.io/${LEASE}`],
      ['create', 'leases.coordination.k8s.io'],
      ['list', 'pods'],
      // Every replica, also those `kubectl scale` adds (the admission policy below narrows patch).
      ...[0, 1, 2, 3, 7].map((i): [string, string] => ['patch', `pods/${FULLNAME}-${i}`]),
    ];
    expect(needed.map(([verb, resource]) => canI(verb, resource))).toEqual(needed.map(([verb, resource]) => `${verb} ${resource}: yes`));
  });

  test('and nothing more', () => {
    const denied: Array<[string, string]> = [
      ['update', 'leases.coordination.k8s.io/someone-elses'],
      ['delete', `leases.coordination.k8s.io/${LEASE}`],
      ['delete', `pods/${FULLNAME}-0`],
      ['create', 'pods'],
      ['update', `pods/${FULLNAME}-0`],
      ['get', 'secrets'],
      ['list', 'secrets'],
      ['patch', `statefulsets.apps/${FULLNAME}`],
      ['list', 'pods --all-namespaces'],
    ];
    expect(denied.map(([verb, resource]) => canI(verb, resource))).toEqual(denied.map(([verb, resource]) => `${verb} ${resource}: no`));
  });

  test("the admission policy lets it set or remove the role label on any of the release's replicas, a scaled-up one too, and change nothing else", async () => {
    const replicaLabels = Object.fromEntries(POD_SELECTOR.split(',').map((kv) => kv.split('=')));
    const pod = (name: string, labels: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NAMESPACE, labels }, spec: { containers: [{ name: 'c', image: 'superstock:test' }] } });
    const scaled = `${FULLNAME}-7`;
    expect(plane.kubectl('create', '-f', writeTemp('policy-pods.json', { apiVersion: 'v1', kind: 'List', items: [pod(scaled, replicaLabels), pod('unrelated', { app: 'other' })] })).status).toBe(0);
    // The elector's own kind of call (a merge patch, no GET first: the ServiceAccount may not get pods).
    const asElector = new KubeConfig();
    asElector.loadFromFile(plane.kubeconfigFor('policy-check', plane.serviceAccountToken(NAMESPACE, FULLNAME)));
    const core = asElector.makeApiClient(CoreV1Api);
    const policy = `${FULLNAME}.${NAMESPACE}.pod-role-label.superstock.io`;
    const patch = async (name: string, body: object, dryRun?: 'All') => {
      try {
        await core.patchNamespacedPod({ name, namespace: NAMESPACE, body, dryRun }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
        return 'allowed';
      } catch (error) {
        if (error instanceof ApiException && error.code === 422 && String(error.body).includes(`ValidatingAdmissionPolicy '${policy}'`)) return 'denied by policy';
        throw error;
      }
    };

    // The policy takes effect once the API server's informer has it: probe with dry runs until then.
    await waitFor(async () => (await patch('unrelated', { metadata: { labels: { [ROLE_LABEL]: PRIMARY_ROLE } } }, 'All')) === 'denied by policy', { timeoutMs: 15_000, message: 'the admission policy in force' });
    try {
      const attempts: Array<[string, string, object]> = [
        ['label the scaled-up replica primary', scaled, { metadata: { labels: { [ROLE_LABEL]: PRIMARY_ROLE } } }],
        ['remove that label again', scaled, { metadata: { labels: { [ROLE_LABEL]: null } } }],
        ['label a pod of another app', 'unrelated', { metadata: { labels: { [ROLE_LABEL]: PRIMARY_ROLE } } }],
        ['set the role label to another value', scaled, { metadata: { labels: { [ROLE_LABEL]: 'secondary' } } }],
        ['set another label', scaled, { metadata: { labels: { team: 'x' } } }],
        ['take a selector label off a replica', scaled, { metadata: { labels: { 'app.kubernetes.io/component': null } } }],
        ['add an annotation', scaled, { metadata: { annotations: { a: 'b' } } }],
        ['change the image', scaled, { spec: { containers: [{ name: 'c', image: 'evil:1' }] } }],
      ];
      const outcomes: string[] = [];
      for (const [what, name, body] of attempts) outcomes.push(`${what}: ${await patch(name, body)}`);
      expect(outcomes).toEqual([
        'label the scaled-up replica primary: allowed',
        'remove that label again: allowed',
        'label a pod of another app: denied by policy',
        'set the role label to another value: denied by policy',
        'set another label: denied by policy',
        'take a selector label off a replica: denied by policy',
        'add an annotation: denied by policy',
        'change the image: denied by policy',
      ]);
      // The admin is not bound by it.
      expect(plane.kubectl('label', 'pod', scaled, 'team=x', '--namespace', NAMESPACE).status).toBe(0);
    } finally {
      plane.kubectl('delete', 'pod', scaled, 'unrelated', '--namespace', NAMESPACE, '--wait=false');
    }
  });
});

/** The real API client, telling the test when a Lease write leaves (to stop a leader mid-renewal). */
class ObservedKubeApi extends KubeApi {
  replaceSent: (() => void) | null = null;

  override async replaceLease(body: V1Lease, timeoutMs: number): Promise<V1Lease | null> {
    this.replaceSent?.();
    return super.replaceLease(body, timeoutMs);
  }
}

describe('Kubernetes Lease election: three contenders as the chart ServiceAccount', () => {
  interface Contender {
    readonly id: string;
    readonly proxy: TcpProxy;
    readonly api: ObservedKubeApi;
    readonly elector: KubernetesLeaseElector;
    readonly events: Array<{ at: number; leadership: Leadership }>;
  }

  const contenders: Contender[] = [];
  let mongo: MongoClient;
  let watch: AbortController | null = null;
  const labelled = new Map<string, boolean>();
  let mostLabelledAtOnce = 0;
  let admin: KubeConfig;

  const leaders = () => contenders.filter((c) => c.elector.isLeader());
  const labelledPods = () => [...labelled].filter(([, on]) => on).map(([name]) => name).sort();
  const firstEvent = (c: Contender, role: Leadership['role'], after: number) => c.events.find((e) => e.at >= after && e.leadership.role === role)?.at;

  beforeAll(async () => {
    // No StatefulSet controller runs: create the replicas' pod objects the way it would name them.
    const pods = [0, 1, 2].map((i) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `${FULLNAME}-${i}`, namespace: NAMESPACE, labels: Object.fromEntries(POD_SELECTOR.split(',').map((kv) => kv.split('='))) },
      spec: { serviceAccountName: FULLNAME, containers: [{ name: 'superstock', image: 'superstock:test' }] },
    }));
    const created = plane.kubectl('create', '-f', writeTemp('pods.json', { apiVersion: 'v1', kind: 'List', items: pods }));
    expect(created.status).toBe(0);

    admin = new KubeConfig();
    admin.loadFromFile(plane.kubeconfig);
    watch = await new Watch(admin).watch(
      `/api/v1/namespaces/${NAMESPACE}/pods`,
      {},
      (phase: string, pod: V1Pod) => {
        const name = pod.metadata?.name ?? '';
        labelled.set(name, phase !== 'DELETED' && pod.metadata?.labels?.[ROLE_LABEL] === PRIMARY_ROLE);
        mostLabelledAtOnce = Math.max(mostLabelledAtOnce, labelledPods().length);
      },
      () => undefined,
    );

    mongo = await MongoClient.connect(process.env.MONGO_URL as string);
    const fence = new Fence(mongo.db(`lease_${Date.now()}`), 2000);
    const token = plane.serviceAccountToken(NAMESPACE, FULLNAME);
    const apiPort = Number(new URL(plane.url).port);
    for (const i of [0, 1, 2]) {
      const id = `${FULLNAME}-${i}`;
      const proxy = await startTcpProxy(apiPort);
      const kc = new KubeConfig();
      kc.loadFromFile(plane.kubeconfigFor(id, token, `https://127.0.0.1:${proxy.port}`));
      const api = new ObservedKubeApi(kc, NAMESPACE);
      const elector = new KubernetesLeaseElector({
        api,
        leaseName: LEASE,
        id,
        url: `http://${id}.example:5059`,
        timings: TIMINGS,
        epochs: fence,
        log: pino({ level: 'silent' }),
        labeler: new PrimaryPodLabeler({ api, podName: id, podSelector: POD_SELECTOR }),
      });
      const contender: Contender = { id, proxy, api, elector, events: [] };
      elector.onChange((leadership) => contender.events.push({ at: performance.now(), leadership }));
      contenders.push(contender);
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.all(contenders.map((c) => c.elector.stop()));
    await Promise.all(contenders.map((c) => c.proxy.close()));
    watch?.abort();
    await mongo?.close();
  });

  afterEach(() => {
    // Checked on every pod event the API server sent, not just now.
    expect(mostLabelledAtOnce).toBeLessThanOrEqual(1);
  });

  test('exactly one leader; only its pod carries the primary label; the others know who and where it is', async () => {
    await Promise.all(contenders.map((c) => c.elector.start()));
    await waitFor(() => leaders().length === 1, { timeoutMs: 10_000, message: 'one leader' });
    const leader = leaders()[0] as Contender;
    await waitFor(() => labelledPods().join() === leader.id, { timeoutMs: 10_000, message: `only ${leader.id} labelled` });
    await waitFor(() => contenders.every((c) => c.elector.current().leaderId === leader.id), { timeoutMs: 10_000, message: 'everyone knows the leader' });
    expect(contenders.map((c) => c.elector.currentLeaderUrl())).toEqual(contenders.map(() => `http://${leader.id}.example:5059`));

    const lease = kubectlJson<{ spec: { holderIdentity: string; renewTime: string; leaseDurationSeconds: number }; metadata: { annotations: Record<string, string> } }>('get', 'lease', LEASE, '--namespace', NAMESPACE);
    expect(lease.spec.holderIdentity).toBe(leader.id);
    expect(lease.metadata.annotations[HOLDER_URL_ANNOTATION]).toBe(`http://${leader.id}.example:5059`);
    expect(lease.spec.renewTime).toMatch(/\.\d{6}Z$/);
    expect(leader.elector.current().epoch).toBeGreaterThan(0);
  });

  test('the leader cut off from the API steps down before its lease can expire; another takes over within lease + retry period; epochs rise', async () => {
    const old = leaders()[0] as Contender;
    const oldEpoch = old.elector.current().epoch;
    const cutAt = performance.now();
    old.proxy.cut();

    await waitFor(() => leaders().some((c) => c !== old), { timeoutMs: 15_000, message: 'a new leader' });
    const next = leaders().find((c) => c !== old) as Contender;
    const steppedDownAt = firstEvent(old, 'secondary', cutAt);
    const tookOverAt = firstEvent(next, 'primary', cutAt);
    if (steppedDownAt === undefined || tookOverAt === undefined) throw new Error('missing leadership events');
    const figures = { steppedDownMs: Math.round(steppedDownAt - cutAt), tookOverMs: Math.round(tookOverAt - cutAt) };
    // The old leader renewed last at or before the cut. It stops on its renew-deadline timer:
    // before its lease can have expired for anyone, and strictly before the successor starts.
    expect(figures.steppedDownMs).toBeLessThan(TIMINGS.leaseDurationMs);
    expect(steppedDownAt).toBeLessThan(tookOverAt);
    // A follower notices the last renewal up to one retry period late, waits a lease duration on
    // its own clock, then acts on its next retry: lease + 2 × jittered retry, plus request time
    // (a second, for a loaded machine).
    expect(figures.tookOverMs).toBeLessThan(TIMINGS.leaseDurationMs + 2 * JITTER * TIMINGS.retryPeriodMs + 1000);
    expect(next.elector.current().epoch).toBeGreaterThan(oldEpoch);
    await waitFor(() => labelledPods().join() === next.id, { timeoutMs: 10_000, message: `the label moved to ${next.id}` });

    old.proxy.heal();
    await waitFor(() => old.elector.current().leaderId === next.id, { timeoutMs: 10_000, message: 'the old leader follows the new one' });
    expect(old.elector.isLeader()).toBe(false);
    expect(leaders()).toEqual([next]);
  });

  test('a label removed from the leader\'s pod by hand comes back while it leads', async () => {
    const leader = leaders()[0] as Contender;
    expect(plane.kubectl('label', 'pod', leader.id, `${ROLE_LABEL}-`, '--namespace', NAMESPACE).status).toBe(0);
    await waitFor(() => labelledPods().length === 0, { timeoutMs: 5000, message: 'the watch saw the label go' });
    await waitFor(() => labelledPods().join() === leader.id, { timeoutMs: 15_000, message: `the label back on ${leader.id}` });
    expect(leaders()).toEqual([leader]);
  });

  test('a stopped leader releases the Lease: a successor takes over without waiting it out', async () => {
    const old = leaders()[0] as Contender;
    const oldEpoch = old.elector.current().epoch;
    const stoppedAt = performance.now();
    await old.elector.stop();
    await waitFor(() => leaders().some((c) => c !== old), { timeoutMs: 10_000, message: 'a successor' });
    const next = leaders()[0] as Contender;
    const tookOverAt = firstEvent(next, 'primary', stoppedAt) as number;
    expect(tookOverAt - stoppedAt).toBeLessThan(TIMINGS.leaseDurationMs);
    expect(next.elector.current().epoch).toBeGreaterThan(oldEpoch);
    await waitFor(() => labelledPods().join() === next.id, { timeoutMs: 10_000, message: `the label moved to ${next.id}` });
    await old.elector.start();
  });

  test('a leader stopped while a renewal is on its way still releases the Lease: the successor does not wait it out', async () => {
    // Released before the renewal lands, the release carries a stale resourceVersion (a 409) and
    // the Lease stays held until it expires: what a SIGTERM mid-renewal once did (a CI failure).
    const old = leaders()[0] as Contender;
    old.proxy.setLatency(200); // the renewal stays on the wire while stop() runs
    await new Promise<void>((resolve) => (old.api.replaceSent = resolve));
    old.api.replaceSent = null;
    const stoppedAt = performance.now();
    await old.elector.stop();
    old.proxy.setLatency(0);
    await waitFor(() => leaders().some((c) => c !== old), { timeoutMs: 10_000, message: 'a successor' });
    const next = leaders()[0] as Contender;
    expect((firstEvent(next, 'primary', stoppedAt) as number) - stoppedAt).toBeLessThan(TIMINGS.leaseDurationMs);
    await waitFor(() => labelledPods().join() === next.id, { timeoutMs: 10_000, message: `the label moved to ${next.id}` });
    await old.elector.start();
  });
});

describe('the Lease API contract the elector relies on', () => {
  test('MicroTime with six fractional digits is accepted, three are refused with a 400; a stale resourceVersion is a 409 (null)', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(plane.kubeconfig);
    const api = new KubeApi(kc, 'default');
    const body = { metadata: { name: 'contract' }, spec: { holderIdentity: 'a', renewTime: microTime(new Date('2026-01-02T03:04:05.678Z')) } };
    const created = await api.createLease(body, 5000);
    expect(created?.spec?.renewTime).toBeDefined();
    expect(JSON.stringify(microTime(new Date('2026-01-02T03:04:05.678Z')))).toBe('"2026-01-02T03:04:05.678000Z"');
    expect(await api.createLease(body, 5000)).toBeNull(); // already exists: 409

    const threeDigits = plane.kubectl('create', '-f', writeTemp('three-digits.json', { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'three', namespace: 'default' }, spec: { renewTime: '2026-01-02T03:04:05.678Z' } }));
    expect(threeDigits.status).not.toBe(0);
    expect(threeDigits.stderr).toMatch(/renewTime|MicroTime|parsing time|cannot parse/i);

    const fresh = (await api.readLease('contract', 5000))!;
    const renewed = await api.replaceLease({ ...fresh, spec: { ...fresh.spec, holderIdentity: 'b', renewTime: microTime() } }, 5000);
    expect(renewed?.spec?.holderIdentity).toBe('b');
    const stale = await api.replaceLease({ ...fresh, spec: { ...fresh.spec, holderIdentity: 'c', renewTime: microTime() } }, 5000);
    expect(stale).toBeNull();
  });
});

describe('three service replicas electing through the Lease', () => {
  let cluster: TestCluster | null = null;

  afterAll(async () => {
    await cluster?.stop();
  });

  test('one primary, its pod alone labelled, buys through any replica; SIGTERM hands over without waiting out the Lease', async () => {
    // The contenders above released the Lease (afterAll of their block) before this one runs.
    const token = plane.serviceAccountToken(NAMESPACE, FULLNAME);
    const kubeconfig = plane.kubeconfigFor('replicas', token);
    // A long lease, so that a handover which waited it out could not pass for a released one.
    const lease = { LEASE_DURATION_MS: '10000', RENEW_DEADLINE_MS: '6000', RETRY_PERIOD_MS: '500' };
    const env = { ELECTION: 'kubernetes', KUBECONFIG: kubeconfig, POD_NAMESPACE: NAMESPACE, POD_SELECTOR, LEASE_NAME: LEASE, ...lease };
    cluster = await TestCluster.start(3, env, (i) => ({
      POD_NAME: `${FULLNAME}-${i}`,
      STOCK_HOST_ID: `${FULLNAME}-${i}`,
    }));
    const primary = await cluster.waitForSinglePrimary();
    // Each replica's STOCK_HOST_ID is its pod's name.
    const holder = () => kubectlJson<{ spec: { holderIdentity?: string } }>('get', 'lease', LEASE, '--namespace', NAMESPACE).spec.holderIdentity;
    const labelledNow = () => kubectlJson<ObjectList>('get', 'pods', '--namespace', NAMESPACE, '-l', `${ROLE_LABEL}=${PRIMARY_ROLE}`).items.map((p) => p.metadata.name);
    expect(holder()).toBe(primary.id);
    await waitFor(() => labelledNow().join() === primary.id, { timeoutMs: 10_000, message: 'the primary pod labelled' });

    for (const replica of cluster.replicas) {
      const res = await buy(cluster.url(replica), 'atomic', 'STOCK', 1);
      expect(res.status).toBe(200);
    }

    const stoppedAt = performance.now();
    await primary.service?.stop('SIGTERM');
    primary.service = null;
    const next = await cluster.waitForSinglePrimary(10_000);
    const handoverMs = performance.now() - stoppedAt;
    expect(next).not.toBe(primary);
    expect(handoverMs).toBeLessThan(5000);
    expect(holder()).toBe(next.id);
    await waitFor(() => labelledNow().join() === next.id, { timeoutMs: 10_000, message: 'the label moved with the Lease' });
  });
});

function writeTemp(name: string, content: unknown): string {
  const file = join(plane.dir, name);
  writeFileSync(file, JSON.stringify(content));
  return file;
}
