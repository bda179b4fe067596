import type { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { ApplicationFailure, CancelledFailure, defaultPayloadConverter } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openHandlerError, openState, sealState, type SealedActivityServer } from '../../src/workflow/index.js';
import { createSealedActivities, createSealedActivityClient, type SealedActivity } from '../../src/workflow/parent/index.js';
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
  const e = new MockActivityEnvironment({ workflowExecution: { chainId: CHAIN, workflowId, runId: 'run-1' } } as never, { logger: quiet });
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

  it('an unreachable enclave is a retryable ERR_ACTIVITY_UNAVAILABLE', async () => {
    const nowhere = createSealedActivities({ address: { family: 'unix', path: join(tmp.dir, 'absent.sock') }, names: ['research'] });
    const f = await failure(env('wf-t4').run(nowhere.research, new Uint8Array(100), 0));
    expect([f.type, f.nonRetryable]).toEqual(['ERR_ACTIVITY_UNAVAILABLE', false]);
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
  });
});
