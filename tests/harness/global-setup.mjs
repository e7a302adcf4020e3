// Start the shared Redis and MongoDB wire server for the whole run, unless REDIS_URL / MONGO_URL
// already point at servers (a real `mongod`, say). Jest's workers inherit the URLs.
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnServer, untilAccepting } from './servers.mjs';

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export default async function globalSetup() {
  globalThis.__superstockShared = [];
  for (const [kind, variable] of [['redis', 'REDIS_URL'], ['mongo', 'MONGO_URL']]) {
    if (process.env[variable]) continue;
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), `superstock-${kind}-`));
    const { url, child } = spawnServer(kind, port, dir);
    globalThis.__superstockShared.push({ child, dir });
    await untilAccepting(port, child);
    process.env[variable] = url;
  }
}
