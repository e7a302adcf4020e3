/**
 * Issue 13: the signal lane's hand-off to its owner (`PortSignalChannel` ↔ `SignalOwner`) over a
 * real MessageChannel. Requests of one event-loop turn go as one message; while that message is
 * with the owner, the requests of later turns wait and go together once its answers are back —
 * so a worker sends one message per round trip, however many turns it made meanwhile — and every
 * request still gets its own answer, in the order the owner applied them.
 * Budget: < 1 s.
 */
import { MessageChannel } from 'node:worker_threads';
import type { BuyOutcome } from '../../src/lanes/lane.js';
import { PortSignalChannel, SignalLane, SignalOwner } from '../../src/lanes/signal-lane.js';
import { SharedStock } from '../../src/memory/shared-stock.js';
import { waitFor } from '../harness/wait.js';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Closed after each test, passed or failed: an open port would keep Jest from exiting. */
const ports: Array<{ close(): void }> = [];
afterEach(() => {
  for (const port of ports.splice(0)) port.close();
});

test('while a batch is with the owner, later turns queue and go as one message; each buy gets its own answer', async () => {
  const stock = SharedStock.allocate(4);
  stock.ensure('HOT', 1000);
  // worker ↔ relay ↔ owner, all real MessagePorts: the relay counts the worker's messages and can
  // hold them, as a busy owner thread would.
  const worker = new MessageChannel();
  const owner = new MessageChannel();
  ports.push(worker.port1, worker.port2, owner.port1, owner.port2);
  new SignalOwner(stock).serve(owner.port2);
  const received: number[] = [];
  const held: Int32Array[] = [];
  let holding = true;
  worker.port2.on('message', (batch: Int32Array) => {
    received.push(batch.length / 4);
    if (holding) held.push(batch);
    else owner.port1.postMessage(batch);
  });
  owner.port1.on('message', (answers: Int32Array) => worker.port2.postMessage(answers));

  const lane = new SignalLane(stock, new PortSignalChannel(worker.port1));
  const sales: Array<BuyOutcome | Promise<BuyOutcome>> = [];
  for (let turn = 0; turn < 10; turn++) {
    for (let buy = 0; buy < 3; buy++) sales.push(lane.tryBuy('HOT', 1));
    await nextTurn();
  }
  await waitFor(() => received.length === 1, { timeoutMs: 2000, message: 'the first batch reached the owner' });
  for (let turn = 0; turn < 5; turn++) await nextTurn();
  // Ten turns of buys, one message: the other nine turns wait for its answers.
  expect(received).toEqual([3]);

  holding = false;
  for (const batch of held.splice(0)) owner.port1.postMessage(batch);
  const outcomes = (await Promise.all(sales)).map((o) => (o.kind === 'sold' ? o : { kind: o.kind, remaining: -1 }));
  // Its answers back, the 27 queued meanwhile went as one message.
  expect(received).toEqual([3, 27]);
  expect(outcomes.every((o) => o.kind === 'sold')).toBe(true);
  expect(new Set(outcomes.map((o) => o.remaining)).size).toBe(30);
  expect(Math.min(...outcomes.map((o) => o.remaining))).toBe(970);
  expect(lane.peek('HOT')).toEqual({ remaining: 970, sold: 30, initial: 1000 });
});
