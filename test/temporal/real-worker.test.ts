import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker, type LogEntry } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The built package, as users import it: the failure converter is a module path that the client
// require()s and the worker bundles, so it must be the compiled .js.
import { createTskDataConverter, createTskKeyRing } from 'nitro-enclave-sdk/temporal';
import { connectSocket, forwardTcpToVsock, type TcpToVsockForwarder } from '../../src/vsock/index.js';
import { startTemporalStandIn, type TemporalStandIn } from '../../src/testing/temporal/index.js';
import { realServerConfigured, realServerSkipNote, serverHolds, startTemporal, type TemporalUnderTest } from '../workflow-e2e/helpers/temporal.js';
import { randomBytes } from 'node:crypto';
// Keys from the built package too: the codec takes only TrustedSessionKeys of its own copy (it seals
// in the payload domain through the key's private state).
import { TrustedSessionKey } from 'nitro-enclave-sdk/kms';

const here = dirname(fileURLToPath(import.meta.url));
const workflowsPath = join(here, 'workflows', 'confidential.ts');
const PATIENT = 'wf-input-7f3a Jane Roe';
const MEMO = 'memo-secret-31c8';
const FAILURE = 'failure-msg-d90e';
const STACK_MARKER = 'explodeWithStackMarker'; // the throwing function's name, found only in the stack trace
const markers = [PATIENT, 'act-input-9c1e', 'act-result-5b2d', 'wf-result-2a7b', MEMO];

const makeKey = () => new TrustedSessionKey(randomBytes(32), { keyArn: 'arn:aws:kms:us-east-1:111122223333:key/test', pcr0: '00'.repeat(48), moduleId: 'i-test-enc', obtainedAt: new Date(0) });
const keyA = makeKey();
const keyB = makeKey();

function explodeWithStackMarker(secret: string): never {
  throw new Error(`${FAILURE}: ${secret}`);
}
const activities = {
  diagnose: async (record: { patient: string }) => ({ verdict: `${record.patient} act-result-5b2d` }),
  explode: async (secret: string) => explodeWithStackMarker(secret),
};

let codecBundle: { code: string };
let plainBundle: { code: string };
const codecConverter = createTskDataConverter({ keys: keyA });

// What the worker logs (an operator's first stop); expected failures are logged at ERROR.
const logs: LogEntry[] = [];
beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('ERROR', (entry) => logs.push(entry)) });
  const logger = new DefaultLogger('WARN');
  codecBundle = await bundleWorkflowCode({ workflowsPath, failureConverterPath: codecConverter.failureConverterPath, logger });
  plainBundle = await bundleWorkflowCode({ workflowsPath, logger });
}, 120_000);

interface Run {
  env: TemporalUnderTest;
  ids: { ok: string; failed: string };
  result: string;
  failure: unknown;
}

/** Runs both workflows with a worker and client sharing `dataConverter` (none for the control run). */
async function runWorkflows(env: TemporalUnderTest, dataConverter: DataConverter | undefined, tag: string, nativeConnection = env.nativeConnection): Promise<Run> {
  const taskQueue = `codec-${tag}-${Date.now()}`;
  const worker = await Worker.create({
    connection: nativeConnection,
    namespace: env.namespace,
    taskQueue,
    workflowBundle: dataConverter ? codecBundle : plainBundle,
    activities,
    maxCachedWorkflows: 0,
    ...(dataConverter ? { dataConverter } : {}),
  });
  const client = new Client({ connection: env.client.connection, namespace: env.namespace, ...(dataConverter ? { dataConverter } : {}) });
  const ids = { ok: `diagnosis-${tag}-${Date.now()}`, failed: `failing-${tag}-${Date.now()}` };
  return worker.runUntil(async () => {
    const result = await client.workflow.execute('diagnosis', { taskQueue, workflowId: ids.ok, args: [{ patient: PATIENT }], memo: { note: MEMO } });
    const failure = await client.workflow.execute('failing', { taskQueue, workflowId: ids.failed, args: ['the secret input'] }).catch((e: unknown) => e);
    return { env, ids, result, failure };
  });
}

async function historyOf(env: TemporalUnderTest, workflowId: string) {
  return env.client.workflow.getHandle(workflowId).fetchHistory();
}

const kinds: Array<'stand-in' | 'real'> = ['stand-in', ...(realServerConfigured ? (['real'] as const) : [])];
if (!realServerConfigured) console.log(realServerSkipNote);

describe.each(kinds)('the TSK codec with the real client and Rust-core worker (%s server)', (kind) => {
  let env: TemporalUnderTest;
  let controlEnv: TemporalUnderTest;
  let sealed: Run;
  let plain: Run;
  let forwarder: TcpToVsockForwarder | undefined;
  let forwardedConnection: NativeConnection | undefined;

  beforeAll(async () => {
    env = await startTemporal(kind);
    if (env.standIn) {
      // The worker reaches the server as it would from an enclave: host:port on loopback, forwarded
      // through the native relay (vsock in production) to the server.
      const [host, port] = env.standIn.address.split(':') as [string, string];
      forwarder = await forwardTcpToVsock({ listen: { port: 0 }, target: { cid: 3, port: 7233 }, connect: () => connectSocket({ family: 'inet', host, port: Number(port) }, { allowHalfOpen: true }) });
      forwardedConnection = await NativeConnection.connect({ address: `127.0.0.1:${forwarder.port}` });
    }
    sealed = await runWorkflows(env, codecConverter, `sealed-${kind}`, forwardedConnection ?? env.nativeConnection);
    // The control run gets its own server, so that finding its plaintext says nothing about the sealed run.
    controlEnv = await startTemporal(kind);
    plain = await runWorkflows(controlEnv, undefined, `plain-${kind}`);
  }, 120_000);

  afterAll(async () => {
    await forwardedConnection?.close();
    await forwarder?.close();
    await env?.close();
    await controlEnv?.close();
  });

  it('the client and worker see plaintext: result and failure message decode', () => {
    expect(sealed.result).toBe(`${PATIENT} act-input-9c1e act-result-5b2d wf-result-2a7b`);
    expect(sealed.failure).toBeInstanceOf(WorkflowFailedError);
    expect(((sealed.failure as WorkflowFailedError).cause?.cause as Error).message).toBe(`${FAILURE}: the secret input`);
    expect(((sealed.failure as WorkflowFailedError).cause?.cause as Error).stack).toContain(STACK_MARKER);
  });

  it('the server holds only ciphertext: workflow and activity input and result, memo, failure message and stack', async () => {
    for (const m of [...markers, FAILURE, STACK_MARKER, 'the secret input']) {
      expect(await serverHolds(env, sealed.ids.ok, m), m).toBe(false);
      expect(await serverHolds(env, sealed.ids.failed, m), m).toBe(false);
    }
    // What it does hold: encrypted payloads naming the key, and "Encoded failure" in place of the message.
    const history = await historyOf(env, sealed.ids.ok);
    const started = history.events![0]!.workflowExecutionStartedEventAttributes!;
    expect(Buffer.from(started.input!.payloads![0]!.metadata!.encoding!).toString()).toBe('binary/encrypted');
    expect(Buffer.from(started.input!.payloads![0]!.metadata!['encryption-key-id']!).toString()).toBe(keyA.metadata.keyId);
    expect(Buffer.from(started.memo!.fields!.note!.metadata!.encoding!).toString()).toBe('binary/encrypted');
    const failed = (await historyOf(env, sealed.ids.failed)).events!.find((e) => e.activityTaskFailedEventAttributes)!;
    expect(failed.activityTaskFailedEventAttributes!.failure!.message).toBe('Encoded failure');
  });

  it('control: without the codec the server holds every one of them in plaintext', async () => {
    expect(plain.result).toBe(sealed.result);
    for (const m of markers) expect(await serverHolds(controlEnv, plain.ids.ok, m), m).toBe(true);
    for (const m of [FAILURE, STACK_MARKER, 'the secret input']) expect(await serverHolds(controlEnv, plain.ids.failed, m), m).toBe(true);
  });

  describe('Worker.runReplayHistory on the recorded histories', () => {
    const replay = (dataConverter: DataConverter | undefined, workflowId: string, bundle = codecBundle, from = env) =>
      historyOf(from, workflowId).then((history) => Worker.runReplayHistory({ workflowBundle: bundle, ...(dataConverter ? { dataConverter } : {}) }, history, workflowId));

    it('passes with the key that sealed them', async () => {
      await replay(codecConverter, sealed.ids.ok);
      await replay(codecConverter, sealed.ids.failed);
    });

    it('passes after rotation when the old key is kept in the ring (the new key encodes)', async () => {
      const ring = createTskKeyRing([keyA, keyB]);
      expect(ring.newest).toBe(keyB);
      await replay(createTskDataConverter({ keys: ring }), sealed.ids.ok);
      await replay(createTskDataConverter({ keys: ring }), sealed.ids.failed);
    });

    it('fails with the clear error when the old key is missing: the worker logs the code and the missing key id', async () => {
      logs.length = 0;
      const err = await replay(createTskDataConverter({ keys: keyB }), sealed.ids.ok).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err?.message).toContain('Replay failed due workflow task failure');
      // The task failure sent to the server is itself encoded by the failure converter ("Encoded failure",
      // readable through the codec server); the worker's log carries the error as thrown.
      const logged = logs.map((l) => l.meta?.error as (Error & { code?: string }) | undefined).find((e) => e?.code === 'ERR_CODEC_UNKNOWN_KEY');
      expect(logged?.message).toContain(`needs Trusted Session Key ${keyA.metadata.keyId}`);
      expect(logged?.message).toContain(`it holds ${keyB.metadata.keyId}`);
      for (const m of markers) expect(JSON.stringify(logs.map((l) => [l.message, String(l.meta?.error)]))).not.toContain(m);
    });

    it('fails without a codec (the workflow cannot read binary/encrypted)', async () => {
      await expect(replay(undefined, sealed.ids.ok, plainBundle)).rejects.toThrow('Unknown encoding: binary/encrypted');
    });

    it('control: the plaintext histories replay without a codec', async () => {
      await replay(undefined, plain.ids.ok, plainBundle, controlEnv);
    });
  });
});
