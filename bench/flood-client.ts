/**
 * The flood bench's load generator (`bench/flood.ts` runs it as a process of its own): N
 * keep-alive HTTP/1.1 connections on loopback, each sending one buy, waiting for its answer, and
 * sending the next, until the run's time is up. It exists because wrk puts every answer into one
 * latency histogram — refusals included, and a fast 503 makes the p99 look better than what a
 * buyer who was sold anything saw — while this one keeps the latencies of admitted answers
 * (200 sold, 409 sold out) apart from refused ones (503), checks that each 503 carries
 * Retry-After, and lets every request in flight finish when the time is up (nothing is cut
 * off, so the units sold can be compared with the 200s exactly). Latency is timed from the
 * write of a request to the last byte of its answer; the connections are all open before the
 * first request is written, so connection set-up is reported apart.
 *
 * Buyers either send again at once after a 503 (as wrk and autocannon do: the server's whole
 * capacity goes to answering them), or, with `wait-retry-after`, wait the Retry-After it gave
 * (as a client that follows the answer does) before their next request.
 *
 * Usage: node flood-client.js <url> <connections> <seconds> [wait-retry-after]; prints one JSON
 * line (`FloodResult`).
 * The answers are parsed just enough for this service: a status line, Content-Length or chunked framing.
 */
import { connect, type Socket } from 'node:net';

export interface FloodResult {
  readonly connections: number;
  /** All connections open, ms after the first connect. */
  readonly connectMs: number;
  /** Connections that failed to open or were closed by the server (each reopened while time was left). */
  readonly connectionErrors: number;
  /** First request written → last answer read, s. */
  readonly elapsedS: number;
  readonly sent: number;
  /** Answers by status code. */
  readonly statuses: Record<string, number>;
  /** Non-2xx answers by status and error code ("503 overloaded"). */
  readonly errorCodes: Record<string, number>;
  /** 503 answers that carried Retry-After. */
  readonly refusedWithRetryAfter: number;
  /** Requests written whose connection closed before the answer came: outcome unknown. */
  readonly unanswered: number;
  /** Percentiles (ms) of the admitted answers (200 and 409) and of the refused ones (503). */
  readonly admitted: Percentiles;
  readonly refused: Percentiles;
}

export interface Percentiles {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

const HEADER_END = Buffer.from('\r\n\r\n');
/** How long in-flight requests may take to finish once the time is up before they count as unanswered. */
const DRAIN_TIMEOUT_MS = 30_000;

function percentiles(samples: number[]): Percentiles {
  if (samples.length === 0) return { count: 0, p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) => Number((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN).toFixed(2));
  return { count: sorted.length, p50: at(0.5), p99: at(0.99), max: Number((sorted[sorted.length - 1] ?? Number.NaN).toFixed(2)) };
}

/**
 * The body of the answer whose head ends at `start` in `buffer` and where it ends, or null while
 * it is not all there. Framed by Content-Length or chunked (some refusals are sent chunked).
 */
function bodyOf(buffer: Buffer, head: string, start: number): { text: string; end: number } | null {
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1];
  if (length !== undefined) {
    const end = start + Number(length);
    return buffer.length < end ? null : { text: buffer.toString('utf8', start, end), end };
  }
  if (!/\r\ntransfer-encoding:\s*chunked/i.test(head)) throw new Error(`an answer framed neither by Content-Length nor chunked: ${head}`);
  let text = '';
  let at = start;
  for (;;) {
    const lineEnd = buffer.indexOf('\r\n', at);
    if (lineEnd === -1) return null;
    const size = parseInt(buffer.toString('latin1', at, lineEnd), 16);
    const dataEnd = lineEnd + 2 + size;
    // The last chunk (size 0) ends with an empty line; no trailers are sent.
    if (buffer.length < dataEnd + 2) return null;
    if (size === 0) return { text, end: dataEnd + 2 };
    text += buffer.toString('utf8', lineEnd + 2, dataEnd);
    at = dataEnd + 2;
  }
}

async function flood(url: URL, connections: number, seconds: number, waitRetryAfter: boolean): Promise<FloodResult> {
  const port = Number(url.port);
  const request = Buffer.from(`POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Length: 0\r\n\r\n`);
  const statuses: Record<string, number> = {};
  const errorCodes: Record<string, number> = {};
  const admitted: number[] = [];
  const refused: number[] = [];
  let sent = 0;
  let refusedWithRetryAfter = 0;
  let connectionErrors = 0;
  let stopAt = Number.POSITIVE_INFINITY;
  let lastAnswerAt = 0;
  let open = 0;

  /** Records an answer; returns how long (ms) its connection waits before the next request. */
  const record = (status: number, head: string, body: string, ms: number): number => {
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status === 200 || status === 409) admitted.push(ms);
    if (status === 503) refused.push(ms);
    if (status >= 300) {
      const code = /"code":"([a-z_]+)"/.exec(body)?.[1] ?? 'no code';
      const label = `${status} ${code}`;
      errorCodes[label] = (errorCodes[label] ?? 0) + 1;
    }
    const retryAfter = status === 503 ? /\r\nretry-after:\s*(\d+)/i.exec(head)?.[1] : undefined;
    if (retryAfter !== undefined) refusedWithRetryAfter++;
    return waitRetryAfter && retryAfter !== undefined ? Number(retryAfter) * 1000 : 0;
  };

  /** One connection's loop; resolves when the time is up and its last answer came (or it failed for good). */
  const run = (ready: () => void): Promise<void> =>
    new Promise((finished) => {
      let socket: Socket;
      let pending: Buffer = Buffer.alloc(0);
      let sentAt = 0;
      let announced = false;
      /** Waiting out a Retry-After: the timer sends the next request. */
      let paused = false;
      const send = () => {
        if (performance.now() >= stopAt) {
          socket.end();
          return finished();
        }
        sentAt = performance.now();
        sent++;
        socket.write(request);
      };
      const onData = (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        for (;;) {
          const headerEnd = pending.indexOf(HEADER_END);
          if (headerEnd === -1) return;
          const head = pending.toString('latin1', 0, headerEnd);
          const body = bodyOf(pending, head, headerEnd + HEADER_END.length);
          if (body === null) return;
          const now = performance.now();
          const pause = record(Number(head.slice(9, 12)), head, body.text, now - sentAt);
          lastAnswerAt = now;
          pending = pending.subarray(body.end);
          if (pause > 0) {
            paused = true;
            setTimeout(() => {
              paused = false;
              send();
            }, pause);
          } else send();
        }
      };
      const openConnection = () => {
        socket = connect({ host: url.hostname, port, noDelay: true });
        socket.on('data', onData);
        socket.once('connect', () => {
          // Reopened after the server closed it: go on where it stopped (before the start, the start sends).
          if (announced && stopAt !== Number.POSITIVE_INFINITY && !paused) send();
          if (!announced) {
            announced = true;
            ready();
          }
        });
        // A request cut off here stays unanswered (sent, never answered): its outcome is unknown.
        socket.once('close', () => {
          pending = Buffer.alloc(0);
          if (!announced || performance.now() < stopAt) {
            connectionErrors++;
            setTimeout(openConnection, 10);
          } else finished();
        });
        socket.on('error', () => undefined);
      };
      openConnection();
      starters.push(() => send());
    });

  const starters: Array<() => void> = [];
  const connectStarted = performance.now();
  let openedAll: () => void = () => undefined;
  const allOpen = new Promise<void>((resolve) => (openedAll = resolve));
  const loops = Array.from({ length: connections }, () =>
    run(() => {
      if (++open === connections) openedAll();
    }),
  );
  await allOpen;
  const connectMs = performance.now() - connectStarted;
  const firstWriteAt = performance.now();
  stopAt = firstWriteAt + seconds * 1000;
  for (const start of starters) start();
  let drainTimer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(loops), new Promise((resolve) => (drainTimer = setTimeout(resolve, seconds * 1000 + DRAIN_TIMEOUT_MS)))]);
  clearTimeout(drainTimer);
  const answered = Object.values(statuses).reduce((a, b) => a + b, 0);
  return {
    connections,
    connectMs: Math.round(connectMs),
    connectionErrors,
    elapsedS: (lastAnswerAt - firstWriteAt) / 1000,
    sent,
    statuses,
    errorCodes,
    refusedWithRetryAfter,
    // Still waiting at the drain deadline, or cut off by a closed connection.
    unanswered: sent - answered,
    admitted: percentiles(admitted),
    refused: percentiles(refused),
  };
}

const [target, connectionsArg, secondsArg, mode] = process.argv.slice(2);
if (!target || !connectionsArg || !secondsArg) throw new Error('usage: flood-client.js <url> <connections> <seconds> [wait-retry-after]');
const result = await flood(new URL(target), Number(connectionsArg), Number(secondsArg), mode === 'wait-retry-after');
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
