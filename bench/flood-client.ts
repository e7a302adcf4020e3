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
 * Usage: node flood-client.js <url> <connections> <seconds>; prints one JSON line (`FloodResult`).
 * The answers are parsed just enough for this service: a status line, Content-Length framing.
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

async function flood(url: URL, connections: number, seconds: number): Promise<FloodResult> {
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

  const record = (status: number, head: string, body: string, ms: number) => {
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status === 200 || status === 409) admitted.push(ms);
    if (status === 503) refused.push(ms);
    if (status >= 300) {
      const code = /"code":"([a-z_]+)"/.exec(body)?.[1] ?? 'no code';
      const label = `${status} ${code}`;
      errorCodes[label] = (errorCodes[label] ?? 0) + 1;
    }
    if (status === 503 && /\r\nretry-after:/i.test(head)) refusedWithRetryAfter++;
  };

  /** One connection's loop; resolves when the time is up and its last answer came (or it failed for good). */
  const run = (ready: () => void): Promise<void> =>
    new Promise((finished) => {
      let socket: Socket;
      let pending: Buffer = Buffer.alloc(0);
      let sentAt = 0;
      let announced = false;
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
          const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? Number.NaN);
          if (Number.isNaN(length)) throw new Error(`an answer without Content-Length: ${head}`);
          const end = headerEnd + HEADER_END.length + length;
          if (pending.length < end) return;
          const now = performance.now();
          record(Number(head.slice(9, 12)), head, pending.toString('utf8', headerEnd + HEADER_END.length, end), now - sentAt);
          lastAnswerAt = now;
          pending = pending.subarray(end);
          send();
        }
      };
      const openConnection = () => {
        socket = connect({ host: url.hostname, port, noDelay: true });
        socket.on('data', onData);
        socket.once('connect', () => {
          // Reopened after the server closed it: go on where it stopped (before the start, the start sends).
          if (announced && stopAt !== Number.POSITIVE_INFINITY) send();
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

const [target, connectionsArg, secondsArg] = process.argv.slice(2);
if (!target || !connectionsArg || !secondsArg) throw new Error('usage: flood-client.js <url> <connections> <seconds>');
const result = await flood(new URL(target), Number(connectionsArg), Number(secondsArg));
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
