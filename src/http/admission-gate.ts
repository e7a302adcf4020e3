/**
 * The admission gate: the first thing a worker's HTTP server does with a request, before Express.
 * It counts the requests this server is serving (from arrival until the response closes); past
 * ADMISSION_LIMIT it answers at once with a pre-serialised 503 `overloaded` and `Retry-After` —
 * the catalogue's own body, byte for byte — without routing, metrics middleware or body parsing,
 * so nothing was done and the refusal costs a small fraction of a sale. The queues' QUEUE_LIMIT
 * refusals come only after Express has parsed a request, which under a flood of clients that send
 * again at once made a refusal cost nearly a sale and kept every connection's request waiting;
 * this bound keeps the admitted requests' wait to ~ADMISSION_LIMIT answers.
 *
 * The probes (/healthz, /readyz) are never refused nor counted: Kubernetes must see a flooded
 * replica alive and ready. (/metrics is served on METRICS_PORT by the main thread, not here.)
 *
 * A refused request's body is not read by us: once the response has finished, Node's HTTP server
 * reads and discards whatever of it is left (`req._dump()`), so a keep-alive connection stays
 * usable for the client's next request. Closing it instead would make a hammering client open a
 * new TCP connection per retry, costing both sides more than the refusal saves.
 */
import type { IncomingMessage, OutgoingHttpHeaders, RequestListener, ServerResponse } from 'node:http';
import { ERROR_CATALOGUE, ServiceError } from '../errors.js';
import { errorBody } from './app-deps.js';

const REFUSAL = new ServiceError('overloaded');
const REFUSAL_BODY = Buffer.from(errorBody(REFUSAL));
/** The headers the error handler sends with the same error, so a client cannot tell which bound refused it. */
const REFUSAL_HEADERS: OutgoingHttpHeaders = {
  'content-type': 'application/json; charset=utf-8',
  'content-length': REFUSAL_BODY.length,
  'retry-after': '1',
};
const REFUSAL_STATUS = ERROR_CATALOGUE.overloaded.status;

/** Whether a request is a probe, by its raw target; a prefix test, as nothing is parsed yet. */
function isProbe(target: string | undefined): boolean {
  return target !== undefined && (target.startsWith('/healthz') || target.startsWith('/readyz'));
}

/**
 * Wrap `serve` (the Express app) so that at most `limit` requests are inside it at once.
 * @param onRefused called once per refusal (the metric).
 */
export function admissionGate(serve: RequestListener, limit: number, onRefused: () => void): RequestListener {
  let inFlight = 0;
  // One listener shared by every response, so admitting a request allocates nothing.
  const onResponseClosed = (): void => {
    inFlight--;
  };
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (isProbe(req.url)) return void serve(req, res);
    if (inFlight >= limit) {
      onRefused();
      res.writeHead(REFUSAL_STATUS, REFUSAL_HEADERS).end(REFUSAL_BODY);
      return;
    }
    inFlight++;
    res.on('close', onResponseClosed);
    serve(req, res);
  };
}
