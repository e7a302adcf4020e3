/**
 * A small request/response protocol over a MessagePort, used between the supervisor (main
 * thread) and each worker for the rare, non-hot-path conversations: idempotency claims, metric
 * snapshots, shutdown. Either side can call and serve on the same port.
 */
import type { MessagePort } from 'node:worker_threads';

type Handler = (...args: never[]) => unknown;
type Request = { readonly rpc: 'req'; readonly id: number; readonly method: string; readonly args: readonly unknown[] };
type Response = { readonly rpc: 'res'; readonly id: number; readonly ok: boolean; readonly value: unknown };

/** The part of a MessagePort (or a Worker, or parentPort) the protocol needs. */
export interface Port {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
}

function isRequest(m: unknown): m is Request {
  return typeof m === 'object' && m !== null && (m as { rpc?: unknown }).rpc === 'req';
}

function isResponse(m: unknown): m is Response {
  return typeof m === 'object' && m !== null && (m as { rpc?: unknown }).rpc === 'res';
}

export class RpcPeer<Remote extends Record<string, Handler>> {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(
    private readonly port: Port | MessagePort,
    private readonly handlers: Record<string, Handler> = {},
  ) {
    port.on('message', (message: unknown) => {
      if (isResponse(message)) this.settle(message);
      else if (isRequest(message)) void this.serve(message);
    });
  }

  call<M extends keyof Remote & string>(method: M, ...args: Parameters<Remote[M]>): Promise<Awaited<ReturnType<Remote[M]>>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.port.postMessage({ rpc: 'req', id, method, args } satisfies Request);
    });
  }

  /** Fail every call still waiting (the other side has gone). */
  abandon(reason: string): void {
    for (const { reject } of this.waiting.values()) reject(new Error(reason));
    this.waiting.clear();
  }

  private settle(message: Response): void {
    const waiter = this.waiting.get(message.id);
    if (!waiter) return;
    this.waiting.delete(message.id);
    if (message.ok) waiter.resolve(message.value);
    else waiter.reject(new Error(String(message.value)));
  }

  private async serve(message: Request): Promise<void> {
    const handler = this.handlers[message.method];
    try {
      if (!handler) throw new Error(`no handler for ${message.method}`);
      const value = await (handler as (...args: readonly unknown[]) => unknown)(...message.args);
      this.port.postMessage({ rpc: 'res', id: message.id, ok: true, value } satisfies Response);
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      this.port.postMessage({ rpc: 'res', id: message.id, ok: false, value: text } satisfies Response);
    }
  }
}
