import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAttestationDocument } from '../../src/attestation/index.js';
import { createNsmClient } from '../../src/nsm/index.js';
import { createSimulatedEnclave, createSimulatedNsm } from '../../src/testing/index.js';
import { connectSocket } from '../../src/vsock/index.js';
import { openHandlerError, openState, sealState, serveSealedActivities, type SealedActivityServer } from '../../src/workflow/index.js';
import { createSealedActivityClient, SealedActivityError } from '../../src/workflow/parent/client.js';
import { decodeError, decodeResult, encodeCallPrefix, FRAME, frameHeader, FrameReader } from '../../src/workflow/protocol.js';
import { CHAIN, codeOf, dec, enc, newEvents, newKey, serve, sleep, tempDir, until } from './helpers.js';

const tsk = newKey();
const tmp = tempDir();
const path = join(tmp.dir, 'enclave.sock');
let server: SealedActivityServer;
const events = newEvents();
const address = { family: 'unix', path } as const;
const input = (workflowId: string, text: string, activity = 'research', seq = 0, producer = 'client') => sealState(tsk, enc(text), { chainId: CHAIN, workflowId, activity, seq, producer });

beforeAll(() => {
  server = serve(path, tsk, { limits: { maxConcurrent: 4, heartbeatIntervalMs: 25 } }, events).server;
});
afterAll(async () => {
  await server.close();
  tmp.cleanup();
});

/** A raw parent speaking the protocol by hand: for hostile and slow hosts. */
async function rawConnection(p = path) {
  const socket = await connectSocket({ family: 'unix', path: p });
  const reader = new FrameReader(64 * 1024 * 1024);
  const frames: Array<{ type: number; id: number; body: Buffer }> = [];
  const waiters: Array<() => void> = [];
  socket.on('data', (c: Buffer) => {
    for (const f of reader.push(c)) if (f.body) frames.push({ type: f.type, id: f.id, body: f.body });
    waiters.splice(0).forEach((w) => w());
  });
  const answer = async (id: number, types = [FRAME.RESULT, FRAME.ERROR] as number[]) => {
    for (;;) {
      const i = frames.findIndex((f) => f.id === id && types.includes(f.type));
      if (i >= 0) return frames.splice(i, 1)[0]!;
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  const call = (id: number, activity: string, workflowId: string, seq: number, state: Uint8Array) => Buffer.concat([encodeCallPrefix(id, { activity, workflowId, seq, attest: false, nonce: new Uint8Array(0) }, state.length), state]);
  return { socket, frames, answer, call, errorCode: async (id: number) => decodeError((await answer(id)).body).code };
}

describe('sealed activity relay (AF_UNIX stand-in for vsock, through the native relay)', () => {
  it('runs a chain research → analysis with each state bound to its next step', async () => {
    const client = createSealedActivityClient({ address });
    const s1 = (await client.call({ activity: 'research', workflowId: 'wf-1', seq: 0, state: input('wf-1', 'tides') })).state;
    const s2 = (await client.call({ activity: 'analysis', workflowId: 'wf-1', seq: 1, state: s1 })).state;
    const { plaintext, binding } = openState(tsk, s2, { chainId: CHAIN, workflowId: 'wf-1', activity: 'report', seq: 2, producer: 'analysis' });
    expect(dec(plaintext)).toBe('NOTES ON TIDES (wf wf-1, step 1, from research)');
    expect(binding).toEqual({ chainId: CHAIN, workflowId: 'wf-1', activity: 'report', seq: 2, producer: 'analysis' });
    await client.close();
  });

  it('zeroes the input and output plaintexts after each step', async () => {
    const client = createSealedActivityClient({ address });
    const s1 = (await client.call({ activity: 'research', workflowId: 'wf-z', seq: 0, state: input('wf-z', 'secret') })).state;
    const before = events.inputs.length;
    await client.call({ activity: 'analysis', workflowId: 'wf-z', seq: 1, state: s1 });
    const seen = [events.inputs[before]!, events.outputs[before]!];
    expect(seen.map((b) => b.length > 0 && b.every((x) => x === 0))).toEqual([true, true]);
    await client.close();
  });

  it('multiplexes 60 concurrent calls on one connection, answers out of order, at most maxConcurrent running', async () => {
    const client = createSealedActivityClient({ address });
    events.maxRunning = 0;
    const n = 60;
    const states = Array.from({ length: n }, (_, i) => input(`wf-c${i}`, `q${i} delay=${(i * 7) % 30}`, 'analysis', 1, 'research'));
    const results = await Promise.all(states.map((state, i) => client.call({ activity: 'analysis', workflowId: `wf-c${i}`, seq: 1, state })));
    results.forEach((r, i) => expect(dec(openState(tsk, r.state, { chainId: CHAIN, workflowId: `wf-c${i}`, activity: 'report', seq: 2, producer: 'analysis' }).plaintext)).toBe(`Q${i} DELAY=${(i * 7) % 30} (wf wf-c${i}, step 1, from research)`));
    expect(events.maxRunning).toBe(4);
    await client.close();
  });

  it('carries a 16 MiB state both ways when the limit allows, one copy per frame', async () => {
    const big = tempDir();
    const s = serveSealedActivities({ listen: { family: 'unix', path: join(big.dir, 'e.sock') }, key: tsk, handlers: { echo: { from: 'client', next: 'echo', run: (b) => Uint8Array.from(b) } }, limits: { maxMessageBytes: 20 * 1024 * 1024 } });
    const client = createSealedActivityClient({ address: { family: 'unix', path: join(big.dir, 'e.sock') }, maxMessageBytes: 20 * 1024 * 1024 });
    const plaintext = randomBytes(16 * 1024 * 1024);
    const r = await client.call({ activity: 'echo', workflowId: 'wf-big', seq: 0, state: sealState(tsk, plaintext, { chainId: CHAIN, workflowId: 'wf-big', activity: 'echo', seq: 0, producer: 'client' }) });
    const out = openState(tsk, r.state, { chainId: CHAIN, workflowId: 'wf-big', activity: 'echo', seq: 1, producer: 'echo' }).plaintext;
    expect(createHash('sha256').update(out).digest('hex')).toBe(createHash('sha256').update(plaintext).digest('hex'));
    await client.close();
    await s.close();
    big.cleanup();
  });

  it('refuses a message over the default 8 MiB limit with ERR_ACTIVITY_TOO_LARGE and keeps serving the same connection', async () => {
    const client = createSealedActivityClient({ address });
    const huge = input('wf-h', 'x'.repeat(9 * 1024 * 1024));
    expect(await codeOf(client.call({ activity: 'research', workflowId: 'wf-h', seq: 0, state: huge }))).toBe('ERR_ACTIVITY_TOO_LARGE');
    const r = await client.call({ activity: 'research', workflowId: 'wf-h', seq: 0, state: input('wf-h', 'small') });
    expect(dec(openState(tsk, r.state, { chainId: CHAIN, workflowId: 'wf-h', activity: 'analysis', seq: 1, producer: 'research' }).plaintext)).toBe('notes on small');
    await client.close();
  });

  it('holds backpressure against a slow reader: stops taking calls while answers are unread', async () => {
    const slowDir = tempDir();
    let started = 0;
    const s = serveSealedActivities({
      listen: { family: 'unix', path: join(slowDir.dir, 's.sock') },
      key: tsk,
      handlers: { fat: { from: 'client', next: 'next', run: () => (started++, randomBytes(1024 * 1024)) } },
      limits: { maxConcurrent: 2 },
    });
    const raw = await rawConnection(join(slowDir.dir, 's.sock'));
    raw.socket.pause(); // the host does not read
    const state = sealState(tsk, enc('go'), { chainId: CHAIN, workflowId: 'wf-s', activity: 'fat', seq: 0, producer: 'client' });
    const total = 64;
    for (let i = 1; i <= total; i++) raw.socket.write(raw.call(i, 'fat', 'wf-s', 0, state));
    await sleep(400);
    const stalled = started;
    await sleep(300);
    expect(started).toBe(stalled); // no progress while nobody reads
    expect(stalled).toBeLessThan(total / 2); // ~a few MiB in socket buffers, not 64 MiB of answers in memory
    raw.socket.resume();
    for (let i = 1; i <= total; i++) expect((await raw.answer(i)).type).toBe(FRAME.RESULT);
    expect(started).toBe(total);
    raw.socket.destroy();
    await s.close();
    slowDir.cleanup();
  });

  it('survives an enclave restart mid-step: the call fails retryable ERR_ACTIVITY_UNAVAILABLE, the next one reconnects', async () => {
    const rDir = tempDir();
    const p = join(rDir.dir, 'r.sock');
    const first = serve(p, tsk);
    const client = createSealedActivityClient({ address: { family: 'unix', path: p } });
    const state = input('wf-r', 'long job');
    const inFlight = client.call({ activity: 'slow', workflowId: 'wf-r', seq: 0, state: sealState(tsk, enc('x'), { chainId: CHAIN, workflowId: 'wf-r', activity: 'slow', seq: 0, producer: 'client' }) }).catch((e: unknown) => e);
    await sleep(100);
    await first.server.close(); // the enclave goes away mid-step
    const err = (await inFlight) as SealedActivityError;
    expect([err.code, err.retryable]).toEqual(['ERR_ACTIVITY_UNAVAILABLE', true]);
    expect(first.events.signals[0]!.aborted).toBe(true); // the dropped step was aborted in the enclave
    expect(await codeOf(client.call({ activity: 'research', workflowId: 'wf-r', seq: 0, state }))).toBe('ERR_ACTIVITY_UNAVAILABLE'); // still down
    rmSync(p, { force: true }); // a restarted enclave process binds afresh
    const second = serve(p, tsk);
    const r = await client.call({ activity: 'research', workflowId: 'wf-r', seq: 0, state }); // Temporal's retry
    expect(dec(openState(tsk, r.state, { chainId: CHAIN, workflowId: 'wf-r', activity: 'analysis', seq: 1, producer: 'research' }).plaintext)).toBe('notes on long job');
    await client.close();
    await second.server.close();
    rDir.cleanup();
  });

  it('sends heartbeats while a step runs, and a cancel frame reaches the handler', async () => {
    const client = createSealedActivityClient({ address });
    let beats = 0;
    const abort = new AbortController();
    const state = sealState(tsk, enc('x'), { chainId: CHAIN, workflowId: 'wf-k', activity: 'slow', seq: 0, producer: 'client' });
    const before = events.signals.length;
    const p = client.call({ activity: 'slow', workflowId: 'wf-k', seq: 0, state }, { signal: abort.signal, onHeartbeat: () => beats++ });
    await until(() => beats >= 2);
    abort.abort();
    expect(await codeOf(p)).toBe('ERR_ACTIVITY_CANCELLED');
    await until(() => events.signals[before]?.aborted === true);
    expect(client.pending).toBe(0);
    // timeoutMs: the same, coded ERR_ACTIVITY_TIMEOUT and retryable
    const t = (await client.call({ activity: 'slow', workflowId: 'wf-k', seq: 0, state }, { timeoutMs: 60 }).catch((e: unknown) => e)) as SealedActivityError;
    expect([t.code, t.retryable]).toEqual(['ERR_ACTIVITY_TIMEOUT', true]);
    await until(() => events.signals[before + 1]?.aborted === true);
    await client.close();
  });

  it('returns a handler failure as ERR_ACTIVITY_HANDLER_FAILED with the details sealed: no plaintext in clear', async () => {
    const client = createSealedActivityClient({ address });
    const state = sealState(tsk, enc('patient 4711 has condition Z'), { chainId: CHAIN, workflowId: 'wf-e', activity: 'boom', seq: 0, producer: 'client' });
    const err = (await client.call({ activity: 'boom', workflowId: 'wf-e', seq: 0, state }).catch((e: unknown) => e)) as SealedActivityError;
    expect([err.code, err.retryable, err.handlerCode]).toEqual(['ERR_ACTIVITY_HANDLER_FAILED', false, 'E_BAD_RECORD']);
    expect(err.message).not.toContain('4711');
    expect(Buffer.from(err.details!).includes('4711')).toBe(false);
    expect(Buffer.from(err.details!).includes('cannot parse')).toBe(false);
    const details = openHandlerError(tsk, err.details!, { chainId: CHAIN, workflowId: 'wf-e', activity: 'boom', seq: 0 });
    expect(details.message).toBe('cannot parse patient record: patient 4711 has condition Z');
    expect(details.code).toBe('E_BAD_RECORD');
    await client.close();
  });

  it('attaches an attestation document bound to the nonce and the sealed result when asked', async () => {
    const enclave = createSimulatedEnclave();
    const aDir = tempDir();
    const s = serve(join(aDir.dir, 'a.sock'), tsk, { nsm: createNsmClient(createSimulatedNsm(enclave)) });
    const client = createSealedActivityClient({ address: { family: 'unix', path: join(aDir.dir, 'a.sock') } });
    const nonce = randomBytes(32);
    const r = await client.call({ activity: 'research', workflowId: 'wf-a', seq: 0, state: input('wf-a', 'q'), attestationNonce: nonce });
    const doc = await verifyAttestationDocument(r.attestation!, { trustAnchors: [enclave.trustAnchor], nonce, userData: createHash('sha256').update(r.state).digest(), expectedPcrs: { 0: enclave.imageSha384 } });
    expect(doc.verified).toBe(true);
    // without an NSM the server says so, with its own code
    expect(await codeOf(createSealedActivityClient({ address }).call({ activity: 'research', workflowId: 'wf-a', seq: 0, state: input('wf-a', 'q'), attestationNonce: nonce }))).toBe('ERR_ACTIVITY_ATTESTATION');
    await client.close();
    await s.server.close();
    aDir.cleanup();
  });
});

describe('a hostile host on the relay', () => {
  it('replays, swaps and reorders states: each refused with its code, on one connection that keeps serving', async () => {
    const client = createSealedActivityClient({ address });
    const a1 = (await client.call({ activity: 'research', workflowId: 'wf-A', seq: 0, state: input('wf-A', 'alpha') })).state;
    const b1 = (await client.call({ activity: 'research', workflowId: 'wf-B', seq: 0, state: input('wf-B', 'beta') })).state;
    const a2 = (await client.call({ activity: 'analysis', workflowId: 'wf-A', seq: 1, state: a1 })).state;
    const call = (activity: string, workflowId: string, seq: number, state: Uint8Array) => codeOf(client.call({ activity, workflowId, seq, state }));
    expect(await call('analysis', 'wf-A', 1, b1)).toBe('ERR_SEALED_WRONG_WORKFLOW'); // B's state replayed into A
    expect(await call('analysis', 'wf-B', 1, a1)).toBe('ERR_SEALED_WRONG_WORKFLOW');
    expect(await call('analysis', 'wf-A', 2, a1)).toBe('ERR_SEALED_WRONG_STEP'); // claimed as a later step
    expect(await call('research', 'wf-A', 0, a1)).toBe('ERR_SEALED_WRONG_AGENT'); // analysis' input handed to research
    expect(await call('analysis', 'wf-A', 2, a2)).toBe('ERR_SEALED_WRONG_AGENT'); // report's input handed to analysis
    expect(await call('analysis', 'wf-A', 1, input('wf-A', 'raw', 'analysis', 1, 'client'))).toBe('ERR_SEALED_WRONG_PRODUCER'); // research skipped
    expect(await call('analysis', 'wf-A', 1, a1.subarray(0, a1.length - 5))).toBe('ERR_SEALED_DECRYPT_FAILED'); // truncated state
    expect(await call('analysis', 'wf-A', 1, a1.subarray(0, 20))).toBe('ERR_SEALED_MALFORMED');
    expect(await call('analysis', 'wf-A', 1, sealState(newKey(), enc('x'), { chainId: CHAIN, workflowId: 'wf-A', activity: 'analysis', seq: 1, producer: 'research' }))).toBe('ERR_SEALED_WRONG_KEY');
    expect(await call('nope', 'wf-A', 1, a1)).toBe('ERR_ACTIVITY_UNKNOWN_HANDLER');
    expect(await call('__proto__', 'wf-A', 1, a1)).toBe('ERR_ACTIVITY_UNKNOWN_HANDLER');
    // and the genuine step still goes through afterwards
    const r = await client.call({ activity: 'analysis', workflowId: 'wf-A', seq: 1, state: a1 });
    expect(dec(openState(tsk, r.state, { chainId: CHAIN, workflowId: 'wf-A', activity: 'report', seq: 2, producer: 'analysis' }).plaintext)).toContain('ALPHA');
    await client.close();
  });

  it('sends bad and truncated frames: coded errors, and the server keeps serving', async () => {
    const raw = await rawConnection();
    const good = input('wf-f', 'fine');
    raw.socket.write(Buffer.concat([frameHeader(0x7f, 1, 0)])); // unknown type
    expect(await raw.errorCode(1)).toBe('ERR_ACTIVITY_FRAME_MALFORMED');
    raw.socket.write(Buffer.concat([frameHeader(FRAME.CALL, 2, 3), Buffer.from([0, 0xff, 0xff])])); // fields cut short
    expect(await raw.errorCode(2)).toBe('ERR_ACTIVITY_FRAME_MALFORMED');
    const badUtf8 = Buffer.from([0, 0, 2, 0xc3, 0x28, 0, 1, 0x41, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    raw.socket.write(Buffer.concat([frameHeader(FRAME.CALL, 3, badUtf8.length), badUtf8]));
    expect(await raw.errorCode(3)).toBe('ERR_ACTIVITY_FRAME_MALFORMED');
    const flags = raw.call(4, 'research', 'wf-f', 0, good);
    flags[9] = 0x80; // unknown flag bit
    raw.socket.write(flags);
    expect(await raw.errorCode(4)).toBe('ERR_ACTIVITY_FRAME_MALFORMED');
    raw.socket.write(Buffer.from([0, 0, 0, 2, 0xaa, 0xbb])); // a length too short to hold type and id
    raw.socket.write(raw.call(5, 'research', 'wf-f', 0, good));
    expect((await raw.answer(5)).type).toBe(FRAME.RESULT);
    // a duplicate request id while the first is in flight
    const slow = sealState(tsk, enc('x'), { chainId: CHAIN, workflowId: 'wf-f', activity: 'slow', seq: 0, producer: 'client' });
    raw.socket.write(raw.call(6, 'slow', 'wf-f', 0, slow));
    raw.socket.write(raw.call(6, 'research', 'wf-f', 0, good));
    expect(await raw.errorCode(6)).toBe('ERR_ACTIVITY_DUPLICATE_ID');
    expect((await raw.answer(6)).type).toBe(FRAME.RESULT);
    // half a frame, then the host hangs up: the server drops it and serves the next connection
    const whole = raw.call(7, 'research', 'wf-f', 0, good);
    raw.socket.end(whole.subarray(0, whole.length - 10));
    await sleep(50);
    const next = await rawConnection();
    next.socket.write(next.call(1, 'research', 'wf-f', 0, good));
    const answer = decodeResult((await next.answer(1)).body);
    expect(dec(openState(tsk, answer.state, { chainId: CHAIN, workflowId: 'wf-f', activity: 'analysis', seq: 1, producer: 'research' }).plaintext)).toBe('notes on fine');
    next.socket.destroy();
  });

  it('swaps two answers in flight: each opens only as the step it was sealed for', async () => {
    const client = createSealedActivityClient({ address });
    const [x, y] = await Promise.all(['wf-X', 'wf-Y'].map((w) => client.call({ activity: 'research', workflowId: w, seq: 0, state: input(w, w) })));
    // A host that swapped the two RESULT frames hands wf-X the state of wf-Y:
    expect(await codeOf(client.call({ activity: 'analysis', workflowId: 'wf-X', seq: 1, state: y!.state }))).toBe('ERR_SEALED_WRONG_WORKFLOW');
    expect(await codeOf(client.call({ activity: 'analysis', workflowId: 'wf-X', seq: 1, state: x!.state }))).toBe('no error');
    await client.close();
  });
});
