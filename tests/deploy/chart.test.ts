/**
 * The Helm chart, rendered and linted by a real `helm` (built from its pinned Go module by
 * scripts/setup.sh), with assertions on the objects that matter; its PromQL checked by
 * `promtool`, and every metric it names checked against a live /metrics.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../harness/deps.js';
import { HELM, runTool } from '../harness/kube.js';
import { startService } from '../harness/service.js';

const CHART = join(REPO_ROOT, 'deploy', 'helm', 'superstock');

interface K8sObject {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  rules?: Array<Record<string, unknown>>;
}

const helm = (...args: string[]) => runTool(HELM, args);

/**
 * Every manifest parsed strictly: a duplicate key (two `app.kubernetes.io/component` labels, say)
 * is an error here, although Helm and the API server silently keep the last one.
 */
function parseManifests(text: string): K8sObject[] {
  const documents = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
  if (!Array.isArray(documents)) throw new Error('not a stream of YAML documents');
  const errors = documents.flatMap((d) => d.errors.map((e) => e.message));
  if (errors.length > 0) throw new Error(`invalid YAML in the rendered chart:\n${errors.join('\n')}`);
  return documents.map((d) => d.toJSON() as K8sObject | null).filter((o): o is K8sObject => o !== null);
}

function render(...set: string[]): K8sObject[] {
  const result = helm('template', 'shop', CHART, '--namespace', 'sales', ...set);
  if (result.status !== 0) throw new Error(result.stderr);
  return parseManifests(result.stdout);
}

/** The variants the tests render: between them they reach every template. */
const VARIANTS: string[][] = [
  [],
  ['--set', 'mongodb.enabled=false,externalMongodb.url=mongodb://db:27017/,redis.enabled=false,externalRedis.url=redis://cache:6379'],
  ['--set', 'cluster.mode=primary'],
  ['--set', 'cluster.mode=primary,election.backend=mongo'],
  ['--set', 'k6.enabled=true', '--api-versions', 'monitoring.coreos.com/v1'],
  ['--set', 'cluster.mode=primary,redis.persistence.enabled=false,election.restrictPodPatches=false,preStopSleepSeconds=0,workers=3'],
];

const find = (objects: K8sObject[], kind: string, name?: string) => objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));

interface Container {
  name: string;
  image: string;
  args?: string[];
  env: Array<{
    name: string;
    value?: string;
    valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string }; resourceFieldRef?: Record<string, string> };
  }>;
  securityContext: Record<string, unknown>;
  readinessProbe: { httpGet: { path: string } };
  livenessProbe: { httpGet: { path: string } };
  startupProbe: { httpGet: { path: string } };
}

interface PodTemplate {
  metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
  spec: { containers: Container[]; volumes?: Array<{ name: string; emptyDir?: object }>; terminationGracePeriodSeconds?: number };
}
interface Workload {
  kind: string;
  metadata: { name: string };
  spec: { template: PodTemplate; volumeClaimTemplates?: Array<{ metadata: { name: string }; spec: { resources: { requests: { storage: string } } } }> };
}

const workload = (objects: K8sObject[], kind: string, name: string) => find(objects, kind, name) as unknown as Workload;

function serviceContainer(objects: K8sObject[]): Container {
  return workload(objects, 'StatefulSet', 'shop-superstock').spec.template.spec.containers[0] as Container;
}

const envOf = (container: Container) => Object.fromEntries(container.env.map((e) => [e.name, e]));

describe('helm chart', () => {
  test('helm lint --strict passes for the defaults and the variants', () => {
    for (const variant of VARIANTS) {
      // helm lint has no --api-versions: the Prometheus Operator's objects are linted off.
      const values = variant.filter((arg, i) => arg !== '--api-versions' && variant[i - 1] !== '--api-versions');
      const result = helm('lint', '--strict', CHART, ...values);
      expect({ status: result.status, out: result.stdout.includes('0 chart(s) failed') }).toEqual({ status: 0, out: true });
    }
  });

  test('three replicas, identity from the pod name, probes, hardened security context, standard labels', () => {
    const objects = render();
    const sts = find(objects, 'StatefulSet', 'shop-superstock') as unknown as { spec: { replicas: number; template: { spec: { securityContext: Record<string, unknown> } } }; metadata: { labels: Record<string, string> } };
    expect(sts.spec.replicas).toBe(3);
    expect(sts.metadata.labels).toMatchObject({ 'app.kubernetes.io/name': 'superstock', 'app.kubernetes.io/instance': 'shop', 'app.kubernetes.io/managed-by': 'Helm' });
    expect(sts.spec.template.spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    const container = serviceContainer(objects);
    const env = Object.fromEntries(container.env.map((e) => [e.name, e]));
    expect(env.STOCK_HOST_ID?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    expect(env.POD_NAME?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    expect(env.ADMIN_TOKEN?.valueFrom?.secretKeyRef).toEqual({ name: 'shop-superstock', key: 'admin-token' });
    expect(env.MONGO_URL?.valueFrom?.secretKeyRef?.key).toBe('mongo-url');
    expect(env.ADVERTISE_URL?.value).toBe('http://$(POD_NAME).shop-superstock-headless.$(POD_NAMESPACE).svc.cluster.local:5059');
    expect(container.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect([container.readinessProbe.httpGet.path, container.livenessProbe.httpGet.path, container.startupProbe.httpGet.path]).toEqual(['/readyz', '/healthz', '/healthz']);
    expect(find(objects, 'PodDisruptionBudget')?.spec).toMatchObject({ maxUnavailable: 1 });
    expect(find(objects, 'StatefulSet', 'shop-superstock-mongodb')).toBeDefined();
    expect(find(objects, 'StatefulSet', 'shop-superstock-redis')).toBeDefined();
    expect(objects.filter((o) => o.kind === 'Service').map((o) => o.metadata.name).sort()).toEqual(['shop-superstock', 'shop-superstock-headless', 'shop-superstock-mongodb', 'shop-superstock-redis']);
  });

  test('allotments mode by default: every replica sells, none is elected, so no RBAC, no primary Service and no API token in the pods', () => {
    const objects = render();
    expect(envOf(serviceContainer(objects)).CLUSTER_MODE).toEqual({ name: 'CLUSTER_MODE', value: 'allotments' });
    expect(find(objects, 'Role')).toBeUndefined();
    expect(find(objects, 'RoleBinding')).toBeUndefined();
    expect(find(objects, 'ValidatingAdmissionPolicy')).toBeUndefined();
    expect(find(objects, 'Service', 'shop-superstock-primary')).toBeUndefined();
    expect(find(objects, 'ServiceAccount')).toMatchObject({ automountServiceAccountToken: false });
    // election.backend is primary mode's: it renders nothing in allotments mode.
    expect(find(render('--set', 'election.backend=kubernetes'), 'Role')).toBeUndefined();
  });

  test('the admin token is generated per install, never a fixed default; URLs live in the Secret', () => {
    const token = (objects: K8sObject[]) => find(objects, 'Secret', 'shop-superstock')?.data?.['admin-token'];
    const first = token(render());
    expect(first).toBeDefined();
    expect(first).not.toBe(token(render()));
    expect(Buffer.from(first as string, 'base64').toString()).toMatch(/^[A-Za-z0-9]{32}$/);
    const values = readFileSync(join(CHART, 'values.yaml'), 'utf8');
    expect(values).toMatch(/^adminToken: ""/m);
  });

  test('external MongoDB and Redis replace the in-chart ones, and are required when those are off', () => {
    const objects = render('--set', 'mongodb.enabled=false,externalMongodb.url=mongodb://user:pw@db:27017/,redis.enabled=false,externalRedis.url=redis://cache:6379');
    expect(find(objects, 'StatefulSet', 'shop-superstock-mongodb')).toBeUndefined();
    expect(find(objects, 'StatefulSet', 'shop-superstock-redis')).toBeUndefined();
    const data = find(objects, 'Secret', 'shop-superstock')?.data ?? {};
    expect(Buffer.from(data['mongo-url'] as string, 'base64').toString()).toBe('mongodb://user:pw@db:27017/');
    expect(Buffer.from(data['redis-url'] as string, 'base64').toString()).toBe('redis://cache:6379');
    const missing = helm('template', 'shop', CHART, '--set', 'mongodb.enabled=false');
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toContain('set externalMongodb.url');
  });

  test('primary mode: the Kubernetes elector by default, with exactly its RBAC: its Lease, list and patch pods (narrowed by an admission policy)', () => {
    const objects = render('--set', 'cluster.mode=primary');
    // No pod names: they would have to follow `kubectl scale` (the admission policy narrows patch).
    expect(find(objects, 'Role')?.rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['shop-superstock-primary'], verbs: ['get', 'update'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['list', 'patch'] },
    ]);
    expect(find(objects, 'RoleBinding')).toBeDefined();
    const policy = find(objects, 'ValidatingAdmissionPolicy') as unknown as { metadata: { name: string }; spec: { matchConditions: Array<{ expression: string }> } };
    expect(policy.metadata.name).toBe('shop-superstock.sales.pod-role-label.superstock.io');
    expect(policy.spec.matchConditions).toEqual([{ name: 'the-replicas-service-account', expression: 'request.userInfo.username == "system:serviceaccount:sales:shop-superstock"' }]);
    expect(find(objects, 'ValidatingAdmissionPolicyBinding')?.spec).toMatchObject({ policyName: policy.metadata.name, validationActions: ['Deny'] });
    expect(find(objects, 'Service', 'shop-superstock-primary')?.spec).toMatchObject({ selector: { 'superstock.io/role': 'primary' } });
    const env = Object.fromEntries(serviceContainer(objects).env.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({
      ELECTION: 'kubernetes',
      LEASE_NAME: 'shop-superstock-primary',
      POD_SELECTOR: 'app.kubernetes.io/name=superstock,app.kubernetes.io/instance=shop,app.kubernetes.io/component=service',
      // Durable means durable: a journaled majority acknowledges every write unless told otherwise.
      MONGO_WRITE_CONCERN: 'majority',
      MONGO_JOURNAL: 'true',
    });
    expect(find(objects, 'ServiceAccount')).toMatchObject({ automountServiceAccountToken: true });
  });

  test('primary mode with the MongoDB lease instead: no RBAC, no primary Service, no API token in the pods', () => {
    const objects = render('--set', 'cluster.mode=primary,election.backend=mongo');
    expect(find(objects, 'Role')).toBeUndefined();
    expect(find(objects, 'RoleBinding')).toBeUndefined();
    expect(find(objects, 'ValidatingAdmissionPolicy')).toBeUndefined();
    expect(find(objects, 'Service', 'shop-superstock-primary')).toBeUndefined();
    expect(find(objects, 'ServiceAccount')).toMatchObject({ automountServiceAccountToken: false });
  });

  test('ServiceMonitor and PrometheusRule only when the Prometheus Operator API exists; the dashboard ConfigMap always', () => {
    const without = render();
    expect(find(without, 'ServiceMonitor')).toBeUndefined();
    expect(find(without, 'PrometheusRule')).toBeUndefined();
    const withOperator = render('--api-versions', 'monitoring.coreos.com/v1');
    expect(find(withOperator, 'ServiceMonitor')).toBeDefined();
    const rule = find(withOperator, 'PrometheusRule') as unknown as { spec: { groups: Array<{ rules: Array<{ alert: string }> }> } };
    expect(rule.spec.groups[0]?.rules.map((r) => r.alert)).toEqual(['SuperstockNoPrimary', 'SuperstockTwoPrimaries', 'SuperstockReplicaNotSelling', 'SuperstockReplicationLagHigh', 'SuperstockOversell', 'SuperstockErrorRateHigh', 'SuperstockLedgerOutcomeUnknown', 'SuperstockLedgerCommitSlow']);
    const dashboard = find(without, 'ConfigMap', 'shop-superstock-dashboard');
    expect(dashboard?.metadata.labels?.grafana_dashboard).toBe('1');
    expect(JSON.parse(dashboard?.data?.['superstock.json'] as string).title).toBe('SuperStock');
  });
});

describe('the bundle as a kind user runs it', () => {
  const appVersion = /^appVersion: "?([^"\n]+)"?$/m.exec(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'))?.[1];

  test('every manifest of every variant is YAML without a duplicate key (one app.kubernetes.io/component each)', () => {
    for (const values of VARIANTS) {
      const objects = render(...values);
      expect(objects.length).toBeGreaterThan(5);
      for (const o of objects) expect(typeof o.metadata.labels?.['app.kubernetes.io/component']).toBe('string');
    }
    const components = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind).map((o) => o.metadata.labels?.['app.kubernetes.io/component']).sort();
    const all = render('--set', 'k6.enabled=true');
    expect(components(all, 'StatefulSet')).toEqual(['mongodb', 'redis', 'service']);
    expect(components(all, 'Job')).toEqual(['k6']);
  });

  test('the checksum of the Secret ignores the generated token, so an install and its upgrades render the same pod template; a token or URL set by hand rolls the pods', () => {
    const checksum = (...set: string[]) => (workload(render(...set), 'StatefulSet', 'shop-superstock').spec.template.metadata.annotations ?? {})['checksum/secret'];
    const token = () => find(render(), 'Secret', 'shop-superstock')?.data?.['admin-token'];
    expect(token()).not.toBe(token());
    expect(checksum()).toMatch(/^[0-9a-f]{64}$/);
    expect(checksum()).toBe(checksum());
    expect(checksum('--set', 'adminToken=0123456789abcdef0123')).not.toBe(checksum());
    const external = 'mongodb.enabled=false,externalMongodb.url=mongodb://a:27017/';
    expect(checksum('--set', external)).not.toBe(checksum());
    expect(checksum('--set', external.replace('//a', '//b'))).not.toBe(checksum('--set', external));
  });

  test("WORKERS follows the pod's CPU limit (or request), rounded up by the downward API, never the node's CPUs", () => {
    const workers = (...set: string[]) => envOf(serviceContainer(render(...set))).WORKERS;
    const fromResource = (resource: string) => ({ name: 'WORKERS', valueFrom: { resourceFieldRef: { containerName: 'superstock', resource, divisor: '1' } } });
    expect(workers()).toEqual(fromResource('limits.cpu'));
    expect(serviceContainer(render()).name).toBe('superstock');
    expect(workers('--set', 'resources.limits.cpu=null')).toEqual(fromResource('requests.cpu'));
    expect(workers('--set', 'workers=3')).toEqual({ name: 'WORKERS', value: '3' });
    const neither = helm('template', 'shop', CHART, '--set', 'resources.limits.cpu=null,resources.requests.cpu=null');
    expect(neither.status).not.toBe(0);
    expect(neither.stderr).toContain('set resources.limits.cpu');
    // No CPU quantity of zero (0 workers) or nonsense gets past the schema.
    for (const cpu of ['lots', '0', '0m']) expect(helm('template', 'shop', CHART, '--set-string', `resources.limits.cpu=${cpu}`).status).not.toBe(0);
  });

  test('cluster.mode becomes CLUSTER_MODE on the replicas (allotments by default, primary when chosen); the schema refuses any other mode', () => {
    expect(envOf(serviceContainer(render())).CLUSTER_MODE).toEqual({ name: 'CLUSTER_MODE', value: 'allotments' });
    expect(envOf(serviceContainer(render('--set', 'cluster.mode=allotments'))).CLUSTER_MODE).toEqual({ name: 'CLUSTER_MODE', value: 'allotments' });
    expect(envOf(serviceContainer(render('--set', 'cluster.mode=primary'))).CLUSTER_MODE).toEqual({ name: 'CLUSTER_MODE', value: 'primary' });
    for (const mode of ['both', 'Allotments', 'allotment', '']) {
      const refused = helm('template', 'shop', CHART, '--set-string', `cluster.mode=${mode}`);
      expect({ mode, status: refused.status }).toEqual({ mode, status: 1 });
      expect(refused.stderr).toContain("at '/cluster/mode': value must be one of 'primary', 'allotments'");
    }
    // A typo beside the mode is refused too, rather than silently ignored.
    expect(helm('template', 'shop', CHART, '--set', 'cluster.modes=allotments').status).not.toBe(0);
  });

  test('election settings reach the replicas only in primary mode, where something is elected', () => {
    const electionVars = ['ELECTION', 'LEASE_NAME', 'POD_SELECTOR', 'LEASE_DURATION_MS', 'RENEW_DEADLINE_MS', 'RETRY_PERIOD_MS'];
    const present = (...set: string[]) => electionVars.filter((name) => name in envOf(serviceContainer(render(...set))));
    expect(present()).toEqual([]);
    expect(present('--set', 'cluster.mode=primary')).toEqual(electionVars);
  });

  test('backpressure limits and extra env reach the container only when set; the schema refuses a negative limit or a non-string value', () => {
    const defaults = envOf(serviceContainer(render()));
    expect(['QUEUE_LIMIT', 'ADMISSION_LIMIT'].filter((name) => name in defaults)).toEqual([]);
    const set = serviceContainer(render('--set', 'backpressure.queueLimit=500,backpressure.admissionLimit=64', '--set-string', 'extraEnv[0].name=DEPENDENCY_TIMEOUT_MS,extraEnv[0].value=400'));
    expect(envOf(set).QUEUE_LIMIT).toEqual({ name: 'QUEUE_LIMIT', value: '500' });
    expect(envOf(set).ADMISSION_LIMIT).toEqual({ name: 'ADMISSION_LIMIT', value: '64' });
    // Last, so that a name given here overrides the chart's own.
    expect(set.env.at(-1)).toEqual({ name: 'DEPENDENCY_TIMEOUT_MS', value: '400' });
    expect(helm('template', 'shop', CHART, '--set', 'backpressure.queueLimit=-1').stderr).toContain("at '/backpressure/queueLimit': minimum");
    expect(helm('template', 'shop', CHART, '--set', 'extraEnv[0].name=X,extraEnv[0].value=5').stderr).toContain("at '/extraEnv/0/value': got number, want string");
  });

  test('a stopping replica keeps serving through a preStop sleep; the grace period covers the sleep and the drain, or the chart refuses', () => {
    const objects = render();
    const pod = workload(objects, 'StatefulSet', 'shop-superstock').spec.template.spec;
    const container = serviceContainer(objects) as Container & { lifecycle?: { preStop?: { sleep?: { seconds: number } } } };
    expect(container.lifecycle).toEqual({ preStop: { sleep: { seconds: 5 } } });
    expect(envOf(container).SHUTDOWN_TIMEOUT_MS?.value).toBe('10000');
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(5 + 10 + 1);
    const tooShort = helm('template', 'shop', CHART, '--set', 'preStopSleepSeconds=25');
    expect(tooShort.status).not.toBe(0);
    expect(tooShort.stderr).toContain('terminationGracePeriodSeconds (30) must be at least preStopSleepSeconds + shutdownTimeoutMs in seconds + 1 (36)');
    expect((serviceContainer(render('--set', 'preStopSleepSeconds=0')) as { lifecycle?: unknown }).lifecycle).toBeUndefined();
  });

  test('MongoDB: a readiness probe that needs no mongosh and has time to answer; HOME outside the data directory', () => {
    const sts = workload(render(), 'StatefulSet', 'shop-superstock-mongodb');
    const container = sts.spec.template.spec.containers[0] as Container & {
      readinessProbe: { exec?: unknown; tcpSocket?: { port: string }; timeoutSeconds: number };
      volumeMounts: Array<{ name: string; mountPath: string }>;
    };
    expect(container.readinessProbe.exec).toBeUndefined();
    expect(container.readinessProbe.tcpSocket).toEqual({ port: 'mongodb' });
    expect(container.readinessProbe.timeoutSeconds).toBeGreaterThanOrEqual(3);
    expect(envOf(container).HOME?.value).toBe('/tmp');
    expect(container.volumeMounts).toEqual([{ name: 'data', mountPath: '/data/db' }, { name: 'tmp', mountPath: '/tmp' }]);
    expect(sts.spec.template.spec.volumes).toEqual([{ name: 'tmp', emptyDir: {} }]);
  });

  test('Redis keeps its append-only file on a volume claim by default, so a rescheduled pod keeps the redis lane', () => {
    const sts = workload(render(), 'StatefulSet', 'shop-superstock-redis');
    const container = sts.spec.template.spec.containers[0] as Container & { volumeMounts: Array<{ name: string; mountPath: string }> };
    expect(container.args?.join(' ')).toContain('--appendonly yes');
    expect(container.volumeMounts).toEqual([{ name: 'data', mountPath: '/data' }]);
    expect(sts.spec.volumeClaimTemplates?.map((c) => [c.metadata.name, c.spec.resources.requests.storage])).toEqual([['data', '1Gi']]);
    expect(sts.spec.template.spec.volumes).toBeUndefined();
    const ephemeral = workload(render('--set', 'redis.persistence.enabled=false'), 'StatefulSet', 'shop-superstock-redis');
    expect(ephemeral.spec.volumeClaimTemplates).toBeUndefined();
    expect(ephemeral.spec.template.spec.volumes).toEqual([{ name: 'data', emptyDir: {} }]);
  });

  test('every image is an exact version, and the default service image is superstock:<appVersion>', () => {
    const images = render('--set', 'k6.enabled=true')
      .filter((o) => o.kind === 'StatefulSet' || o.kind === 'Job')
      .flatMap((o) => (o as unknown as Workload).spec.template.spec.containers.map((c) => c.image))
      .sort();
    expect(images).toEqual([`grafana/k6:1.8.1`, 'mongo:8.0.17', 'redis:8.2.8', `superstock:${appVersion}`]);
    for (const image of images) expect(image).toMatch(/:\d+\.\d+\.\d+$/);
  });
});

describe('deploy/kube.mk', () => {
  /** What a target would run (`make -n`), with the targets it calls expanded too. */
  const dryRun = (...targets: string[]) => {
    // A fresh make: not one that inherits the flags of the `make test` running these tests.
    const { MAKEFLAGS: _flags, MAKELEVEL: _level, MFLAGS: _mflags, ...env } = process.env;
    const result = spawnSync('make', ['--no-print-directory', '-n', ...targets], { cwd: REPO_ROOT, encoding: 'utf8', env });
    expect(result.status).toBe(0);
    return result.stdout;
  };

  test('make kind-up builds and loads the image the chart uses by default', () => {
    const appVersion = /^appVersion: "?([^"\n]+)"?$/m.exec(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'))?.[1];
    const commands = dryRun('kind-up');
    expect(commands).toContain(`docker build -t superstock:${appVersion} .`);
    expect(commands).toContain(`kind load docker-image superstock:${appVersion} --name superstock`);
    expect(serviceContainer(render()).image).toBe(`superstock:${appVersion}`);
  });

  test('every kubectl and helm call that reaches a cluster names the kind context', () => {
    const commands = dryRun('kind-up', 'kind-siege', 'monitoring-up', 'k6', 'chart-lint')
      .replace(/\\\n/g, ' ')
      .split('\n')
      .filter((line) => !line.includes('command -v'));
    const calls = commands.flatMap((line) => [...line.matchAll(/(?:^|[;&|(]\s*|\s)(kubectl|helm)\s+(\S+)/g)].map((m) => `${m[1]} ${m[2]}`));
    expect(calls.length).toBeGreaterThan(6);
    const offline = new Set(['helm repo', 'helm lint', 'helm template']);
    expect(calls.filter((call) => !offline.has(call) && call !== 'kubectl --context' && call !== 'helm --kube-context')).toEqual([]);
    expect(commands.join('\n')).not.toMatch(/--(kube-)?context (?!kind-superstock\b)/);
    // make k6 hands the context to its script, which passes it on every call.
    expect(commands.join('\n')).toContain('KUBE_CONTEXT=kind-superstock ');
    const script = readFileSync(join(REPO_ROOT, 'scripts', 'k6-job.sh'), 'utf8');
    const code = script.split('\n').filter((line) => !line.trim().startsWith('#'));
    expect(code.filter((line) => /\bkubectl\b/.test(line) && !line.includes('kubectl --context "$KUBE_CONTEXT"'))).toEqual([]);
    const helmCalls = code.filter((line) => /\bhelm \w/.test(line));
    expect(helmCalls.length).toBe(2);
    expect(helmCalls.filter((line) => !line.includes('helm template') && !line.includes('--kube-context "$KUBE_CONTEXT"'))).toEqual([]);
  });
});

describe('PromQL in the chart', () => {
  const rulesFile = join(CHART, 'files', 'rules', 'superstock.rules.yaml');
  const dashboardFile = join(CHART, 'files', 'dashboards', 'superstock.json');

  test('promtool check rules accepts the alerting rules', () => {
    const result = spawnSync('promtool', ['check', 'rules', rulesFile], { encoding: 'utf8' });
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
  });

  test('every metric the rules and the dashboard name is one the service really exports (in one cluster mode or the other)', async () => {
    const named = new Set<string>();
    for (const text of [readFileSync(rulesFile, 'utf8'), readFileSync(dashboardFile, 'utf8')]) {
      for (const [name] of text.matchAll(/superstock_[a-z_]+/g)) named.add(name.replace(/_(bucket|sum|count)$/, ''));
    }
    const exported = new Set<string>();
    // A database of its own for the allotments replica: its pool and ledger stream stay out of others' way.
    const modes: Array<Record<string, string>> = [{}, { CLUSTER_MODE: 'allotments', MONGO_DB: `chart-metrics-${process.pid}` }];
    for (const env of modes) {
      const service = await startService(env);
      try {
        const exposition = await (await fetch(service.metricsUrl)).text();
        for (const [, name] of exposition.matchAll(/^# TYPE (\S+) /gm)) exported.add(name as string);
      } finally {
        await service.stop();
      }
    }
    expect([...named].filter((n) => !exported.has(n))).toEqual([]);
    expect(named.size).toBeGreaterThan(8);
  }, 60_000);
});

describe('k6 in the cluster', () => {
  test('the k6 Job carries the scripts of k6/ (files/k6 links there) and runs the chosen one against the Service', () => {
    const scripts = ['failover.ts', 'lib.ts', 'many-stock.ts', 'one-stock.ts', 'v2-buy.ts'];
    expect(find(render(), 'Job')).toBeUndefined();
    const objects = render('--set', 'k6.enabled=true,k6.script=v2-buy.ts,k6.runId=run-7');
    // Named by the run (make k6 renders it alone with a fresh id), or else by the release revision.
    expect(find(objects, 'Job')?.metadata.name).toBe('shop-superstock-k6-run-7');
    expect(find(render('--set', 'k6.enabled=true'), 'Job')?.metadata.name).toBe('shop-superstock-k6-1');
    const data = find(objects, 'ConfigMap', 'shop-superstock-k6-run-7')?.data ?? {};
    expect(Object.keys(data).sort()).toEqual(scripts);
    for (const script of scripts) expect(data[script]).toBe(readFileSync(join(REPO_ROOT, 'k6', script), 'utf8').replace(/\n$/, ''));
    const job = find(objects, 'Job') as unknown as { spec: { template: { spec: { containers: Array<{ args: string[]; env: Array<{ name: string; value: string }> }> } } } };
    const container = job.spec.template.spec.containers[0];
    expect(container?.args).toEqual(['run', '/scripts/v2-buy.ts']);
    expect(container?.env).toContainEqual({ name: 'BASE_URL', value: 'http://shop-superstock:5059' });
  });
});
