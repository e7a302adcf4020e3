/**
 * The group commit's one hot MongoDB call — insert a ledger batch — sent as a bare `insert` command
 * (OP_MSG) over a socket of its own, instead of through the driver's `insertOne`.
 *
 * Why: a CPU profile of a durable worker under load put a quarter of its busy time in the driver,
 * and on this machine the driver's `insertOne` costs 250–850 µs of client CPU per call (implicit
 * session, server selection, pool check-out, operation and timeout objects, command monitoring
 * hooks), where the same command framed here costs 20–25 µs; alone, the driver reached ~1,000
 * inserts a second against the wire server, this path ~11,000 (bench/ANALYSIS.md has the figures).
 * At ~20 sales per batch that difference is most of the CPU a durable buy costs beyond a plain one.
 *
 * What it keeps exactly: the command is the one the driver sends (`insert`, one document, ordered,
 * the configured write concern), so the server applies the same write; a duplicate `_id` is told
 * apart (the fence's "a successor sealed this number"), and every other answer, a lost connection
 * or no answer within the bound is an error — an outcome the caller does not know, which the group
 * commit settles with a tombstone through the driver exactly as before. Nothing is retried here.
 *
 * What it does not do: authentication, TLS, replica-set discovery. It is used only when MONGO_URL
 * names one host with no credentials and no options (`directInsertTarget`); any other URL, or
 * `LEDGER_INSERTS=driver`, keeps the driver's path.
 *
 * Several inserts may be out at once on the one socket (the group commit pipelines its batches);
 * answers are matched to requests by id. A request that goes unanswered past the bound destroys the
 * socket, failing everything still out on it (their outcomes are unknown all the same), and the next
 * insert connects afresh.
 */
import { connect, type Socket } from 'node:net';
import { BSON, type Document } from 'mongodb';
import { DependencyUnavailableError } from '../../errors.js';
import type { MongoWriteConcern } from '../../mongo.js';

/** Where a direct insert goes: one server, no credentials, no options. */
export interface DirectTarget {
  readonly host: string;
  readonly port: number;
}

/** The insert a `Fence` makes for a batch, whichever path carries it. */
export interface LedgerInserts {
  /** 'inserted', or 'duplicate' when `_id` is taken; throws when the outcome is unknown. */
  insert(database: string, collection: string, document: Document): Promise<'inserted' | 'duplicate'>;
}

const OP_MSG = 2013;
const HEADER_BYTES = 16;
/** Header, flag bits, and the kind byte of the one body section. */
const PREFIX_BYTES = HEADER_BYTES + 4 + 1;
const DUPLICATE_KEY = 11000;
const CHECKSUM_PRESENT = 1;

/**
 * The server a direct insert may go to, or null when MONGO_URL asks for more than a bare command
 * over a plain socket can give (several hosts, SRV, credentials, TLS or any other option).
 */
export function directInsertTarget(mongoUrl: string): DirectTarget | null {
  const match = /^mongodb:\/\/([^/?#@,]+)(?:\/[^?#]*)?$/.exec(mongoUrl);
  const authority = match?.[1];
  if (authority === undefined) return null;
  const hostPort = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(authority);
  const host = hostPort?.[1];
  if (host === undefined) return null;
  const port = Number(hostPort?.[2] ?? 27017);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port };
}

/** The command document: what the driver's `insertOne` sends, write concern included. */
export function insertCommand(database: string, collection: string, document: Document, writeConcern: MongoWriteConcern): Document {
  return { insert: collection, documents: [document], ordered: true, writeConcern: { w: writeConcern.w, j: writeConcern.journal }, $db: database };
}

interface Waiting {
  readonly resolve: (outcome: 'inserted' | 'duplicate') => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** The server's answer to one insert, as the caller needs it. */
function outcomeOf(reply: Document): 'inserted' | 'duplicate' {
  const writeErrors = reply.writeErrors as Array<{ code?: number; errmsg?: string }> | undefined;
  if (reply.ok !== 1) throw new DependencyUnavailableError('mongo', `insert refused: ${String(reply.errmsg ?? reply.codeName ?? 'ok: 0')}`);
  if (writeErrors !== undefined && writeErrors.length > 0) {
    if (writeErrors.every((e) => e.code === DUPLICATE_KEY)) return 'duplicate';
    throw new DependencyUnavailableError('mongo', `insert failed: ${writeErrors.map((e) => e.errmsg ?? e.code).join('; ')}`);
  }
  const concern = reply.writeConcernError as { errmsg?: string } | undefined;
  if (concern !== undefined) throw new DependencyUnavailableError('mongo', `write concern not met: ${concern.errmsg ?? 'unknown'}`);
  if (reply.n !== 1) throw new DependencyUnavailableError('mongo', `insert answered n: ${String(reply.n)}`);
  return 'inserted';
}

export class DirectInserts implements LedgerInserts {
  private socket: Socket | null = null;
  private readonly waiting = new Map<number, Waiting>();
  private nextRequestId = 1;
  /** Bytes received and not yet a whole message. */
  private pending: Buffer | null = null;
  private closed = false;

  constructor(
    private readonly target: DirectTarget,
    private readonly writeConcern: MongoWriteConcern,
    private readonly timeoutMs: number,
  ) {}

  insert(database: string, collection: string, document: Document): Promise<'inserted' | 'duplicate'> {
    if (this.closed) return Promise.reject(new DependencyUnavailableError('mongo', 'direct inserts closed'));
    const socket = this.socket ?? this.open();
    // undefined as null, as the driver writes it: the document is the driver's byte for byte.
    const body = BSON.serialize(insertCommand(database, collection, document, this.writeConcern), { ignoreUndefined: false });
    const requestId = this.nextRequestId;
    this.nextRequestId = requestId >= 0x7fffffff ? 1 : requestId + 1;
    const message = Buffer.allocUnsafe(PREFIX_BYTES + body.length);
    message.writeInt32LE(message.length, 0);
    message.writeInt32LE(requestId, 4);
    message.writeInt32LE(0, 8);
    message.writeInt32LE(OP_MSG, 12);
    message.writeUInt32LE(0, 16);
    message[20] = 0;
    message.set(body, PREFIX_BYTES);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(socket, new DependencyUnavailableError('mongo', `no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      this.waiting.set(requestId, { resolve, reject, timer });
      socket.write(message);
    });
  }

  /** Fail what is still out and refuse what comes; the socket goes. */
  close(): void {
    this.closed = true;
    if (this.socket) this.fail(this.socket, new DependencyUnavailableError('mongo', 'direct inserts closed'));
  }

  private open(): Socket {
    const socket = connect({ host: this.target.host, port: this.target.port, noDelay: true });
    this.socket = socket;
    this.pending = null;
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error) => this.fail(socket, new DependencyUnavailableError('mongo', error.message, error)));
    socket.on('close', () => this.fail(socket, new DependencyUnavailableError('mongo', 'connection closed')));
    return socket;
  }

  /** Everything out on `socket` fails with `error`: its outcome is unknown. The next insert opens a new socket. */
  private fail(socket: Socket, error: Error): void {
    if (this.socket !== socket) return;
    this.socket = null;
    this.pending = null;
    socket.destroy();
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const { reject, timer } of waiting) {
      clearTimeout(timer);
      reject(error);
    }
  }

  private receive(chunk: Buffer): void {
    let data = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    while (data.length >= 4) {
      const length = data.readInt32LE(0);
      if (length < PREFIX_BYTES) {
        // Not a reply to anything sent here: nothing more on this socket can be trusted.
        if (this.socket) this.fail(this.socket, new DependencyUnavailableError('mongo', 'malformed answer to a direct insert'));
        return;
      }
      if (data.length < length) break;
      this.answer(data.subarray(0, length));
      data = data.subarray(length);
    }
    this.pending = data.length > 0 ? data : null;
  }

  private answer(message: Buffer): void {
    const socket = this.socket;
    if (socket === null) return;
    if (message.length < PREFIX_BYTES || message.readInt32LE(12) !== OP_MSG || message[20] !== 0) {
      this.fail(socket, new DependencyUnavailableError('mongo', 'unexpected answer to a direct insert'));
      return;
    }
    const waiter = this.waiting.get(message.readInt32LE(8));
    if (waiter === undefined) return;
    this.waiting.delete(message.readInt32LE(8));
    clearTimeout(waiter.timer);
    const checksum = (message.readUInt32LE(16) & CHECKSUM_PRESENT) !== 0 ? 4 : 0;
    try {
      waiter.resolve(outcomeOf(BSON.deserialize(message.subarray(PREFIX_BYTES, message.length - checksum))));
    } catch (error) {
      waiter.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }
}
