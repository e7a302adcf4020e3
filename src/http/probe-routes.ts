/**
 * Liveness and readiness. /healthz answers as long as the event loop turns. /readyz checks every
 * configured dependency (bounded by DEPENDENCY_TIMEOUT_MS) and that a buy would reach a primary;
 * the in-memory state is loaded before a worker starts listening, so a worker that answers at
 * all has it.
 */
import type { Operations } from './contract.js';
import type { OperationRouter } from './operation-router.js';
import type { DependencyCheck } from '../lanes/dependency-check.js';

export function probeRoutes(routes: OperationRouter, ops: Operations, dependencies: readonly DependencyCheck[]): void {
  routes.add(ops.healthz, (_input, _req, res) => {
    res.json({ status: 'ok' });
  });
  routes.add(ops.readyz, async (_input, _req, res) => {
    const checks: Record<string, string> = { memory: 'ok', mongo: 'not_configured', redis: 'not_configured', primary: 'ok' };
    const results = await Promise.allSettled(dependencies.map((d) => d.check()));
    let ready = true;
    dependencies.forEach((d, i) => {
      const ok = results[i]?.status === 'fulfilled';
      checks[d.name] = ok ? 'ok' : 'unavailable';
      ready &&= ok;
    });
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks });
  });
}
