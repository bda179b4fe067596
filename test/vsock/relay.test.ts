import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readSync, rmSync, writeSync } from 'node:fs';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectSocket, listenSocket } from '../../src/vsock/index.js';
import { loadNative } from '../../src/internal/native.js';
import { createTestTls } from '../../src/testing/kms/tls.js';
import { connect as tlsConnect } from 'node:tls';

// Every test here runs the native relay (the code vsock uses) against AF_UNIX or loopback peers.
// AF_VSOCK itself is never connected or bound on these machines.
const tmp = mkdtempSync(join(tmpdir(), 'nes-vsock-'));
const echoPath = join(tmp, 'echo.sock');
let echo: Server;
const serverSockets = new Set<Socket>();

const fdCount = () => readdirSync('/proc/self/fd').length;
const threadCount = () => readdirSync('/proc/self/task').length;
/** The thread count once earlier streams' pump threads have finished exiting (two equal readings). */
async function stableThreadCount(): Promise<number> {
  let last = threadCount();
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 30));
    const now = threadCount();
    if (now === last) return now;
    last = now;
  }
  return last;
}
// Bounded waits for a condition, not timings: generous so a loaded 2-core CI machine is not a failure.
const settle = async (check: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
};

beforeAll(async () => {
  echo = createServer({ allowHalfOpen: true }, (s) => {
    serverSockets.add(s);
    s.on('close', () => serverSockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(echoPath, r));
});
afterAll(() => {
  echo.close();
  rmSync(tmp, { recursive: true, force: true });
});

const unix = (path = echoPath) => ({ family: 'unix' as const, path });

function closed(s: Socket): Promise<void> {
  return new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));
}

describe('native relay (the vsock code path) against AF_UNIX peers', () => {
  it('echoes bytes both ways and closes without leaking fds or threads', async () => {
    const fds = fdCount();
    const threads = threadCount();
    const s = await connectSocket(unix());
    s.write('ping');
    const [data] = (await Promise.all([new Promise((r) => s.once('data', r))])) as Buffer[];
    expect(data!.toString()).toBe('ping');
    s.destroy();
    await closed(s);
    await settle(() => fdCount() <= fds && threadCount() <= threads);
    expect(fdCount()).toBeLessThanOrEqual(fds);
    expect(threadCount()).toBeLessThanOrEqual(threads);
  });

  it('carries 64 MiB with backpressure intact and memory flat', async () => {
    const total = 64 * 1024 * 1024;
    const chunk = randomBytes(256 * 1024);
    const s = await connectSocket(unix());
    const sent = createHash('sha256');
    const got = createHash('sha256');
    let received = 0;
    let peakRss = 0;
    const rss0 = process.memoryUsage().rss;
    let paused = 0;
    const done = new Promise<void>((resolve) => {
      s.on('data', (d: Buffer) => {
        got.update(d);
        received += d.length;
        if (received >= total) resolve();
      });
    });
    for (let written = 0; written < total; written += chunk.length) {
      sent.update(chunk);
      if (!s.write(chunk)) {
        paused++;
        await new Promise((r) => s.once('drain', r));
      }
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }
    await done;
    expect(got.digest('hex')).toBe(sent.digest('hex'));
    expect(paused).toBeGreaterThan(0); // the writer was actually held back
    // Far below the 64 MiB that went through. Not under test:native:sanitize, where ASan's allocator
    // keeps freed Buffers resident (quarantine) and RSS measures the sanitizer, not the relay.
    if (!process.env.NITRO_ENCLAVE_SANITIZED) expect(peakRss - rss0).toBeLessThan(48 * 1024 * 1024);
    s.destroy();
    await closed(s);
  });

  it('propagates a half-close: our end() reaches the peer, which can still answer', async () => {
    const path = join(tmp, 'half.sock');
    const server = createServer({ allowHalfOpen: true }, (peer) => {
      const chunks: Buffer[] = [];
      peer.on('data', (d) => chunks.push(d));
      peer.on('end', () => peer.end(`got ${Buffer.concat(chunks).length} bytes then EOF`));
    });
    await new Promise<void>((r) => server.listen(path, r));
    const s = await connectSocket(unix(path), { allowHalfOpen: true });
    s.end('abcdef');
    const reply = await new Promise<string>((resolve) => {
      let text = '';
      s.on('data', (d) => (text += d));
      s.on('end', () => resolve(text));
    });
    expect(reply).toBe('got 6 bytes then EOF');
    await closed(s);
    server.close();
  });

  it('delivers every byte when the peer answers and closes at once (no loss on a full close)', async () => {
    const path = join(tmp, 'answer-and-close.sock');
    // Small enough to fit in the socket buffers, so the peer can finish and close while we are paused.
    const answer = randomBytes(384 * 1024);
    let peerClosed: () => void = () => {};
    const server = createServer((peer) => {
      peer.once('data', () => peer.write(answer, () => peer.destroy())); // all in the kernel, then a full close
      peer.on('close', () => peerClosed());
    });
    await new Promise<void>((r) => server.listen(path, r));
    for (let round = 0; round < 3; round++) {
      const closed = new Promise<void>((r) => (peerClosed = r));
      const s = await connectSocket(unix(path));
      // Read nothing until the peer has written everything and closed: the tail of the answer
      // is still queued in the relay when the peer's socket is gone.
      s.pause();
      s.write('go');
      const got = new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        s.on('data', (d: Buffer) => chunks.push(d));
        s.on('end', () => resolve(Buffer.concat(chunks)));
        s.on('error', reject);
      });
      // The peer's close is the premise of this test, so wait for it (bounded), not for a fixed time.
      let timer: NodeJS.Timeout | undefined;
      const premise = await Promise.race([closed.then(() => 'closed'), new Promise((r) => (timer = setTimeout(r, 10_000, 'still open')))]);
      clearTimeout(timer);
      expect(premise, `round ${round}: the peer closes with the answer still queued in the relay`).toBe('closed');
      s.resume();
      const bytes = await got;
      expect(bytes.length, `round ${round}`).toBe(answer.length);
      expect(bytes.equals(answer), `round ${round}`).toBe(true);
    }
    server.close();
  });

  it('turns a peer reset into ERR_VSOCK_RESET (TCP RST, and AF_UNIX close with unread data)', async () => {
    const tcp = createServer((peer) => {
      peer.once('data', () => peer.resetAndDestroy());
    });
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const unixPath = join(tmp, 'reset.sock');
    // Closes once our bytes have arrived, with them still unread: the kernel reports ECONNRESET.
    const unixServer = await resetOnUnreadData(unixPath);
    const port = (tcp.address() as { port: number }).port;
    for (const address of [{ family: 'inet' as const, host: '127.0.0.1', port }, unix(unixPath)]) {
      const s = await connectSocket(address);
      s.write('data the peer will not read');
      const outcome = await new Promise<{ code?: string; message: string }>((resolve) => {
        s.on('error', resolve);
        s.on('end', () => resolve({ code: 'END', message: 'clean end' }));
        s.resume();
      });
      expect(outcome, address.family).toMatchObject({ code: 'ERR_VSOCK_RESET', message: expect.stringContaining('ECONNRESET') });
    }
    tcp.close();
    unixServer.close();
  });

  it('resetAndDestroy() aborts the remote (TCP: a RST; AF_UNIX: both ways shut, the peer cannot answer), as does closing with bytes unread; end() stays a half-close the peer answers', async () => {
    // Each round: send 7 bytes, wait for the peer's answer to start, then finish the stream.
    async function round(address: Parameters<typeof connectSocket>[0], finish: (s: Socket) => void) {
      const s = await connectSocket(address, { allowHalfOpen: true });
      let got = '';
      const ended = new Promise<string>((resolve) => {
        s.on('data', (d: Buffer) => (got += d.toString('latin1')));
        s.on('end', () => resolve(got));
        s.on('close', () => resolve(`closed after ${got.length} bytes`));
      });
      s.write('request');
      await new Promise((r) => s.once('data', r));
      finish(s);
      return ended;
    }
    const tcp = await observingServer(3, { family: 'inet' });
    const inet = { family: 'inet' as const, host: '127.0.0.1', port: tcp.port };
    try {
      expect(await round(inet, (s) => void s.resetAndDestroy())).toBe('closed after 2 bytes');
      expect(await round(inet, (s) => void s.end())).toBe('okbye');
      // Closing with bytes unread is an abort too, as close() is on TCP. Straight on the socketpair
      // end, with no net.Socket reading ahead: one byte of the 2-byte answer is read, one stays.
      const native = loadNative();
      const stream = await native.connect(inet, 5000).promise;
      writeSync(stream.fd, 'request');
      expect(readSync(stream.fd, Buffer.alloc(1))).toBe(1);
      native.closeFd(stream.fd);
      expect(await tcp.observed).toEqual([
        { data: 'request', end: 'ECONNRESET' },
        { data: 'request', end: 'EOF', reply: 'ok' },
        { data: 'request', end: 'ECONNRESET' },
      ]);
    } finally {
      tcp.close();
    }
    const path = join(tmp, 'observed.sock');
    const local = await observingServer(2, { family: 'unix', path });
    try {
      expect(await round(unix(path), (s) => void s.resetAndDestroy())).toBe('closed after 2 bytes');
      expect(await round(unix(path), (s) => void s.end())).toBe('okbye');
      expect(await local.observed).toEqual([
        { data: 'request', end: 'EOF', reply: 'EPIPE' },
        { data: 'request', end: 'EOF', reply: 'ok' },
      ]);
    } finally {
      local.close();
    }
  });

  it('maps a refused connection to ERR_VSOCK_CONNECT', async () => {
    await expect(connectSocket(unix(join(tmp, 'nobody.sock')))).rejects.toMatchObject({ code: 'ERR_VSOCK_CONNECT', message: expect.stringContaining('ENOENT') });
    await expect(connectSocket({ family: 'inet', host: '127.0.0.1', port: 1 })).rejects.toMatchObject({ code: 'ERR_VSOCK_CONNECT', message: expect.stringContaining('ECONNREFUSED') });
  });

  it('times out a connect that cannot complete, and aborts one on signal, without leaks', async () => {
    const path = join(tmp, 'full.sock');
    // A listener that never accepts and whose backlog is full: further connects wait.
    const listener = await rawListen(path);
    const fillers = [];
    for (let i = 0; i < 4; i++) fillers.push(await connectSocket(unix(path), { timeoutMs: 200 }).catch((e: Error) => e));
    const fds = fdCount();
    const t = Date.now();
    await expect(connectSocket(unix(path), { timeoutMs: 300 })).rejects.toMatchObject({ code: 'ERR_VSOCK_TIMEOUT', message: expect.stringContaining('timed out after 300 ms') });
    expect(Date.now() - t).toBeGreaterThanOrEqual(250);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('shutdown')), 100);
    await expect(connectSocket(unix(path), { timeoutMs: 0, signal: controller.signal })).rejects.toMatchObject({ code: 'ERR_VSOCK_ABORTED' });
    await expect(connectSocket(unix(path), { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_VSOCK_ABORTED' });
    await settle(() => fdCount() <= fds);
    expect(fdCount()).toBeLessThanOrEqual(fds);
    for (const f of fillers) if (!(f instanceof Error)) f.destroy();
    listener.close();
  });

  it('times out a TCP connect left in progress with ERR_VSOCK_TIMEOUT (not EALREADY from a second connect())', async () => {
    const listener = await rawListenTcp();
    // Fill the accept queue (backlog 0 holds one connection): the kernel then drops our SYN and the
    // connect stays in progress. The queue is full once a filler has connected; the others wait.
    const fillers = Array.from({ length: 4 }, () => netConnect(listener.port, '127.0.0.1').on('error', () => {}));
    await Promise.race(fillers.map((f) => new Promise((r) => f.once('connect', r))));
    const fds = fdCount();
    const t = Date.now();
    await expect(connectSocket({ family: 'inet', host: '127.0.0.1', port: listener.port }, { timeoutMs: 300 })).rejects.toMatchObject({
      code: 'ERR_VSOCK_TIMEOUT',
      message: expect.stringContaining('timed out after 300 ms'),
    });
    expect(Date.now() - t).toBeGreaterThanOrEqual(250);
    await settle(() => fdCount() <= fds);
    expect(fdCount()).toBeLessThanOrEqual(fds);
    for (const f of fillers) f.destroy();
    listener.close();
  });

  it('runs 100 concurrent streams and releases every fd and thread afterwards', async () => {
    const threads = await stableThreadCount();
    const fds = fdCount();
    const sockets = await Promise.all(Array.from({ length: 100 }, () => connectSocket(unix())));
    expect(threadCount()).toBeGreaterThanOrEqual(threads + 200); // two pump threads per stream
    const replies = await Promise.all(
      sockets.map(
        (s, i) =>
          new Promise<string>((resolve) => {
            let text = '';
            s.on('data', (d) => {
              text += d;
              if (text.length >= `stream-${i}`.length) resolve(text);
            });
            s.write(`stream-${i}`);
          }),
      ),
    );
    expect(replies).toEqual(sockets.map((_, i) => `stream-${i}`));
    await Promise.all(sockets.map((s) => (s.destroy(), closed(s))));
    await settle(() => fdCount() <= fds && threadCount() <= threads);
    expect(fdCount()).toBeLessThanOrEqual(fds);
    expect(threadCount()).toBeLessThanOrEqual(threads);
  });

  it('serves a listener (the parent-side server path) and runs TLS end to end over the relay', async () => {
    const tls = createTestTls(['kms.us-east-1.amazonaws.com']);
    const tlsServer = createTlsServer({ key: tls.keyPem, cert: tls.certPem }, (s) => s.end(`hello ${s.servername}`));
    const path = join(tmp, 'tls.sock');
    await new Promise<void>((r) => tlsServer.listen(path, r));
    const raw = await connectSocket(unix(path));
    const secure = tlsConnect({ socket: raw, servername: 'kms.us-east-1.amazonaws.com', ca: tls.caPem });
    const text = await new Promise<string>((resolve, reject) => {
      let t = '';
      secure.on('data', (d) => (t += d));
      secure.on('end', () => resolve(t));
      secure.on('error', reject);
    });
    expect(text).toBe('hello kms.us-east-1.amazonaws.com');
    tlsServer.close();

    const lpath = join(tmp, 'listen.sock');
    const listener = listenSocket(unix(lpath), (peer) => peer.end('from listener'));
    const c = await connectSocket(unix(lpath));
    const got = await new Promise<string>((resolve) => {
      let t = '';
      c.on('data', (d) => (t += d));
      c.on('end', () => resolve(t));
    });
    expect(got).toBe('from listener');
    listener.close();
  });

  it('checks an AF_UNIX path in UTF-8 bytes: too long is ERR_VSOCK_PATH_TOO_LONG, never a silently truncated path', async () => {
    // The longest path sun_path holds is 107 bytes (plus the NUL): it works for listen and connect.
    const dir = join(tmp, 'p');
    mkdirSync(dir);
    const pad = (bytes: number) => join(dir, 'x'.repeat(bytes - Buffer.byteLength(dir) - 1));
    const longest = pad(107);
    expect(Buffer.byteLength(longest)).toBe(107);
    const listener = listenSocket(unix(longest), (peer) => peer.end('longest'));
    const c = await connectSocket(unix(longest));
    expect(await new Promise<string>((resolve) => { let t = ''; c.on('data', (d) => (t += d)); c.on('end', () => resolve(t)); })).toBe('longest');
    listener.close();

    // 105 ASCII bytes then a 3-byte character: 108 bytes, one too many. Cut at a character
    // boundary it would be the 105-byte prefix, where a different socket listens.
    const prefix = pad(105);
    const tooLong = `${prefix}€`;
    expect(Buffer.byteLength(tooLong)).toBe(108);
    let reachedPrefix = 0;
    let sentinelSeen: () => void = () => {};
    const decoy = createServer((peer) => { reachedPrefix++; sentinelSeen(); peer.destroy(); });
    await new Promise<void>((r) => decoy.listen(prefix, r));
    await expect(connectSocket(unix(tooLong), { timeoutMs: 500 })).rejects.toMatchObject({ code: 'ERR_VSOCK_PATH_TOO_LONG', message: expect.stringContaining('108 bytes') });
    expect(() => listenSocket(unix(tooLong), () => {})).toThrow(expect.objectContaining({ code: 'ERR_VSOCK_PATH_TOO_LONG' }));
    expect(() => listenSocket(unix(`${longest}é`), () => {})).toThrow(expect.objectContaining({ code: 'ERR_VSOCK_PATH_TOO_LONG' }));
    // A NUL byte would cut the path as well: invalid, not truncated.
    await expect(connectSocket(unix(join(dir, 'a\0b')))).rejects.toThrow(TypeError);
    // The decoy accepts in order: once our own connection reaches it, a stray one made above would
    // have been counted first.
    const seen = new Promise<void>((r) => (sentinelSeen = r));
    netConnect(prefix).on('error', () => {});
    await seen;
    expect(reachedPrefix).toBe(1);
    decoy.close();
  });

  it('an allowedCids listener fails closed: an AF_UNIX peer has no CID and is refused before any relay', async () => {
    const path = join(tmp, 'cids.sock');
    const errors: { code?: string; message: string }[] = [];
    let served = 0;
    const listener = listenSocket(unix(path), (peer) => { served++; peer.end('served'); }, { allowedCids: [16], onError: (e) => errors.push(e as never) });
    const c = await connectSocket(unix(path));
    const text = await new Promise<string>((resolve) => { let t = ''; c.on('data', (d) => (t += d)); c.on('close', () => resolve(t)); c.on('error', () => {}); });
    expect(text).toBe('');
    await settle(() => errors.length > 0);
    expect(served).toBe(0);
    expect(errors).toEqual([expect.objectContaining({ code: 'ERR_VSOCK_PEER_REFUSED', message: 'refused a connection from a peer without a vsock CID: allowed CIDs are 16' })]);
    listener.close();
    for (const bad of [[], [-1], [1.5], [2 ** 32], 'all']) {
      expect(() => listenSocket(unix(join(tmp, 'never.sock')), () => {}, { allowedCids: bad as never })).toThrow(TypeError);
    }
  });

  it('reports a failed Node-API call in the helper as ERR_NATIVE_INTERNAL, leaving no socket bound', () => {
    // Reachable only through the internal binding: the public API always passes a function.
    const path = join(tmp, 'internal.sock');
    const fds = fdCount();
    expect(() => loadNative().listen(unix(path), 1, 'not a function' as never)).toThrow(expect.objectContaining({ name: 'NitroEnclaveError', code: 'ERR_NATIVE_INTERNAL', message: expect.stringContaining('napi_create_threadsafe_function') }));
    expect(existsSync(path)).toBe(false);
    expect(fdCount()).toBe(fds);
  });

  it('rejects invalid addresses and options as TypeError', async () => {
    await expect(connectSocket({ family: 'carrier-pigeon' } as never)).rejects.toThrow(TypeError);
    await expect(connectSocket(unix(), { timeoutMs: -1 })).rejects.toThrow(TypeError);
  });
});

import { observingServer, rawListen, rawListenTcp, resetOnUnreadData } from './native-helpers.js';
