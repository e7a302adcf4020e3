/**
 * The fault runs' TCP proxy (tests/harness/tcp-proxy.ts) does what the faults need: relays both
 * ways, delays every chunk by the latency set (never less — a delivery cannot beat the delay),
 * keeps the byte order, and a cut kills open connections while healing closes the silent ones.
 * Budget: ~1 s.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { startTcpProxy, type TcpProxy } from './harness/tcp-proxy.js';

let echo: Server;
let proxy: TcpProxy;

beforeAll(async () => {
  echo = createServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  const address = echo.address();
  proxy = await startTcpProxy(typeof address === 'object' && address ? address.port : 0);
});

afterAll(async () => {
  await proxy.close();
  await new Promise((resolve) => echo.close(resolve));
});

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(proxy.port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

function receive(socket: Socket, bytes: number): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const onData = (chunk: Buffer) => {
      got += chunk.toString();
      if (got.length >= bytes) {
        socket.off('data', onData);
        resolve(got);
      }
    };
    socket.on('data', onData);
  });
}

test('relays in order, and a latency delays each way', async () => {
  const socket = await open();
  socket.write('abc');
  expect(await receive(socket, 3)).toBe('abc');
  proxy.setLatency(100);
  const started = performance.now();
  for (const part of ['1', '2', '3', '4']) socket.write(part);
  expect(await receive(socket, 4)).toBe('1234');
  expect(performance.now() - started).toBeGreaterThanOrEqual(195); // 100 ms there, 100 ms back
  proxy.setLatency(0);
  socket.destroy();
});

test('a cut kills open connections; new ones hear nothing until healed, then close', async () => {
  const before = await open();
  const closed = new Promise((resolve) => before.once('close', resolve));
  proxy.cut();
  await closed;
  const silent = await open();
  const silentClosed = new Promise((resolve) => silent.once('close', resolve));
  let heard = '';
  silent.on('data', (chunk: Buffer) => (heard += chunk.toString()));
  silent.write('anyone?');
  proxy.heal();
  await silentClosed;
  expect(heard).toBe('');
  const after = await open();
  after.write('back');
  expect(await receive(after, 4)).toBe('back');
  after.destroy();
});
