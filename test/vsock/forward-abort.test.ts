import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { NitroEnclaveError } from '../../src/errors.js';
import { connectSocket, forwardTcpToVsock } from '../../src/vsock/index.js';
import { observingClient, observingServer, type Observed } from './native-helpers.js';

// An abort on one side of forwardTcpToVsock must reach the other side as an abort, also when the
// last bytes and the reset arrive together (no gap between them anywhere in these tests). What
// each end sees is read by a plain recv() loop in python3 (native-helpers.ts says why not Node).
// The far side runs through the native relay to loopback TCP and AF_UNIX; never AF_VSOCK.
const ROUNDS = 10;
const tmp = mkdtempSync(join(tmpdir(), 'nes-abort-'));
const servers: Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
  rmSync(tmp, { recursive: true, force: true });
});

const fdCount = () => readdirSync('/proc/self/fd').length;
const inet = (port: number) => () => connectSocket({ family: 'inet', host: '127.0.0.1', port }, { allowHalfOpen: true });
const unix = (path: string) => () => connectSocket({ family: 'unix', path }, { allowHalfOpen: true });

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Sends `request`, waits for the target's `ok` (so the target is past its first read), then runs `finish`. */
async function clientRound(port: number, finish: (s: Socket) => void): Promise<{ data: string; error?: string }> {
  const s = await dial(port);
  let data = '';
  let error: string | undefined;
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  s.on('error', (e: Error & { code?: string }) => (error = e.code ?? e.message));
  const ok = new Promise<void>((r) => s.on('data', (c: Buffer) => ((data += c.toString('latin1')), data.length >= 2 && r())));
  s.on('end', () => s.end());
  s.write('request');
  await ok;
  finish(s);
  await closed;
  return { data, ...(error ? { error } : {}) };
}

/** The sender's bytes arrive in order and nothing is invented; a tail queued in the forwarder when the reset came may be dropped. */
const prefixOf = (whole: string) => (o: Observed) => whole.startsWith(o.data) && o.data.startsWith('request');

describe('forwardTcpToVsock passes an abort on as an abort (last bytes and reset together)', () => {
  it('client → target (TCP): a client that sends its last bytes and resets at once resets the target, never a FIN', async () => {
    const target = await observingServer(ROUNDS, { family: 'inet' });
    const fwd = await forwardTcpToVsock({ listen: { port: 0 }, target: { cid: 3, port: 1 }, connect: inet(target.port) });
    try {
      for (let i = 0; i < ROUNDS; i++) {
        await clientRound(fwd.port, (s) => {
          s.write('last bytes');
          s.resetAndDestroy();
        });
      }
      const observed = await target.observed;
      expect(observed.map((o) => o.end)).toEqual(Array(ROUNDS).fill('ECONNRESET'));
      expect(observed.filter(prefixOf('requestlast bytes'))).toHaveLength(ROUNDS);
    } finally {
      target.close();
      await fwd.close();
    }
  });

  it('client → target (TCP): a reset with nothing queued behind it resets the target', async () => {
    const target = await observingServer(ROUNDS, { family: 'inet' });
    const fwd = await forwardTcpToVsock({ listen: { port: 0 }, target: { cid: 3, port: 1 }, connect: inet(target.port) });
    try {
      for (let i = 0; i < ROUNDS; i++) await clientRound(fwd.port, (s) => s.resetAndDestroy());
      expect(await target.observed).toEqual(Array(ROUNDS).fill({ data: 'request', end: 'ECONNRESET' }));
    } finally {
      target.close();
      await fwd.close();
    }
  });

  it('client → target (AF_UNIX, no reset on the wire): an abort closes both ways at once, so the target cannot answer (EPIPE)', async () => {
    const path = join(tmp, 'abort.sock');
    const target = await observingServer(ROUNDS, { family: 'unix', path });
    const fwd = await forwardTcpToVsock({ listen: { port: 0 }, target: { cid: 3, port: 1 }, connect: unix(path) });
    try {
      for (let i = 0; i < ROUNDS; i++) {
        await clientRound(fwd.port, (s) => {
          s.write('last bytes');
          s.resetAndDestroy();
        });
      }
      const observed = await target.observed;
      expect(observed.map((o) => [o.end, o.reply])).toEqual(Array(ROUNDS).fill(['EOF', 'EPIPE']));
      expect(observed.filter(prefixOf('requestlast bytes'))).toHaveLength(ROUNDS);
    } finally {
      target.close();
      await fwd.close();
    }
  });

  it('target → client: a target that writes its last bytes and resets at once resets the client and reports ERR_VSOCK_RESET', async () => {
    const target = createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => {
        s.write('last bytes');
        s.resetAndDestroy();
      });
    });
    servers.push(target);
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const errors: NitroEnclaveError[] = [];
    const fwd = await forwardTcpToVsock({ listen: { port: 0 }, target: { cid: 3, port: 1 }, connect: inet((target.address() as { port: number }).port), onError: (e) => errors.push(e) });
    try {
      const observed = await observingClient(fwd.port, ROUNDS);
      expect(observed.map((o) => o.end)).toEqual(Array(ROUNDS).fill('ECONNRESET'));
      expect(observed.filter((o) => 'last bytes'.startsWith(o.data))).toHaveLength(ROUNDS);
      expect(errors.map((e) => [e.code, e.message.replace(/:\d+:/, ':PORT:')])).toEqual(Array(ROUNDS).fill(['ERR_VSOCK_RESET', 'tcp 127.0.0.1:PORT: connection lost (ECONNRESET)']));
    } finally {
      await fwd.close();
    }
  });

  it('a clean end stays clean both ways: the target reads every byte, a FIN, and can still answer; TCP and AF_UNIX; no fd left behind', async () => {
    const fds = fdCount();
    const path = join(tmp, 'clean.sock');
    for (const at of [{ family: 'inet' as const }, { family: 'unix' as const, path }]) {
      const target = await observingServer(ROUNDS, at);
      const fwd = await forwardTcpToVsock({ listen: { port: 0 }, target: { cid: 3, port: 1 }, connect: at.family === 'inet' ? inet(target.port) : unix(path) });
      try {
        const seen = [];
        for (let i = 0; i < ROUNDS; i++) seen.push(await clientRound(fwd.port, (s) => s.end('last bytes')));
        expect(seen, at.family).toEqual(Array(ROUNDS).fill({ data: 'okbye' }));
        expect(await target.observed, at.family).toEqual(Array(ROUNDS).fill({ data: 'requestlast bytes', end: 'EOF', reply: 'ok' }));
      } finally {
        target.close();
        await fwd.close();
      }
    }
    const end = Date.now() + 10_000; // a bound for a loaded machine, not a timing
    while (fdCount() > fds && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(fdCount()).toBeLessThanOrEqual(fds);
  });
});
