/**
 * A loopback TCP proxy that can cut a client off from a server the way a network partition does:
 * open connections die, new ones are accepted and then hear nothing (packets dropped, not
 * refused), so the client's own timeouts are what save it. Healing drops the silent connections
 * instead of delivering what they held — a partition loses packets, it does not delay them.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  cut(): void;
  heal(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const live = new Set<Socket>();
  const silent = new Set<Socket>();
  let partitioned = false;
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
    for (const socket of [client, upstream]) {
      live.add(socket);
      socket.on('close', () => live.delete(socket));
    }
    client.pipe(upstream);
    upstream.pipe(client);
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
    heal() {
      partitioned = false;
      for (const socket of silent) socket.destroy();
    },
    async close() {
      for (const socket of [...live, ...silent]) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
