// A killed process leaves its AF_UNIX socket file behind; a restarted one must be able to listen on
// the same path, without ever removing a live listener's socket or a file that is not a socket.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connectSocket, listenSocket } from '../../src/vsock/index.js';
import { rawListen } from './native-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'nes-listen-stale-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const echo = (path: string) => listenSocket({ family: 'unix', path }, (socket) => socket.pipe(socket));

async function roundTrip(path: string, text: string): Promise<string> {
  const socket = await connectSocket({ family: 'unix', path });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise((resolve) => socket.once('end', resolve));
  socket.end(text);
  await ended;
  socket.destroy();
  return Buffer.concat(chunks).toString();
}

/** A node process listening on `path`, killed with SIGKILL: the socket file stays, nobody listens. */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => child.stdout.once('data', resolve));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  expect(statSync(path).isSocket()).toBe(true);
}

function listenError(path: string): { code?: string; message: string } {
  try {
    echo(path).close();
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('listenSocket did not fail');
}

describe('listenSocket on an AF_UNIX path that already exists', () => {
  it('replaces the socket file a killed process left behind (nobody listens on it)', async () => {
    const path = join(dir, 'stale.sock');
    await staleSocket(path);
    const listener = echo(path);
    expect(await roundTrip(path, 'after restart')).toBe('after restart');
    listener.close();
  });

  it('leaves a live listener alone: Address already in use, and the first listener keeps serving', async () => {
    const path = join(dir, 'live.sock');
    const first = echo(path);
    const err = listenError(path);
    expect(err.code).toBe('ERR_VSOCK_LISTEN');
    expect(err.message).toContain('Address already in use');
    expect(await roundTrip(path, 'still mine')).toBe('still mine');
    first.close();
  });

  it('leaves a live listener whose backlog is full alone (the probe is not refused, it would block)', async () => {
    const path = join(dir, 'busy.sock');
    const busy = await rawListen(path);
    try {
      // rawListen resolves once the child listens. The first connect fills the backlog (0 → one
      // pending connection on Linux), so further connects, the stale-socket probe too, report EAGAIN.
      const pending = await connectSocket({ family: 'unix', path });
      pending.on('error', () => {}); // reset when the holder exits
      expect(listenError(path).message).toContain('Address already in use');
      expect(statSync(path).isSocket()).toBe(true);
      pending.destroy();
    } finally {
      busy.close();
    }
  });

  it('never removes a file that is not a socket', () => {
    const path = join(dir, 'regular.sock');
    writeFileSync(path, 'not a socket');
    const err = listenError(path);
    expect(err.code).toBe('ERR_VSOCK_LISTEN');
    expect(err.message).toContain('Address already in use');
    expect(readFileSync(path, 'utf8')).toBe('not a socket');
  });
});
