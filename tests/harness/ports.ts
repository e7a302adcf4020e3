/**
 * A TCP port for a server a test starts, free a moment ago; the caller binds it right away.
 *
 * Not one the OS picks (port 0): those come from the ephemeral range, the same range every outgoing
 * connection takes its local port from, and a test opens thousands of those (load, forwarding,
 * MongoDB and Redis pools). A port chosen up front for a replica a test starts later — or restarts
 * on the same address — could then be taken by some connection in between, and the replica would
 * exit with "port in use". So ports come from below the ephemeral range, at random, each handed
 * out once per test process, and checked bindable.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const LOWEST = 20_000;
const ephemeralLow = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32_768;
  } catch {
    return 32_768;
  }
})();
const HIGHEST = Math.max(LOWEST + 1000, ephemeralLow - 1);
const handedOut = new Set<number>();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * (HIGHEST - LOWEST + 1));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port between ${LOWEST} and ${HIGHEST} after 200 tries`);
}
