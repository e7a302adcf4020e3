/**
 * Graceful close of an HTTP server: stop accepting, let in-flight requests finish and get their
 * answers, close keep-alive connections as soon as they fall idle, and cut whatever is still
 * open when the grace period ends.
 */
import type { Server } from 'node:http';

const IDLE_SWEEP_MS = 50;

export function closeGracefully(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    // A connection that was busy when close() began falls idle only after its answer is sent.
    const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS);
    const deadline = setTimeout(() => server.closeAllConnections(), graceMs);
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(deadline);
      resolve();
    });
    server.closeIdleConnections();
  });
}
