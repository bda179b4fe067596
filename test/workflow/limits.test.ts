import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connectSocket } from '../../src/vsock/index.js';
import { openState, sealState, serveSealedActivities, type SealedActivityServer } from '../../src/workflow/index.js';
import { createSealedActivityClient } from '../../src/workflow/parent/client.js';
import { CONNECTION_ID, decodeError, decodeResult, encodeCallPrefix, FRAME, frameHeader, FrameReader } from '../../src/workflow/protocol.js';
import { agents, codeOf, dec, enc, newEvents, newKey, tempDir, until } from './helpers.js';

const tsk = newKey();
let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

function start(limits: Record<string, number>, extra: { timers?: { setTimeout(fn: () => void, ms: number): unknown; clearTimeout(h: unknown): void }; handlers?: Record<string, Parameters<typeof serveSealedActivities>[0]['handlers'][string]> } = {}) {
  const dir = tempDir();
  const path = join(dir.dir, 'e.sock');
  const events = newEvents();
  const errors: string[] = [];
  const server: SealedActivityServer = serveSealedActivities({ listen: { family: 'unix', path }, key: tsk, handlers: { ...agents(events), ...extra.handlers }, limits, onError: (e) => errors.push((e as { code?: string }).code ?? e.message), ...(extra.timers ? { timers: extra.timers } : {}) });
  cleanup.push(async () => {
    await server.close();
    dir.cleanup();
  });
  return { server, path, events, errors };
}

/** A raw parent: every frame it receives, and whether the enclave closed the connection. */
async function raw(path: string) {
  const socket = await connectSocket({ family: 'unix', path });
  socket.on('error', () => {});
  const reader = new FrameReader(64 * 1024 * 1024);
  const frames: Array<{ type: number; id: number; body: Buffer }> = [];
  let closed = false;
  socket.on('data', (c: Buffer) => {
    for (const f of reader.push(c)) if (f.body) frames.push({ type: f.type, id: f.id, body: f.body });
  });
  socket.on('close', () => (closed = true));
  cleanup.push(() => void socket.destroy());
  const call = (id: number, activity: string, workflowId: string, seq: number, state: Uint8Array) => Buffer.concat([encodeCallPrefix(id, { activity, workflowId, seq, attest: false, nonce: new Uint8Array(0) }, state.length), state]);
  return {
    socket,
    frames,
    call,
    get closed() {
      return closed;
    },
    errors: () => frames.filter((f) => f.type === FRAME.ERROR).map((f) => `${f.id}:${decodeError(f.body).code}`),
  };
}

// Merged with chain ids (branch domains): every state of these tests is in one chain.
const CHAIN = '00'.repeat(16);
const stateFor = (activity: string, workflowId = 'wf-l', text = 'x') => sealState(tsk, enc(text), { workflowId, chainId: CHAIN, activity, seq: 0, producer: 'client' });

describe('frame limits that close the connection', () => {
  it('a header claiming 4 GiB closes the connection at once, after a coded ERROR with its id', async () => {
    const { path, errors } = start({});
    const p = await raw(path);
    p.socket.write(frameHeader(FRAME.CALL, 7, 0xffffffff - 5)); // the header alone: nothing of the 4 GiB follows
    await until(() => p.closed);
    expect(p.errors()).toEqual(['7:ERR_ACTIVITY_TOO_LARGE', `${CONNECTION_ID}:ERR_ACTIVITY_TOO_LARGE`]);
    expect(decodeError(p.frames[0]!.body).message).toBe('frame of 4294967299 bytes is over the 8388608-byte limit');
    expect(errors).toEqual(['ERR_ACTIVITY_TOO_LARGE']);
  });

  it('the parent\'s client: refuses to send a CALL over its maxMessageBytes; over the enclave\'s, the call fails ERR_ACTIVITY_TOO_LARGE and the next one reconnects', async () => {
    const { path } = start({ maxMessageBytes: 64 * 1024 });
    const small = createSealedActivityClient({ address: { family: 'unix', path }, maxMessageBytes: 64 * 1024 });
    const big = createSealedActivityClient({ address: { family: 'unix', path }, maxMessageBytes: 1024 * 1024 });
    cleanup.push(() => small.close(), () => big.close());
    const huge = stateFor('research', 'wf-l', 'x'.repeat(100 * 1024));
    // header 9 + flags 1 + 2 + 'research' 8 + 2 + 'wf-l' 4 + seq 8 + nonce length 2 = 36 bytes before the state
    const local = (await small.call({ activity: 'research', workflowId: 'wf-l', seq: 0, state: huge }).catch((e: unknown) => e)) as { code: string; message: string };
    expect([local.code, local.message]).toEqual(['ERR_ACTIVITY_TOO_LARGE', `frame of ${huge.length + 36} bytes is over the 65536-byte limit (maxMessageBytes; match the enclave's)`]);
    expect(await codeOf(big.call({ activity: 'research', workflowId: 'wf-l', seq: 0, state: huge }))).toBe('ERR_ACTIVITY_TOO_LARGE');
    const r = await big.call({ activity: 'research', workflowId: 'wf-l', seq: 0, state: stateFor('research', 'wf-l', 'small') });
    expect(dec(openState(tsk, r.state, { workflowId: 'wf-l', chainId: CHAIN, activity: 'analysis', seq: 1, producer: 'research' }).plaintext)).toBe('notes on small');
  });

  it('refuses the connection beyond maxConnections with a connection-level ERR_ACTIVITY_OVERLOADED', async () => {
    const { path, server } = start({ maxConnections: 2 });
    const a = await raw(path);
    const b = await raw(path);
    await until(() => server.connections === 2);
    const c = await raw(path);
    await until(() => c.closed);
    expect(c.errors()).toEqual([`${CONNECTION_ID}:ERR_ACTIVITY_OVERLOADED`]);
    expect(decodeError(c.frames[0]!.body).message).toBe('this server takes at most 2 connections');
    // The two admitted ones still serve.
    a.socket.write(a.call(1, 'research', 'wf-l', 0, stateFor('research')));
    await until(() => a.frames.length === 1);
    expect(a.frames[0]!.type).toBe(FRAME.RESULT);
    expect(b.closed).toBe(false);
    // The parent's client reports it with the code, retryable.
    const client = createSealedActivityClient({ address: { family: 'unix', path } });
    cleanup.push(() => client.close());
    const err = (await client.call({ activity: 'research', workflowId: 'wf-l', seq: 0, state: stateFor('research') }).catch((e: unknown) => e)) as { code: string; retryable: boolean };
    expect([err.code, err.retryable]).toEqual(['ERR_ACTIVITY_OVERLOADED', true]);
  });

  it('holds unfinished frames of all connections within maxBufferedBytes: the frame that would exceed it gets ERR_ACTIVITY_OVERLOADED', async () => {
    const { path, server } = start({ maxMessageBytes: 1024 * 1024, maxBufferedBytes: 2 * 1024 * 1024 });
    const conns = await Promise.all([0, 1, 2].map(() => raw(path)));
    // Each claims a 1 MiB frame and sends 900 KiB of it.
    const part = Buffer.alloc(900 * 1024, 1);
    conns[0]!.socket.write(Buffer.concat([frameHeader(FRAME.CALL, 11, 1024 * 1024 - 9), part]));
    await until(() => server.bufferedBytes >= 900 * 1024);
    conns[1]!.socket.write(Buffer.concat([frameHeader(FRAME.CALL, 12, 1024 * 1024 - 9), part]));
    await until(() => server.bufferedBytes >= 1800 * 1024);
    conns[2]!.socket.write(Buffer.concat([frameHeader(FRAME.CALL, 13, 1024 * 1024 - 9), part]));
    await until(() => conns[2]!.closed);
    expect(conns[2]!.errors()).toEqual(['13:ERR_ACTIVITY_OVERLOADED', `${CONNECTION_ID}:ERR_ACTIVITY_OVERLOADED`]);
    expect(server.bufferedBytes).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect([conns[0]!.closed, conns[1]!.closed]).toEqual([false, false]);
    // Closing a connection gives its bytes back to the budget.
    conns[0]!.socket.destroy();
    await until(() => server.bufferedBytes < 1000 * 1024);
  });

  it('closes a connection whose frame is not complete within frameTimeoutMs (injected timers), with the frame\'s id', async () => {
    const due: Array<{ fn: () => void; ms: number; cleared: boolean }> = [];
    const timers = {
      setTimeout: (fn: () => void, ms: number) => {
        const t = { fn, ms, cleared: false };
        due.push(t);
        return t;
      },
      clearTimeout: (t: unknown) => void ((t as { cleared: boolean }).cleared = true),
    };
    const { path } = start({ frameTimeoutMs: 5000 }, { timers });
    const p = await raw(path);
    const whole = p.call(3, 'research', 'wf-l', 0, stateFor('research'));
    p.socket.write(whole.subarray(0, 5)); // the header is not even complete
    await until(() => due.some((t) => t.ms === 5000 && !t.cleared));
    p.socket.write(whole.subarray(5));
    await until(() => p.frames.length === 1); // completed in time: answered, clock stopped
    expect(due.filter((t) => t.ms === 5000).map((t) => t.cleared)).toEqual([true]);
    p.socket.write(whole.subarray(0, 20)); // the next frame stalls after its header
    await until(() => due.filter((t) => t.ms === 5000 && !t.cleared).length === 1);
    due.find((t) => t.ms === 5000 && !t.cleared)!.fn(); // time is up
    await until(() => p.closed);
    expect(p.errors()).toEqual(['3:ERR_ACTIVITY_FRAME_TIMEOUT', `${CONNECTION_ID}:ERR_ACTIVITY_FRAME_TIMEOUT`]);
  });
});

describe('calls keyed by call, cancellation that counts', () => {
  // A handler that ignores its abort signal: it settles only when the test says so.
  function stubborn() {
    const gates: Array<() => void> = [];
    let running = 0;
    let maxRunning = 0;
    let started = 0;
    return {
      gates,
      get started() {
        return started;
      },
      get maxRunning() {
        return maxRunning;
      },
      handler: {
        from: 'client',
        next: 'done',
        run: async (input: Uint8Array) => {
          started++;
          maxRunning = Math.max(maxRunning, ++running);
          await new Promise<void>((r) => gates.push(r));
          running--;
          return enc(`stubborn result for ${dec(input)}`);
        },
      },
    };
  }

  it('a cancelled handler keeps its slot until it settles: CALL i, CANCEL i ×40 with maxConcurrent 2 runs 2 handlers, not 40', async () => {
    const s = stubborn();
    const { path } = start({ maxConcurrent: 2 }, { handlers: { stubborn: s.handler } });
    const p = await raw(path);
    const frames: Buffer[] = [];
    for (let i = 1; i <= 40; i++) frames.push(p.call(i, 'stubborn', 'wf-l', 0, stateFor('stubborn', 'wf-l', `#${i}`)), frameHeader(FRAME.CANCEL, i, 0));
    p.socket.write(Buffer.concat(frames));
    await until(() => p.frames.length === 40);
    expect(p.errors()).toEqual(Array.from({ length: 40 }, (_, i) => `${i + 1}:ERR_ACTIVITY_CANCELLED`));
    expect([s.started, s.maxRunning]).toEqual([2, 2]);
    // Once they settle the slots are free again, and their late results are not sent.
    s.gates.splice(0).forEach((g) => g());
    p.socket.write(p.call(41, 'research', 'wf-l', 0, stateFor('research')));
    await until(() => p.frames.length === 41);
    expect([p.frames[40]!.id, p.frames[40]!.type]).toEqual([41, FRAME.RESULT]);
  });

  it('CALL 1, CANCEL 1, CALL 1: the reuse is refused while the cancelled run is in flight; every call gets exactly its own answer', async () => {
    const s = stubborn();
    const { path } = start({}, { handlers: { stubborn: s.handler } });
    const p = await raw(path);
    p.socket.write(Buffer.concat([p.call(1, 'stubborn', 'wf-a', 0, stateFor('stubborn', 'wf-a', 'old')), frameHeader(FRAME.CANCEL, 1, 0), p.call(1, 'research', 'wf-b', 0, stateFor('research', 'wf-b', 'new'))]));
    await until(() => p.frames.length === 2);
    expect(p.errors()).toEqual(['1:ERR_ACTIVITY_CANCELLED', '1:ERR_ACTIVITY_DUPLICATE_ID']);
    expect(decodeError(p.frames[1]!.body).message).toBe('request id 1 is still in use on this connection (its cancelled run has not succeeded settling yet)'.replace('succeeded settling', 'settled'));
    // The cancelled run settles: it sends nothing (its answer was the CANCELLED).
    s.gates.splice(0).forEach((g) => g());
    await until(() => s.started === 1);
    // The id is free again: a new CALL 1 gets its own result, bound to its own workflow.
    p.socket.write(p.call(1, 'research', 'wf-b', 0, stateFor('research', 'wf-b', 'new')));
    await until(() => p.frames.length === 3);
    const r = decodeResult(p.frames[2]!.body);
    expect(dec(openState(tsk, r.state, { workflowId: 'wf-b', chainId: CHAIN, activity: 'analysis', seq: 1, producer: 'research' }).plaintext)).toBe('notes on new');
    expect(p.frames.map((f) => f.id)).toEqual([1, 1, 1]);
  });
});
