/**
 * Liveness and readiness. /healthz answers as long as the event loop turns. /readyz checks every
 * configured dependency (bounded by DEPENDENCY_TIMEOUT_MS) and that a buy would reach a primary
 * (not one taking over or fenced off), and says why in `reasons` when it is not ready;
 * the in-memory state is loaded before a worker starts listening, so a worker that answers at
 * all has it.
 */
import type { Operations } from './contract.js';
import type { OperationRouter } from './operation-router.js';
import { NotReadyError, type DependencyCheck, type ReadinessState } from '../lanes/dependency-check.js';

export function probeRoutes(routes: OperationRouter, ops: Operations, dependencies: readonly DependencyCheck[]): void {
  routes.add(ops.healthz, (_input, _req, res) => {
    res.json({ status: 'ok' });
  });
  routes.add(ops.readyz, async (_input, _req, res) => {
    const checks: Record<string, ReadinessState> = { memory: 'ok', mongo: 'not_configured', redis: 'not_configured', primary: 'ok' };
    // Why each failing check fails, in words, so an operator (or a test) need not read the logs.
    const reasons: Record<string, string> = {};
    const results = await Promise.allSettled(dependencies.map((d) => d.check()));
    let ready = true;
    dependencies.forEach((d, i) => {
      const result = results[i];
      if (result?.status === 'rejected') {
        const error: unknown = result.reason;
        checks[d.name] = error instanceof NotReadyError ? error.state : 'unavailable';
        reasons[d.name] = error instanceof Error ? error.message : String(error);
        ready = false;
      } else {
        checks[d.name] = 'ok';
      }
    });
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks, ...(ready ? {} : { reasons }) });
  });
}
