/**
 * `make bench-takeover`: how long a new primary takes to take over when the ledger already holds
 * many sales (issue 10, item 6). For each size in BENCH_TAKEOVER_SALES it writes that many keyed
 * sales straight into a fresh database (1000 per batch, as a busy group commit would), then
 * starts the real service (DURABILITY=sync, ELECTION=none) three times and measures, from spawn
 * to /readyz 200 and from the service's own log line:
 *   cold       — no snapshot yet: the whole ledger is replayed (what every takeover cost before);
 *   snapshot   — the previous primary snapshotted at its takeover; 1% more sales came after;
 *   idle       — nothing new since the last snapshot.
 * Writes bench/results/takeover.json and .md.
 *
 * BENCH_TAKEOVER_ELECTION=mongo runs each takeover as an elected primary would (ELECTION=mongo,
 * the default lease: 3 s, renew deadline 2 s, retry 0.5 s) and counts the terms it began and the
 * times it stepped down before it was ready: a replay that starved the lease renewals on the main
 * thread past the renew deadline steps down and starts over (the item's "steps down, forever").
 *
 * Environment: BENCH_TAKEOVER_SALES (comma-separated, default 1000000), MONGO_URL (required; a
 * private server is best: the sales stay in it until the database is dropped at the end; the
 * wire server needs MONGO_WIRE_JAVA_OPTS='-Xmx12g -Xmn1g' for 10M), BENCH_TAKEOVER_TIMEOUT_S (how long one takeover
 * may take before the run fails, default 1800: a cold 10M replay takes minutes on a shared machine).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { MongoClient } from 'mongodb';
import { MAX_STOCK } from '../src/config.js';
import type { BatchDocument, LedgerEntry } from '../src/cluster/ledger/ledger.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const OUT = resolve(process.env.BENCH_OUT ?? join(ROOT, 'bench', 'results'));
const SIZES = (process.env.BENCH_TAKEOVER_SALES ?? '1000000').split(',').map(Number);
const MONGO_URL = process.env.MONGO_URL;
const PER_BATCH = 1000;
const TAKEOVER_TIMEOUT_MS = Number(process.env.BENCH_TAKEOVER_TIMEOUT_S ?? 1800) * 1000;
const ELECTION = process.env.BENCH_TAKEOVER_ELECTION === 'mongo' ? 'mongo' : 'none';
const LANES = ['atomic', 'lock', 'signal'] as const;
const SKUS = ['NVDA', 'TSLA', 'AMD', 'STOCK'];

interface Takeover {
  readonly sales: number;
  readonly scenario: 'cold' | 'snapshot' | 'idle';
  readonly batchesReplayed: number;
  readonly rebuildMs: number;
  readonly readyMs: number;
  /** The 1-minute load average when the service became ready: the machine may be shared. */
  readonly load: number;
  /** With an election: terms begun ('became primary') and step-downs logged until ready and through its first fold. */
  readonly terms: number | null;
  readonly stepDowns: number | null;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Batches `fromSeq`..`fromSeq + count - 1` of epoch 1, each PER_BATCH keyed sales. */
async function writeSales(client: MongoClient, database: string, fromSeq: number, count: number): Promise<void> {
  const ledger = client.db(database).collection<BatchDocument>('ledger');
  const at = new Date();
  for (let start = 0; start < count; start += 20) {
    const docs: BatchDocument[] = [];
    for (let seq = fromSeq + start; seq < fromSeq + Math.min(count, start + 20); seq++) {
      const entries = Array.from({ length: PER_BATCH }, (_, i): LedgerEntry => ({ op: 'buy', lane: LANES[i % 3] ?? 'atomic', sku: SKUS[i % SKUS.length] ?? 'STOCK', q: 1, rem: 1, key: `${seq}-${i}` }));
      if (seq === 1) for (const lane of LANES) for (const sku of SKUS) entries.unshift({ op: 'seed', lane, sku, stock: MAX_STOCK });
      docs.push({ _id: `1:${seq}`, epoch: 1, seq, entries, at });
    }
    await ledger.insertMany(docs, { ordered: false });
    // A 10M fill takes many minutes: say where it is now and then.
    if ((start + 20) % 1000 === 0) console.log(`  written ${(fromSeq + start + 20 - 1) * PER_BATCH} sales (load ${loadavg()[0]?.toFixed(1)})`);
  }
  await client
    .db(database)
    .collection<{ _id: string }>('fence')
    .updateOne({ _id: 'fence' }, { $set: { epoch: 1, seq: fromSeq + count - 1, holder: 'bench', sealing: [] } }, { upsert: true });
}

async function takeOver(database: string, sales: number, scenario: Takeover['scenario']): Promise<Takeover> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'main.js')], {
    env: {
      PATH: process.env.PATH ?? '',
      MONGO_URL: MONGO_URL as string,
      MONGO_DB: database,
      DURABILITY: 'sync',
      ELECTION,
      ...(ELECTION === 'mongo' ? { REDIS_URL: process.env.REDIS_URL as string } : {}),
      WORKERS: '1',
      PORT: String(port),
      METRICS_PORT: String(await freePort()),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      INITIAL_STOCK: String(MAX_STOCK),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`service exited: ${output.slice(-2000)}`);
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false);
      if (ok) break;
      if (performance.now() - started > TAKEOVER_TIMEOUT_MS) throw new Error(`no takeover within ${TAKEOVER_TIMEOUT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const readyMs = performance.now() - started;
    const load = Number(loadavg()[0]?.toFixed(1));
    const line = output.split('\n').find((l) => l.includes('rebuilt the in-memory lanes from the ledger'));
    const logged = line ? (JSON.parse(line) as { ms: number; batches: number }) : { ms: Number.NaN, batches: Number.NaN };
    // Let the first fold (the snapshot of what was replayed) finish before the next round.
    await new Promise((r) => setTimeout(r, Math.min(30_000, 1000 + logged.ms)));
    const count = (message: string) => (ELECTION === 'none' ? null : output.split('\n').filter((l) => l.includes(message)).length);
    return { sales, scenario, batchesReplayed: logged.batches, rebuildMs: logged.ms, readyMs: Math.round(readyMs), load, terms: count('became primary'), stepDowns: count('stepping down') };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

async function main(): Promise<void> {
  if (!MONGO_URL) throw new Error('MONGO_URL is required (make bench-takeover sets it up)');
  if (ELECTION === 'mongo' && !process.env.REDIS_URL) throw new Error('BENCH_TAKEOVER_ELECTION=mongo needs REDIS_URL (make bench-takeover sets it up)');
  const client = await new MongoClient(MONGO_URL).connect();
  const results: Takeover[] = [];
  try {
    for (const sales of SIZES) {
      const database = `takeover_${sales}_${randomBytes(3).toString('hex')}`;
      const batches = Math.ceil(sales / PER_BATCH);
      const filling = performance.now();
      await writeSales(client, database, 1, batches);
      console.log(`${sales} sales written in ${Math.round(performance.now() - filling)} ms`);
      try {
        results.push(await takeOver(database, sales, 'cold'));
        await writeSales(client, database, batches + 1, Math.max(1, Math.ceil(batches / 100)));
        results.push(await takeOver(database, sales, 'snapshot'));
        results.push(await takeOver(database, sales, 'idle'));
      } finally {
        await client.db(database).dropDatabase();
      }
      for (const r of results.filter((x) => x.sales === sales)) console.log(JSON.stringify(r));
    }
  } finally {
    await client.close();
  }
  mkdirSync(OUT, { recursive: true });
  const elected = ELECTION === 'mongo';
  const rows = results.map(
    (r) => `| ${r.sales.toLocaleString('en')} | ${r.scenario} | ${r.batchesReplayed} | ${r.rebuildMs} | ${r.readyMs} | ${r.load} |${elected ? ` ${r.terms} | ${r.stepDowns} |` : ''}`,
  );
  const head = `| recorded sales | takeover | batches replayed | rebuild (ms, service log) | spawn → ready (ms) | load (1 min) |${elected ? ' terms begun | step-downs |' : ''}`;
  const rule = `|---|---|---|---|---|---|${elected ? '---|---|' : ''}`;
  const title = elected ? ['Takeovers as an elected primary (ELECTION=mongo, lease 3 s, renew deadline 2 s):', ''] : [];
  writeFileSync(join(OUT, elected ? 'takeover-elected.json' : 'takeover.json'), JSON.stringify(results, null, 2) + '\n');
  writeFileSync(join(OUT, elected ? 'takeover-elected.md' : 'takeover.md'), [...title, head, rule, ...rows, ''].join('\n'));
  console.log([head, ...rows].join('\n'));
}

await main();
