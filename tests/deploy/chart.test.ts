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

function render(...set: string[]): K8sObject[] {
  const result = helm('template', 'shop', CHART, '--namespace', 'sales', ...set);
  if (result.status !== 0) throw new Error(result.stderr);
  return parseAllDocuments(result.stdout)
    .map((d) => d.toJSON() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

const find = (objects: K8sObject[], kind: string, name?: string) => objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));

interface Container {
  name: string;
  env: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } } }>;
  securityContext: Record<string, unknown>;
  readinessProbe: { httpGet: { path: string } };
  livenessProbe: { httpGet: { path: string } };
  startupProbe: { httpGet: { path: string } };
}

function serviceContainer(objects: K8sObject[]): Container {
  const sts = find(objects, 'StatefulSet', 'shop-superstock') as unknown as { spec: { template: { spec: { containers: Container[] } } } };
  return sts.spec.template.spec.containers[0] as Container;
}

describe('helm chart', () => {
  test('helm lint --strict passes for the defaults and the variants', () => {
    for (const values of [[], ['--set', 'mongodb.enabled=false,externalMongodb.url=mongodb://db:27017/,redis.enabled=false,externalRedis.url=redis://cache:6379'], ['--set', 'election.backend=mongo']]) {
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
    expect(find(objects, 'Deployment', 'shop-superstock-redis')).toBeDefined();
    expect(objects.filter((o) => o.kind === 'Service').map((o) => o.metadata.name).sort()).toEqual(['shop-superstock', 'shop-superstock-headless', 'shop-superstock-mongodb', 'shop-superstock-primary', 'shop-superstock-redis']);
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
    expect(find(objects, 'Deployment', 'shop-superstock-redis')).toBeUndefined();
    const data = find(objects, 'Secret', 'shop-superstock')?.data ?? {};
    expect(Buffer.from(data['mongo-url'] as string, 'base64').toString()).toBe('mongodb://user:pw@db:27017/');
    expect(Buffer.from(data['redis-url'] as string, 'base64').toString()).toBe('redis://cache:6379');
    const missing = helm('template', 'shop', CHART, '--set', 'mongodb.enabled=false');
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toContain('set externalMongodb.url');
  });

  test('the Kubernetes elector by default, with exactly its RBAC: its Lease, list pods, patch only the replicas\' pods', () => {
    const objects = render();
    expect(find(objects, 'Role')?.rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['shop-superstock-primary'], verbs: ['get', 'update'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
      { apiGroups: [''], resources: ['pods'], resourceNames: ['shop-superstock-0', 'shop-superstock-1', 'shop-superstock-2'], verbs: ['patch'] },
    ]);
    expect(find(objects, 'RoleBinding')).toBeDefined();
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

  test('with the MongoDB lease instead: no RBAC, no primary Service, no API token in the pods', () => {
    const objects = render('--set', 'election.backend=mongo');
    expect(find(objects, 'Role')).toBeUndefined();
    expect(find(objects, 'RoleBinding')).toBeUndefined();
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
    expect(rule.spec.groups[0]?.rules.map((r) => r.alert)).toEqual(['SuperstockNoPrimary', 'SuperstockTwoPrimaries', 'SuperstockReplicationLagHigh', 'SuperstockOversell', 'SuperstockErrorRateHigh']);
    const dashboard = find(without, 'ConfigMap', 'shop-superstock-dashboard');
    expect(dashboard?.metadata.labels?.grafana_dashboard).toBe('1');
    expect(JSON.parse(dashboard?.data?.['superstock.json'] as string).title).toBe('SuperStock');
  });
});

describe('PromQL in the chart', () => {
  const rulesFile = join(CHART, 'files', 'rules', 'superstock.rules.yaml');
  const dashboardFile = join(CHART, 'files', 'dashboards', 'superstock.json');

  test('promtool check rules accepts the alerting rules', () => {
    const result = spawnSync('promtool', ['check', 'rules', rulesFile], { encoding: 'utf8' });
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
  });

  test('every metric the rules and the dashboard name is one the service really exports', async () => {
    const named = new Set<string>();
    for (const text of [readFileSync(rulesFile, 'utf8'), readFileSync(dashboardFile, 'utf8')]) {
      for (const [name] of text.matchAll(/superstock_[a-z_]+/g)) named.add(name.replace(/_(bucket|sum|count)$/, ''));
    }
    const service = await startService({});
    try {
      const exposition = await (await fetch(service.metricsUrl)).text();
      const exported = new Set([...exposition.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string));
      expect([...named].filter((n) => !exported.has(n))).toEqual([]);
      expect(named.size).toBeGreaterThan(8);
    } finally {
      await service.stop();
    }
  });
});

describe('k6 in the cluster', () => {
  test('the k6 Job carries the scripts of k6/ (files/k6 links there) and runs the chosen one against the Service', () => {
    const scripts = ['failover.ts', 'lib.ts', 'many-stock.ts', 'one-stock.ts', 'v2-buy.ts'];
    expect(find(render(), 'Job')).toBeUndefined();
    const objects = render('--set', 'k6.enabled=true,k6.script=v2-buy.ts');
    const data = find(objects, 'ConfigMap', 'shop-superstock-k6')?.data ?? {};
    expect(Object.keys(data).sort()).toEqual(scripts);
    for (const script of scripts) expect(data[script]).toBe(readFileSync(join(REPO_ROOT, 'k6', script), 'utf8').replace(/\n$/, ''));
    const job = find(objects, 'Job') as unknown as { spec: { template: { spec: { containers: Array<{ args: string[]; env: Array<{ name: string; value: string }> }> } } } };
    const container = job.spec.template.spec.containers[0];
    expect(container?.args).toEqual(['run', '/scripts/v2-buy.ts']);
    expect(container?.env).toContainEqual({ name: 'BASE_URL', value: 'http://shop-superstock:5059' });
  });
});
