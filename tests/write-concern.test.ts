/**
 * Durable means durable (issue 10, item 8): every write the service sends to MongoDB — the db
 * lane's conditional update and the ledger's batches alike, since both use the one client each
 * thread opens — carries the configured write concern, a journaled majority by default. Observed
 * on the wire: the commands the driver really sends to the real (wire-protocol) server.
 * Budget: ~2 s.
 */
import { randomBytes } from 'node:crypto';
import { MongoClient, type CommandStartedEvent, type Document } from 'mongodb';
import { loadConfig } from '../src/config.js';
import { Fence } from '../src/cluster/ledger/ledger.js';
import { DbLane } from '../src/lanes/db-lane.js';
import { MongoConnection, mongoClientOptions } from '../src/mongo.js';

function commandsOf(connection: MongoConnection): CommandStartedEvent[] {
  const seen: CommandStartedEvent[] = [];
  connection.client.on('commandStarted', (event) => seen.push(event));
  return seen;
}

async function writesWith(env: Record<string, string>): Promise<Document[]> {
  const config = loadConfig({ MONGO_URL: process.env.MONGO_URL, ELECTION: 'none', ...env });
  // The service's own client options, plus command monitoring for this observer.
  const client = new MongoClient(config.mongoUrl as string, { ...mongoClientOptions(2000, 'write-concern-test', config.mongoWriteConcern), monitorCommands: true });
  const connection = new MongoConnection(client);
  const seen = commandsOf(connection);
  try {
    const db = connection.db(`wc_${randomBytes(4).toString('hex')}`);
    const lane = new DbLane(db, 2000, 'single');
    await lane.put('WC', 10);
    expect(await lane.tryBuy('WC', 1, 'k-1')).toMatchObject({ kind: 'sold' });
    const fence = new Fence(db, 2000);
    const epoch = await fence.beginTerm('wc-test');
    const seq = await fence.reserve(epoch);
    expect(await fence.write(epoch, seq as number, [{ op: 'put', lane: 'atomic', sku: 'WC', stock: 10 }])).toBe('written');
    return seen.filter((e) => ['update', 'findAndModify', 'insert'].includes(e.commandName)).map((e) => e.command);
  } finally {
    await connection.close();
  }
}

test('by default every write asks for {w: "majority", j: true}', async () => {
  const writes = await writesWith({});
  expect(writes.length).toBeGreaterThanOrEqual(5);
  for (const command of writes) expect(command.writeConcern).toEqual({ w: 'majority', j: true });
});

test('MONGO_WRITE_CONCERN and MONGO_JOURNAL change it', async () => {
  const writes = await writesWith({ MONGO_WRITE_CONCERN: '1', MONGO_JOURNAL: 'false' });
  expect(writes.length).toBeGreaterThanOrEqual(5);
  for (const command of writes) expect(command.writeConcern).toEqual({ w: 1, j: false });
});
