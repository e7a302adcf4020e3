/**
 * The ceilings the lanes are measured against: a no-op route served exactly the way the service
 * serves (WORKERS worker threads on one port with SO_REUSEPORT), once with raw node:http and once
 * with Express 5 plus the same JSON body parsing. Usage: node noop-server.js http|express
 * (PORT and WORKERS from the environment). Prints "ready" once every worker listens.
 */
import { createServer } from 'node:http';
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import express from 'express';

type Mode = 'http' | 'express';

function serve(mode: Mode, port: number): void {
  const server =
    mode === 'http'
      ? createServer((_req, res) => {
          res.writeHead(200, { 'content-type': 'application/json' }).end('true');
        })
      : createServer(
          express()
            .disable('x-powered-by')
            .disable('etag')
            .use(express.json({ limit: '4kb' }))
            .post('/noop', (_req, res) => {
              res.json(true);
            }),
        );
  server.keepAliveTimeout = 65_000;
  server.listen({ port, host: '127.0.0.1', reusePort: true }, () => parentPort?.postMessage('listening'));
  parentPort?.once('message', () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}

if (isMainThread) {
  const mode = process.argv[2] as Mode;
  if (mode !== 'http' && mode !== 'express') throw new Error('usage: noop-server.js http|express');
  const port = Number(process.env.PORT ?? 5099);
  const workers = Number(process.env.WORKERS ?? availableParallelism());
  let listening = 0;
  const threads = Array.from({ length: workers }, () =>
    new Worker(new URL(import.meta.url), { workerData: { mode, port } }).on('message', () => {
      if (++listening === workers) console.log('ready');
    }),
  );
  // Exit through the normal path, so `--cpu-prof` writes every thread's profile.
  process.once('SIGTERM', () => {
    let exited = 0;
    for (const thread of threads) {
      thread.once('exit', () => ++exited === workers && process.exit(0));
      thread.postMessage('stop');
    }
  });
} else {
  const { mode, port } = workerData as { mode: Mode; port: number };
  serve(mode, port);
}
