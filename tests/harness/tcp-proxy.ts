/**
 * A loopback TCP proxy that can cut a client off from a server the way a network partition does:
 * open connections die, new ones are accepted and then hear nothing (packets dropped, not
 * refused), so the client's own timeouts are what save it. Healing drops the silent connections
 * instead of delivering what they held — a partition loses packets, it does not delay them.
 *
 * `blackhole()` is the harsher partition: open connections stay open but nothing they carry
 * arrives any more, either way, and nothing tells either end — as with a connection a partition
 * left half-open. Healing lets new connections through; the black-holed ones stay dead for good.
 *
 * It can also make the link slow: with a latency set, every chunk is delivered that many
 * milliseconds after it arrived, in order, in both directions (a slow network or an overloaded
 * server, as a client sees it).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  cut(): void;
  /** Open connections go silent for good (not closed); new ones hear nothing until `heal()`. */
  blackhole(): void;
  heal(): void;
  /** Delay every chunk, each way, by `ms` (0: none). */
  setLatency(ms: number): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const live = new Set<Socket>();
  const silent = new Set<Socket>();
  const holed = new WeakSet<Socket>();
  let partitioned = false;
  let latencyMs = 0;

  /** Copy `from` to `to`, late by the current latency, never reordering. */
  const relay = (from: Socket, to: Socket) => {
    let lastDue = 0;
    from.on('data', (chunk: Buffer) => {
      if (holed.has(from)) return; // dropped: the peer never hears of it
      if (latencyMs === 0 && lastDue <= Date.now()) {
        if (!to.destroyed) to.write(chunk);
        return;
      }
      const due = Math.max(Date.now() + latencyMs, lastDue);
      lastDue = due;
      setTimeout(() => {
        if (!to.destroyed && !holed.has(from)) to.write(chunk);
      }, due - Date.now());
    });
    from.on('end', () =>
      setTimeout(() => {
        if (!holed.has(from)) to.end();
      }, Math.max(0, lastDue - Date.now())),
    );
  };

  const server: Server = createServer((client) => {
    client.on('error', () => undefined);
    if (partitioned) {
      silent.add(client);
      client.on('close', () => silent.delete(client));
      client.on('data', () => undefined); // read and drop
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    for (const socket of [client, upstream]) {
      live.add(socket);
      socket.on('close', () => live.delete(socket));
    }
    relay(client, upstream);
    relay(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    cut() {
      partitioned = true;
      for (const socket of live) socket.destroy();
    },
    blackhole() {
      partitioned = true;
      for (const socket of live) holed.add(socket);
    },
    heal() {
      partitioned = false;
      for (const socket of silent) socket.destroy();
    },
    setLatency(ms: number) {
      latencyMs = ms;
    },
    async close() {
      for (const socket of [...live, ...silent]) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
