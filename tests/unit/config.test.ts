import { ConfigError, loadConfig } from '../../src/config.js';

describe('loadConfig', () => {
  test('defaults follow the original: port 5059, 15000 units, NVDA/TSLA/AMD plus the OneStock SKU', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ port: 5059, metricsPort: 9464, initialStock: 15000, mongoUrl: null, redisUrl: null, adminToken: null });
    expect(config.seedSkus).toEqual(['STOCK', 'NVDA', 'TSLA', 'AMD']);
    expect(config.workers).toBeGreaterThanOrEqual(1);
  });

  test.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['WORKERS', '0'],
    ['INITIAL_STOCK', '-5'],
    ['INITIAL_STOCK', '1000000001'],
    ['INITIAL_STOCK', '2000000000'],
    ['SEED_SKUS', 'OK,..'],
    ['SEED_SKUS', '.hidden'],
    ['MONGO_URL', 'http://example'],
    ['MONGO_URL', 'not a url'],
    ['REDIS_URL', 'mongodb://x'],
    ['ADMIN_TOKEN', 'short'],
    ['SEED_SKUS', 'OK,not ok'],
    ['LOG_LEVEL', 'loud'],
    ['DEPENDENCY_TIMEOUT_MS', '1.5'],
    ['ELECTION', 'kubernetes'],
    ['ELECTION', 'raft'],
    ['DURABILITY', 'sync'],
    ['ROLE', 'leader'],
    ['LEASE_DURATION_MS', '2400'],
  ])('%s=%s is refused with an error naming the variable', (variable, value) => {
    expect(() => loadConfig({ [variable]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [variable]: value })).toThrow(new RegExp(`^${variable}: `));
  });

  test('CLUSTER_MODE: primary by default; allotments needs MongoDB, Redis and durability, and no ROLE; errors name CLUSTER_MODE', () => {
    const stores = { MONGO_URL: 'mongodb://db:27017/', REDIS_URL: 'redis://cache:6379' };
    expect(loadConfig({}).clusterMode).toBe('primary');
    expect(loadConfig({ ...stores, CLUSTER_MODE: 'allotments' })).toMatchObject({ clusterMode: 'allotments', allotmentChunkMs: 150, allotmentIdleMs: 1000 });
    expect(loadConfig({ ...stores, CLUSTER_MODE: 'allotments', ALLOTMENT_CHUNK_MS: '200', ALLOTMENT_IDLE_MS: '5000' })).toMatchObject({ allotmentChunkMs: 200, allotmentIdleMs: 5000 });
    for (const env of [
      { CLUSTER_MODE: 'sharded' },
      { CLUSTER_MODE: 'allotments' },
      { CLUSTER_MODE: 'allotments', MONGO_URL: stores.MONGO_URL, ELECTION: 'none' },
      { ...stores, CLUSTER_MODE: 'allotments', DURABILITY: 'none' },
      { ...stores, CLUSTER_MODE: 'allotments', ROLE: 'primary' },
    ]) {
      expect(() => loadConfig(env)).toThrow(/^CLUSTER_MODE: /);
    }
    expect(() => loadConfig({ ...stores, CLUSTER_MODE: 'allotments', ALLOTMENT_CHUNK_MS: '0' })).toThrow(/^ALLOTMENT_CHUNK_MS: /);
  });

  test('inside a pod the Kubernetes Lease elects by default; outside, the MongoDB lease', () => {
    const pod = { MONGO_URL: 'mongodb://db:27017/', REDIS_URL: 'redis://cache:6379', KUBERNETES_SERVICE_HOST: '10.96.0.1', POD_NAME: 'shop-superstock-0', POD_NAMESPACE: 'sales' };
    expect(loadConfig(pod)).toMatchObject({ election: 'kubernetes', podName: 'shop-superstock-0', podNamespace: 'sales', podSelector: '' });
    expect(loadConfig({ ...pod, KUBERNETES_SERVICE_HOST: '' }).election).toBe('mongo');
    expect(loadConfig({ ...pod, ELECTION: 'mongo' }).election).toBe('mongo');
  });

  test.each([
    ['POD_NAME', { POD_NAME: '' }],
    ['POD_NAMESPACE', { POD_NAMESPACE: '' }],
    ['ELECTION', { MONGO_URL: '' }],
  ])('ELECTION=kubernetes without %s is refused, naming it', (variable, unset) => {
    const env = { ELECTION: 'kubernetes', MONGO_URL: 'mongodb://db:27017/', REDIS_URL: 'redis://cache:6379', POD_NAME: 'p-0', POD_NAMESPACE: 'ns', ...unset };
    expect(() => loadConfig(env)).toThrow(new RegExp(`^${variable}: `));
  });

  test.each(['mongo', 'kubernetes'])('ELECTION=%s without REDIS_URL is refused, naming REDIS_URL (secondaries would stay stale)', (election) => {
    const env = { ELECTION: election, MONGO_URL: 'mongodb://db:27017/', POD_NAME: 'p-0', POD_NAMESPACE: 'ns' };
    expect(() => loadConfig(env)).toThrow(/^REDIS_URL: ELECTION=.* needs REDIS_URL/);
    // The default election with MONGO_URL is mongo: refused the same way, not silently stale.
    expect(() => loadConfig({ MONGO_URL: 'mongodb://db:27017/' })).toThrow(/^REDIS_URL: /);
    expect(loadConfig({ ...env, REDIS_URL: 'redis://cache:6379' }).election).toBe(election);
    expect(loadConfig({ MONGO_URL: 'mongodb://db:27017/', ELECTION: 'none' }).election).toBe('none');
  });

  test('MongoDB writes are acknowledged by a journaled majority by default; MONGO_WRITE_CONCERN and MONGO_JOURNAL change it', () => {
    expect(loadConfig({}).mongoWriteConcern).toEqual({ w: 'majority', journal: true });
    expect(loadConfig({ MONGO_WRITE_CONCERN: '2', MONGO_JOURNAL: 'false' }).mongoWriteConcern).toEqual({ w: 2, journal: false });
    for (const bad of ['0', 'all', '-1', '1.5']) expect(() => loadConfig({ MONGO_WRITE_CONCERN: bad })).toThrow(/^MONGO_WRITE_CONCERN: /);
    expect(() => loadConfig({ MONGO_JOURNAL: 'yes' })).toThrow(/^MONGO_JOURNAL: /);
  });

  test('ADMISSION_LIMIT: 256 requests in flight per worker thread by default, QUEUE_LIMIT if smaller; a positive integer; errors name ADMISSION_LIMIT', () => {
    expect(loadConfig({}).admissionLimit).toBe(256);
    expect(loadConfig({ QUEUE_LIMIT: '100' }).admissionLimit).toBe(100);
    expect(loadConfig({ ADMISSION_LIMIT: '8' }).admissionLimit).toBe(8);
    expect(loadConfig({ QUEUE_LIMIT: '100', ADMISSION_LIMIT: '500' }).admissionLimit).toBe(500);
    for (const bad of ['0', '-1', '1.5', 'many', '1000001']) expect(() => loadConfig({ ADMISSION_LIMIT: bad })).toThrow(/^ADMISSION_LIMIT: /);
  });

  test('ledger batches go out as direct inserts by default; LEDGER_INSERTS=driver keeps the driver; anything else is refused, naming it', () => {
    expect(loadConfig({}).ledgerInserts).toBe('direct');
    expect(loadConfig({ LEDGER_INSERTS: 'driver' }).ledgerInserts).toBe('driver');
    expect(() => loadConfig({ LEDGER_INSERTS: 'raw' })).toThrow(/^LEDGER_INSERTS: /);
  });

  test('a static secondary without PRIMARY_URL is refused, naming PRIMARY_URL', () => {
    expect(() => loadConfig({ ROLE: 'secondary' })).toThrow(/^PRIMARY_URL: /);
  });

  test('empty values count as unset', () => {
    expect(loadConfig({ MONGO_URL: '', REDIS_URL: ' ', PORT: '' })).toMatchObject({ mongoUrl: null, redisUrl: null, port: 5059 });
  });
});
