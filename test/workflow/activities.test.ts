import type { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { ApplicationFailure, CancelledFailure, defaultPayloadConverter } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { TunerHolder } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHandlerError, openState, sealState, type SealedActivityServer } from '../../src/workflow/index.js';
import { createEnclaveSlotSupplier, createSealedActivities, createSealedActivityClient, type SealedActivity } from '../../src/workflow/parent/index.js';
import { CHAIN, dec, enc, newEvents, newKey, serve, tempDir, until } from './helpers.js';

const tsk = newKey();
const tmp = tempDir();
const path = join(tmp.dir, 'enclave.sock');
const events = newEvents();
let server: SealedActivityServer;
const client = createSealedActivityClient({ address: { family: 'unix', path } });
const activities = createSealedActivities({ client, names: ['research', 'analysis', 'slow', 'boom'] });
// Temporal's activity logger warns on every failure; these tests expect failures.
const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };
const env = (workflowId: string) => {
  const e = new MockActivityEnvironment({ workflowExecution: { workflowId, runId: 'run-1' } } as never, { logger: quiet });
  return {
    run: (fn: SealedActivity, state: Uint8Array, seq: number) => e.run(fn as never, state, seq) as Promise<Uint8Array>,
    cancel: () => e.cancel(),
    onHeartbeat: (f: () => void) => (e as unknown as EventEmitter).on('heartbeat', f),
  };
};

beforeAll(() => {
  server = serve(path, tsk, { limits: { heartbeatIntervalMs: 20 } }, events).server;
});
afterAll(async () => {
  await client.close();
  await server.close();
  tmp.cleanup();
});

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

describe('createSealedActivities: Temporal activities on the parent (real @temporalio/activity context)', () => {
  it('forwards sealed state under the workflow id from the activity info, and returns sealed state', async () => {
    const state = sealState(tsk, enc('reefs'), { chainId: CHAIN, workflowId: 'wf-t1', activity: 'research', seq: 0, producer: 'client' });
    const s1 = await env('wf-t1').run(activities.research, state, 0);
    const s2 = await env('wf-t1').run(activities.analysis, s1, 1);
    expect(dec(openState(tsk, s2, { chainId: CHAIN, workflowId: 'wf-t1', activity: 'report', seq: 2, producer: 'analysis' }).plaintext)).toBe('NOTES ON REEFS (wf wf-t1, step 1, from research)');
    expect(activities.research.name).toBe('research');
  });

  it("takes its arguments as Temporal's default converter delivers them: the state stays bytes (binary/plain)", async () => {
    const state = sealState(tsk, enc('reefs'), { chainId: CHAIN, workflowId: 'wf-conv', activity: 'research', seq: 0, producer: 'client' });
    // What a workflow's call becomes on a real worker: each argument is its own payload.
    const payloads = [state, 0].map((arg) => defaultPayloadConverter.toPayload(arg));
    expect(new TextDecoder().decode(payloads[0]!.metadata!.encoding!)).toBe('binary/plain');
    const [delivered, seq] = payloads.map((p) => defaultPayloadConverter.fromPayload(p)) as [Uint8Array, number];
    const out = await env('wf-conv').run(activities.research, delivered, seq);
    expect(dec(openState(tsk, out, { chainId: CHAIN, workflowId: 'wf-conv', activity: 'analysis', seq: 1, producer: 'research' }).plaintext)).toBe('notes on reefs');
    // An object argument would not survive: inside JSON the bytes arrive as {"0": …} (why the signature is positional).
    const asObject = defaultPayloadConverter.fromPayload(defaultPayloadConverter.toPayload({ seq: 0, state })) as { state: unknown };
    expect(asObject.state).not.toBeInstanceOf(Uint8Array);
  });

  it('a state run under another workflow (replay) is a non-retryable failure typed ERR_SEALED_WRONG_WORKFLOW', async () => {
    const state = sealState(tsk, enc('x'), { chainId: CHAIN, workflowId: 'wf-t2', activity: 'research', seq: 0, producer: 'client' });
    const f = await failure(env('wf-OTHER').run(activities.research, state, 0));
    expect([f.type, f.nonRetryable]).toEqual(['ERR_SEALED_WRONG_WORKFLOW', true]);
  });

  it('a handler failure is non-retryable ERR_ACTIVITY_HANDLER_FAILED; its details are sealed bytes an enclave can open', async () => {
    const state = sealState(tsk, enc('account 9921'), { chainId: CHAIN, workflowId: 'wf-t3', activity: 'boom', seq: 0, producer: 'client' });
    const f = await failure(env('wf-t3').run(activities.boom, state, 0));
    expect([f.type, f.nonRetryable]).toEqual(['ERR_ACTIVITY_HANDLER_FAILED', true]);
    expect(f.message).not.toContain('9921');
    const [sealed, handlerCode] = f.details as [Uint8Array, string];
    expect(handlerCode).toBe('E_BAD_RECORD');
    expect(Buffer.from(sealed).includes('9921')).toBe(false);
    expect(openHandlerError(tsk, sealed, { chainId: CHAIN, workflowId: 'wf-t3', activity: 'boom', seq: 0 }).message).toContain('account 9921');
  });

  it('an unreachable enclave is a retryable ERR_ACTIVITY_UNAVAILABLE (at once with waitForEnclaveMs: 0)', async () => {
    const nowhere = createSealedActivities({ address: { family: 'unix', path: join(tmp.dir, 'absent.sock') }, names: ['research'], waitForEnclaveMs: 0 });
    const f = await failure(env('wf-t4').run(nowhere.research, new Uint8Array(100), 0));
    expect([f.type, f.nonRetryable]).toEqual(['ERR_ACTIVITY_UNAVAILABLE', false]);
    expect(f.message).toContain('cannot reach the enclave: ERR_VSOCK_CONNECT');
  });

  it('waits for an unreachable enclave, heartbeating, before it fails the attempt', async () => {
    const nowhere = createSealedActivities({ address: { family: 'unix', path: join(tmp.dir, 'absent.sock') }, names: ['research'], waitForEnclaveMs: 300, enclaveRetry: { retryIntervalMs: 20 } });
    const e = env('wf-t4b');
    let beats = 0;
    e.onHeartbeat(() => beats++);
    const f = await failure(e.run(nowhere.research, new Uint8Array(100), 0));
    expect([f.type, f.nonRetryable]).toEqual(['ERR_ACTIVITY_UNAVAILABLE', false]);
    expect(beats).toBeGreaterThan(1);
  });

  it('an enclave that comes back while the activity waits serves the step: no attempt is spent on a restart', async () => {
    const restartDir = tempDir();
    const later = join(restartDir.dir, 'restarting.sock');
    const acts = createSealedActivities({ address: { family: 'unix', path: later }, names: ['research'], enclaveRetry: { retryIntervalMs: 20, maxRetryIntervalMs: 50 } });
    const e = env('wf-t4c');
    let beats = 0;
    e.onHeartbeat(() => beats++);
    const state = sealState(tsk, enc('tides'), { chainId: CHAIN, workflowId: 'wf-t4c', activity: 'research', seq: 0, producer: 'client' });
    const result = e.run(acts.research, state, 0);
    await until(() => beats >= 1); // it found the enclave down and is waiting
    const back = serve(later, tsk, {}, newEvents()).server;
    const out = await result;
    expect(dec(openState(tsk, out, { chainId: CHAIN, workflowId: 'wf-t4c', activity: 'analysis', seq: 1, producer: 'research' }).plaintext)).toBe('notes on tides');
    await back.close();
    restartDir.cleanup();
  });

  it('cancellation ends the wait for the enclave with CancelledFailure', async () => {
    const nowhere = createSealedActivities({ address: { family: 'unix', path: join(tmp.dir, 'absent.sock') }, names: ['research'], enclaveRetry: { retryIntervalMs: 20 } });
    const e = env('wf-t4d');
    let beats = 0;
    e.onHeartbeat(() => beats++);
    const running = e.run(nowhere.research, new Uint8Array(10), 0).catch((err: unknown) => err);
    await until(() => beats >= 1);
    e.cancel();
    expect(await running).toBeInstanceOf(CancelledFailure);
  });

  it('timeoutMs gives a retryable ERR_ACTIVITY_TIMEOUT', async () => {
    const quick = createSealedActivities({ client, names: ['slow'], timeoutMs: 50 });
    const state = sealState(tsk, enc('x'), { chainId: CHAIN, workflowId: 'wf-t5', activity: 'slow', seq: 0, producer: 'client' });
    const f = await failure(env('wf-t5').run(quick.slow, state, 0));
    expect([f.type, f.nonRetryable]).toEqual(['ERR_ACTIVITY_TIMEOUT', false]);
  });

  it('heartbeats while the enclave works, and cancellation reaches the enclave handler', async () => {
    const e = env('wf-t6');
    let beats = 0;
    e.onHeartbeat(() => beats++);
    const state = sealState(tsk, enc('x'), { chainId: CHAIN, workflowId: 'wf-t6', activity: 'slow', seq: 0, producer: 'client' });
    const before = events.signals.length;
    const running = e.run(activities.slow, state, 0).then(
      () => 'completed',
      (err: unknown) => err,
    );
    await until(() => beats >= 2);
    e.cancel();
    const err = await running;
    expect(err).toBeInstanceOf(CancelledFailure);
    await until(() => events.signals[before]?.aborted === true);
  });

  it('rejects a malformed activity input without calling the enclave', async () => {
    const started = events.started;
    const f = await failure(env('wf-t7').run(activities.research, new Uint8Array(1), -1));
    expect([f.type, f.nonRetryable]).toEqual(['TypeError', true]);
    expect(events.started).toBe(started);
    expect(() => createSealedActivities({ names: [] as string[], address: { family: 'unix', path } })).toThrow(TypeError);
    expect(() => createSealedActivities({ names: ['a'] })).toThrow(TypeError);
    expect(() => createSealedActivities({ names: ['a'], client, waitForEnclaveMs: -1 })).toThrow('waitForEnclaveMs must be a non-negative integer');
    expect(() => createSealedActivities({ names: ['a'], client, enclaveRetry: { retryIntervalMs: 0 } })).toThrow('retryIntervalMs must be a positive integer');
  });
});

describe('createEnclaveSlotSupplier: the worker takes activity tasks only while its enclave answers', () => {
  it('holds every reservation while the enclave is down, grants them when it is back, and reports both', async () => {
    const gateDir = tempDir();
    const p = join(gateDir.dir, 'gate.sock');
    const gateClient = createSealedActivityClient({ address: { family: 'unix', path: p } });
    const changes: string[] = [];
    const supplier = createEnclaveSlotSupplier({ client: gateClient, maxSlots: 2, retryIntervalMs: 10, maxRetryIntervalMs: 20, onAvailabilityChange: (up, why) => changes.push(up ? 'up' : `down: ${(why as { code?: string }).code}`) });
    expect(supplier.type).toBe('custom');
    const granted: number[] = [];
    const abort = new AbortController();
    const reservations = [1, 2, 3].map((n) => supplier.reserveSlot({}, abort.signal).then(() => granted.push(n)));
    await until(() => changes.length > 0);
    expect(changes).toEqual(['down: ERR_ACTIVITY_UNAVAILABLE']);
    expect(supplier.tryReserveSlot({})).toBeNull(); // eager tasks too
    expect([granted, supplier.inUse]).toEqual([[], 0]);
    const enclave = serve(p, tsk, {}, newEvents()).server;
    await until(() => granted.length === 2);
    expect(changes).toEqual(['down: ERR_ACTIVITY_UNAVAILABLE', 'up']);
    expect(supplier.inUse).toBe(2); // maxSlots: the third waits for a release
    supplier.releaseSlot({});
    await Promise.all(reservations);
    expect(granted.sort()).toEqual([1, 2, 3]);
    // The enclave stops: the connection closes, and the next reservation waits again.
    await enclave.close();
    await until(() => !gateClient.connected);
    supplier.releaseSlot({});
    supplier.releaseSlot({});
    expect(supplier.inUse).toBe(0);
    const waiting = supplier.reserveSlot({}, abort.signal).catch((err: unknown) => err);
    await until(() => changes.length === 3);
    expect(changes[2]).toBe('down: ERR_ACTIVITY_UNAVAILABLE');
    abort.abort();
    expect((await waiting as Error).name).toBe('AbortError');
    await gateClient.close();
    gateDir.cleanup();
  });

  it("is the worker tuner's activity slot supplier as @temporalio/worker types it", () => {
    const tuner: TunerHolder = {
      workflowTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
      activityTaskSlotSupplier: createEnclaveSlotSupplier({ client }),
      localActivityTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
      nexusTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
    };
    expect(tuner.activityTaskSlotSupplier).toMatchObject({ type: 'custom' });
  });

  it('refuses bad options with TypeError', () => {
    expect(() => createEnclaveSlotSupplier({} as never)).toThrow('client must be a SealedActivityClient');
    expect(() => createEnclaveSlotSupplier({ client, maxSlots: 0 })).toThrow('maxSlots must be a positive integer');
    expect(() => createEnclaveSlotSupplier({ client, retryIntervalMs: 50, maxRetryIntervalMs: 10 })).toThrow('maxRetryIntervalMs must be an integer not below retryIntervalMs');
  });
});
