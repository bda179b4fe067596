import { execFile, fork, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeError, FRAME, frameHeader, FrameReader } from '../../src/workflow/protocol.js';
import { sleep, tempDir } from './helpers.js';

// The enclave side runs in a child process (memory-child.mjs, with --expose-gc, the built package) so
// that heapUsed + external there counts only what the server holds; this process plays the parent.
const root = join(import.meta.dirname, '..', '..');
const child = join(import.meta.dirname, 'memory-child.mjs');
const run = promisify(execFile);
const tmp = tempDir();
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill();
  tmp.cleanup();
});
const MiB = 1024 * 1024;
/** What an open connection costs the server besides its frame bytes (socket, relay handle, reader): documented in docs/workflow.md. */
const PER_CONNECTION = 16 * 1024;
/** Measurement noise of heapUsed + external after a full GC (code warming up, GC timing). */
const SLACK = 2 * MiB;

type Sample = { grown: number; bufferedBytes: number; connections: number };

async function startServer(name: string, limits: object) {
  const path = join(tmp.dir, `${name}.sock`);
  const proc: ChildProcess = fork(child, ['server', JSON.stringify({ path, limits })], { cwd: root, execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(proc);
  await new Promise<void>((resolve, reject) => {
    proc.once('message', () => resolve());
    proc.once('exit', (code) => reject(new Error(`server child exited ${code}`)));
  });
  const sample = () =>
    new Promise<Sample>((resolve) => {
      proc.once('message', (m) => resolve(m as Sample));
      proc.send('measure');
    });
  // Settled: the same buffered bytes and connections twice in a row.
  const settled = async (): Promise<Sample> => {
    let last = await sample();
    for (;;) {
      await sleep(200);
      const next = await sample();
      if (next.bufferedBytes === last.bufferedBytes && next.connections === last.connections) return next;
      last = next;
    }
  };
  return { path, settled, close: () => new Promise<void>((r) => (proc.once('exit', () => r()), proc.send('close'))) };
}

/** A hostile parent connection (see dripOnce); a full accept backlog (EAGAIN on a loaded machine) is retried. */
async function drip(path: string, bytes: Buffer): Promise<{ socket: Socket; errors: string[]; closed: () => boolean }> {
  for (;;) {
    try {
      return await dripOnce(path, bytes);
    } catch (err) {
      if ((err as { code?: string }).code !== 'EAGAIN') throw err;
      await sleep(20);
    }
  }
}

/** Sends `bytes`, never finishes; records the ERROR frames it gets and whether it was closed. */
function dripOnce(path: string, bytes: Buffer): Promise<{ socket: Socket; errors: string[]; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const errors: string[] = [];
    const reader = new FrameReader(MiB);
    let closed = false;
    socket.on('data', (c) => {
      for (const f of reader.push(c)) if (f.body && f.type === FRAME.ERROR) errors.push(`${f.id}:${decodeError(f.body).code}`);
    });
    socket.on('error', () => {});
    socket.on('close', () => (closed = true));
    socket.once('connect', () => {
      socket.write(bytes);
      resolve({ socket, errors, closed: () => closed });
    });
    socket.once('error', reject);
  });
}

const call = (id: number, claimedBody: number, sent: number) => Buffer.concat([frameHeader(FRAME.CALL, id, claimedBody), Buffer.alloc(sent, 0x41)]);

describe('what a hostile parent can make the enclave hold (heapUsed + external, measured in the server process)', () => {
  it('one-byte writes: an unfinished frame costs its bytes plus a constant, not ~100 bytes of heap per byte', async () => {
    const { stdout } = await run(process.execPath, ['--expose-gc', child, 'reader', join(root, 'dist', 'workflow', 'protocol.js')], { cwd: root, timeout: 120_000 });
    const r = JSON.parse(stdout) as { bytes: number; grown: number; buffered: number };
    expect(r.buffered).toBe(r.bytes);
    // main's reader kept one Buffer per push: 512 KiB fed one byte at a time grew the heap by ~55 MB.
    expect(r.grown).toBeLessThanOrEqual(r.bytes + 256 * 1024);
  });

  it('200 half-open connections, each holding a partial frame: within their bytes plus a constant per connection', async () => {
    const server = await startServer('half-open', { maxConnections: 256 });
    const parents = [];
    for (let i = 0; i < 200; i++) parents.push(await drip(server.path, call(1, MiB - 9, 1000)));
    const s = await server.settled();
    expect(s.connections).toBe(200);
    // Each holds one 16 KiB piece of its frame (charged to the budget), nothing per byte written.
    expect(s.bufferedBytes).toBe(200 * 16 * 1024);
    expect(s.grown).toBeLessThanOrEqual(s.bufferedBytes + 200 * PER_CONNECTION + SLACK);
    expect(parents.every((p) => !p.closed())).toBe(true);
    parents.forEach((p) => p.socket.destroy());
    await server.close();
  });

  it('16 connections each sending an unfinished 7.9 MiB frame: the 64 MiB budget holds, the frames beyond it get ERR_ACTIVITY_OVERLOADED', async () => {
    const server = await startServer('at-limit', {});
    const sent = Math.round(7.9 * MiB);
    const parents = [];
    for (let i = 0; i < 16; i++) parents.push(await drip(server.path, call(i + 1, 8 * MiB - 9, sent)));
    const s = await server.settled();
    const refused = parents.filter((p) => p.errors.length > 0);
    expect(refused.map((p) => p.errors[0]!.split(':')[1])).toEqual(Array(refused.length).fill('ERR_ACTIVITY_OVERLOADED'));
    // 8 frames fit in 64 MiB, the rest are refused (main held all 16: 126 MiB and more).
    expect(refused.length).toBe(8);
    expect(s.bufferedBytes).toBeLessThanOrEqual(64 * MiB);
    expect(s.grown).toBeLessThanOrEqual(64 * MiB + 16 * PER_CONNECTION + SLACK);
    parents.forEach((p) => p.socket.destroy());
    await server.close();
  });
});
