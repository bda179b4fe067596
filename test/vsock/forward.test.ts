import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NitroEnclaveError } from '../../src/errors.js';
import { connectSocket, forwardTcpToVsock } from '../../src/vsock/index.js';
import { rawListen } from './native-helpers.js';

// The forwarder's far side runs through the native relay (connectSocket, the code connectVsock uses)
// to AF_UNIX and loopback TCP peers. AF_VSOCK itself is never connected or bound on these machines.
const tmp = mkdtempSync(join(tmpdir(), 'nes-forward-'));
const peers: Server[] = [];
afterAll(() => {
  for (const p of peers) p.close();
  rmSync(tmp, { recursive: true, force: true });
});

const fdCount = () => readdirSync('/proc/self/fd').length;
const unixConnector = (path: string) => () => connectSocket({ family: 'unix', path }, { allowHalfOpen: true });

async function peer(onSocket: (s: Socket) => void, path = join(tmp, `${randomBytes(4).toString('hex')}.sock`)): Promise<string> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    onSocket(s);
  });
  peers.push(server);
  await new Promise<void>((r) => server.listen(path, r));
  return path;
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

function readAll(s: Socket): Promise<{ data: Buffer; error?: Error & { code?: string } }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: (Error & { code?: string }) | undefined;
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (e) => (error = e));
    s.on('close', () => resolve({ data: Buffer.concat(chunks), ...(error ? { error } : {}) }));
    // A stream that ends cleanly but stays half-open would hang the test: report it instead.
    s.on('end', () => setTimeout(() => resolve({ data: Buffer.concat(chunks), ...(error ? { error } : {}) }), 5000).unref());
  });
}

describe('forwardTcpToVsock (far side through the native relay, AF_UNIX and loopback peers)', () => {
  let echoPath: string;
  beforeAll(async () => {
    echoPath = await peer((s) => s.pipe(s));
  });

  it('carries 16 MiB both ways intact and releases every fd', async () => {
    const fds = fdCount();
    const fwd = await forwardTcpToVsock({ listen: { port: 0 }, target: { cid: 3, port: 7233 }, connect: unixConnector(echoPath) });
    const s = await dial(fwd.port);
    const data = randomBytes(16 * 1024 * 1024);
    const got = readAll(s);
    s.end(data);
    const { data: back, error } = await got;
    expect(error).toBeUndefined();
    expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    await fwd.close();
    const end = Date.now() + 10_000; // a bound for a loaded machine, not a timing
    while (fdCount() > fds && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(fdCount()).toBeLessThanOrEqual(fds);
  });

  it('half-close: the client ends its side and still reads the answer the peer sends after that', async () => {
    const path = await peer((s) => {
      let n = 0;
      s.on('data', (c: Buffer) => (n += c.length));
      s.on('end', () => setTimeout(() => s.end(`got ${n} bytes after your FIN`), 50));
    });
    const fwd = await forwardTcpToVsock({ listen: { port: 0 }, target: { cid: 3, port: 1 }, connect: unixConnector(path) });
    const s = await dial(fwd.port);
    const got = readAll(s);
    s.end('hello');
    const { data, error } = await got;
    expect(error).toBeUndefined();
    expect(data.toString()).toBe('got 5 bytes after your FIN');
    await fwd.close();
  });

  it('backpressure: a peer that stops reading stops the client, with memory bounded; all bytes arrive once it reads', async () => {
    let held: Socket | undefined;
    const path = await peer((s) => {
      s.pause();
      held = s;
    });
    const fwd = await forwardTcpToVsock({ listen: { port: 0 }, target: { cid: 3, port: 1 }, connect: unixConnector(path) });
    const s = await dial(fwd.port);
    const total = 64 * 1024 * 1024;
    const chunk = randomBytes(256 * 1024);
    let flushed = 0;
    let queued = 0;
    // Write until the stream stops draining for 1 s: what was flushed by then sits in kernel and stream buffers.
    while (queued < total) {
      queued += chunk.length;
      if (!s.write(chunk, () => (flushed += chunk.length))) {
        const drained = await new Promise<boolean>((r) => {
          const t = setTimeout(() => r(false), 1000);
          s.once('drain', () => (clearTimeout(t), r(true)));
        });
        if (!drained) break;
      }
    }
    expect(queued).toBeLessThan(total); // the writer was stopped
    expect(flushed).toBeLessThan(32 * 1024 * 1024); // nothing in between buffered the stream away
    // Now the peer reads: everything written arrives, in order.
    const hash = createHash('sha256');
    let received = 0;
    const done = new Promise<void>((r) => held!.on('end', r));
    held!.on('data', (c: Buffer) => ((received += c.length), hash.update(c)));
    held!.resume();
    const rest = total - queued;
    for (let i = 0; i < rest / chunk.length; i++) if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
    s.end();
    await done;
    expect(received).toBe(total);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(Buffer.concat(Array(total / chunk.length).fill(chunk))).digest('hex'));
    await fwd.close();
  });

  it('a loopback TCP peer that resets mid-stream resets the client (no clean end) and reports ERR_VSOCK_RESET', async () => {
    // The peer resets once the client has read its partial answer (the client asks for more): a Node
    // client only sees a reset that comes after the bytes it has read, since libuv 1.46 reports both
    // in one wake-up as 'end' (native-helpers.ts). Bytes and reset together: forward-abort.test.ts.
    const server = createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => {
        s.write('partial answer');
        s.once('data', () => s.resetAndDestroy());
      });
    });
    peers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const errors: NitroEnclaveError[] = [];
    const port = (server.address() as { port: number }).port;
    const fwd = await forwardTcpToVsock({
      listen: { port: 0 },
      target: { cid: 3, port: 1 },
      connect: () => connectSocket({ family: 'inet', host: '127.0.0.1', port }, { allowHalfOpen: true }),
      onError: (e) => errors.push(e),
    });
    const s = await dial(fwd.port);
    const got = readAll(s);
    s.write('request');
    s.once('data', () => s.write('more?'));
    const { data, error } = await got;
    expect(data.toString()).toBe('partial answer');
    expect(error?.code).toBe('ECONNRESET');
    expect(errors.map((e) => e.code)).toEqual(['ERR_VSOCK_RESET']);
    await fwd.close();
  });

  it('a refused or silent target resets the client and reports ERR_VSOCK_CONNECT / ERR_VSOCK_TIMEOUT; the forwarder keeps serving', async () => {
    const errors: NitroEnclaveError[] = [];
    const nobody = join(tmp, 'nobody.sock');
    const fwd = await forwardTcpToVsock({ listen: { port: 0 }, target: { cid: 3, port: 1 }, connect: unixConnector(nobody), onError: (e) => errors.push(e) });
    const { data } = await readAll(await dial(fwd.port));
    expect(data).toHaveLength(0);
    expect(errors[0]?.code).toBe('ERR_VSOCK_CONNECT');
    const silent = join(tmp, 'silent.sock');
    const listener = await rawListen(silent);
    // python's backlog-0 listener accepts nothing: fill its queue, then the forwarder's connect waits
    const fillers = [];
    for (let i = 0; i < 4; i++) fillers.push(await connectSocket({ family: 'unix', path: silent }, { timeoutMs: 200 }).catch((e: Error) => e));
    try {
      const fwd2 = await forwardTcpToVsock({ listen: { port: 0 }, target: { cid: 3, port: 1 }, connect: () => connectSocket({ family: 'unix', path: silent }, { timeoutMs: 300 }), onError: (e) => errors.push(e) });
      const { data: none } = await readAll(await dial(fwd2.port));
      expect(none).toHaveLength(0);
      expect(errors[1]?.code).toBe('ERR_VSOCK_TIMEOUT');
      await fwd2.close();
    } finally {
      for (const f of fillers) if (!(f instanceof Error)) f.destroy();
      listener.close();
    }
    // still serving after failures
    expect(fwd.connections).toBe(0);
    await fwd.close();
  });

  it('close() resets live connections and frees the port; a taken port is ERR_VSOCK_LISTEN; bad options are TypeErrors', async () => {
    const fwd = await forwardTcpToVsock({ listen: { port: 0 }, target: { cid: 3, port: 1 }, connect: unixConnector(echoPath) });
    await expect(forwardTcpToVsock({ listen: { port: fwd.port }, target: { cid: 3, port: 1 } })).rejects.toMatchObject({ code: 'ERR_VSOCK_LISTEN' });
    const s = await dial(fwd.port);
    s.write('x');
    await new Promise((r) => s.once('data', r));
    expect(fwd.connections).toBe(1);
    const got = readAll(s);
    await fwd.close();
    expect((await got).error?.code).toBe('ECONNRESET');
    const again = await forwardTcpToVsock({ listen: { port: fwd.port }, target: { cid: 3, port: 1 }, connect: unixConnector(echoPath) });
    await again.close();
    await expect(forwardTcpToVsock({ listen: { port: 70000 }, target: { cid: 3, port: 1 } })).rejects.toThrow(TypeError);
    await expect(forwardTcpToVsock({ listen: { port: 0 }, target: { cid: -1, port: 1 } })).rejects.toThrow(TypeError);
    await expect(forwardTcpToVsock({ listen: { port: 0 }, target: { cid: 3, port: 1 }, connect: 'x' as never })).rejects.toThrow(TypeError);
  });
});
