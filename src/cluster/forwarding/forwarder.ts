/**
 * Single writer: every buy and admin change is decided by the primary. On a replica that may not
 * sell right now, this middleware forwards the request to the primary over a pool of kept-alive
 * connections and relays the primary's answer. While no primary is known — or the request was
 * already forwarded once, so the replicas disagree about who leads — it answers 503 with
 * Retry-After instead of guessing. A request that left for the primary and got no answer (the
 * connection died, the primary stopped answering) may have been acted on: 504 outcome_unknown.
 */
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { RequestHandler } from 'express';
import { OutcomeUnknownError, ServiceError } from '../../errors.js';
import type { ClusterState } from '../cluster-state.js';

export const FORWARDED_HEADER = 'x-superstock-forwarded';
const PASSED_REQUEST_HEADERS = ['content-type', 'idempotency-key', 'authorization'] as const;
const STREAMED_BODY_HEADERS = ['content-length', 'transfer-encoding'] as const;
const PASSED_RESPONSE_HEADERS = ['content-type', 'idempotent-replayed', 'retry-after'] as const;

export interface ForwardingOptions {
  readonly state: ClusterState;
  readonly hostId: string;
  readonly timeoutMs: number;
  /** The most forwarded requests in flight at once; beyond it, 503 overloaded at once (nothing sent). */
  readonly queueLimit: number;
  /** The primary's base URL as last learned from the election, or null. */
  readonly primaryUrl: () => string | null;
  readonly onForward: (outcome: 'ok' | 'failed') => void;
}

export function forwardUnlessPrimary(options: ForwardingOptions): RequestHandler {
  const agent = new Agent({ keepAlive: true, maxSockets: 512, timeout: options.timeoutMs });
  const noPrimary = () => new ServiceError('dependency_unavailable', 'No primary is known right now; retry shortly.', { dependency: 'primary' });

  let inFlight = 0;

  return (req, res, next) => {
    if (options.state.maySell()) return next();
    const target = options.primaryUrl();
    if (target === null || req.headers[FORWARDED_HEADER] !== undefined) return next(noPrimary());
    // The agent would queue requests beyond its sockets without bound; refuse them here instead.
    if (inFlight >= options.queueLimit) return next(new ServiceError('overloaded'));
    inFlight++;
    res.once('close', () => inFlight--);

    const headers: Record<string, string> = { [FORWARDED_HEADER]: options.hostId };
    for (const name of PASSED_REQUEST_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    // The gate runs after validation: a JSON body has been parsed and is sent re-encoded; a body
    // no parser read (none at all, or a streamed bulk list) is streamed on as it came.
    const body = req.body === undefined ? undefined : JSON.stringify(req.body);
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    else for (const name of STREAMED_BODY_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }

    const upstream = httpRequest(new URL(req.originalUrl, target), { method: req.method, headers, agent, timeout: options.timeoutMs }, (answer) => {
      const relay: Record<string, string> = {};
      const received: IncomingHttpHeaders = answer.headers;
      for (const name of PASSED_RESPONSE_HEADERS) {
        const value = received[name];
        if (typeof value === 'string') relay[name] = value;
      }
      res.writeHead(answer.statusCode ?? 502, relay);
      answer.pipe(res);
      answer.once('end', () => options.onForward('ok'));
    });
    // Once the whole request has left, the primary may act on it whatever happens next.
    let sent = false;
    upstream.once('finish', () => (sent = true));
    upstream.once('timeout', () => upstream.destroy(new Error(`no answer from the primary within ${options.timeoutMs} ms`)));
    upstream.once('error', (error) => {
      options.onForward('failed');
      if (res.headersSent) res.destroy();
      // Refused only if it never left; otherwise the primary may have sold: the buyer learns
      // which by retrying with the same Idempotency-Key.
      else next(sent ? new OutcomeUnknownError('primary', error.message, false) : noPrimary());
    });
    if (body !== undefined) upstream.end(body);
    else req.pipe(upstream);
  };
}
