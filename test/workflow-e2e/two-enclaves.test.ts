// issue 20 §3, in the example workflow: research and analysis run in enclave image A, report in image
// B; analysis hands its result to report over mutually attested TLS, and the parent relays every byte
// (native vsock forwarders on both ends, AF_UNIX stand-ins for vsock). The test plays the parent: it
// records what it relays, and routes A's connection to an enclave of another image (refused by A
// before it sends), or drops A and connects another image to B (refused by B, which reads nothing).
// Temporal is the in-process stand-in (a real server too when configured), the worker the real one.
// The example imports the built package: `npm run build` first.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ActivityFailure, ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
// The enclaves' keys and identities come from the built package (the example's imports): use its classes too.
import { createNsmClient } from 'nitro-enclave-sdk/nsm';
import { createSimulatedEnclave, createSimulatedNsm, testImagePcr } from 'nitro-enclave-sdk/testing';
import { createAttestedTlsIdentity, type AttestedTlsIdentity } from 'nitro-enclave-sdk/tls';
import { connectSocket, forwardTcpToVsock } from 'nitro-enclave-sdk/vsock';
import { newChainId, openHandlerError, openState, peekStateBinding } from 'nitro-enclave-sdk/workflow';
// @ts-expect-error: plain ESM example without type declarations
import { demoBrief } from '../../examples/confidential-workflow/demo.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { agents } from '../../examples/confidential-workflow/enclave/agents.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { createHandoffSender, startHandoffReceiver } from '../../examples/confidential-workflow/enclave/handoff.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { runConfidentialWorkflow } from '../../examples/confidential-workflow/enclave/starter.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { HANDOFFS } from '../../examples/confidential-workflow/enclave/steps.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { runTwoEnclaveDemo, startTwoEnclaveDeployment } from '../../examples/confidential-workflow/demo-two-enclaves.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { createParentWorker } from '../../examples/confidential-workflow/parent/worker.mjs';
import { cachedWorkflowBundle } from './helpers/bundle.js';
import { realServerConfigured, realServerSkipNote, serverHolds, startTemporal, type TemporalUnderTest } from './helpers/temporal.js';

const exampleDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'confidential-workflow');
const brief = { question: 'Should Acme acquire Globex (codename BLUEHERON)?', sources: ['Globex 10-K 2025', 'Acme board minutes of March'] };
// What the parent must never see: the input, research's notes, analysis's result (the handed-off bytes), the report.
const needles = ['BLUEHERON', 'Globex 10-K', 'relevant to', 'supported by independent sources', 'insufficient evidence', 'Report: Should Acme'];

type Address = { family: 'unix'; path: string };
type Receipt = { transfer: string; sha256: string };
interface Receiver {
  refused: Array<{ code?: string; message: string }>;
  readonly pending: number;
  redeem(receipt: Receipt, context: object): Uint8Array;
  close(): Promise<void>;
}
interface Deployment {
  imageA: { imageSha384: string; pki: unknown };
  imageB: { imageSha384: string };
  trustAnchors: Uint8Array[];
  a: { tsk: object };
  b: { tsk: object; receiver: Receiver };
  enclaves: Record<string, Address>;
  handoffB: Address;
  close(): Promise<void>;
}

Runtime.install({ logger: new DefaultLogger('ERROR') });
const targets: Array<'stand-in' | 'real'> = realServerConfigured ? ['stand-in', 'real'] : ['stand-in'];

/** Every byte is part of a TLS record (content types 20..23, version 0x03xx). */
function onlyTlsRecords(bytes: Buffer): boolean {
  let at = 0;
  while (at + 5 <= bytes.length) {
    if (![20, 21, 22, 23].includes(bytes[at]!) || bytes[at + 1] !== 3) return false;
    at += 5 + bytes.readUInt16BE(at + 3);
  }
  return at === bytes.length;
}

describe.each(targets)('two agent enclaves of different images, through a relaying parent, on the %s Temporal server', (kind) => {
  let env: TemporalUnderTest;
  let deployment: Deployment;
  let worker: { worker: Worker; running: Promise<void> };
  const dir = mkdtempSync(join(tmpdir(), 'nes-two-enclaves-'));
  const taskQueue = `two-enclaves-${kind}-${process.pid}`;
  // The parent: what it relays between the enclaves, and where it routes A's connections.
  const relayed = { up: [] as Buffer[], down: [] as Buffer[] };
  let route: () => Address | null | Promise<Address | null>;
  // An enclave of a third image (same test PKI: a genuine attestation, just another image).
  let impostor: { identity: AttestedTlsIdentity; pcr0: string };

  beforeAll(async () => {
    env = await startTemporal(kind);
    const workflowBundle = await cachedWorkflowBundle(join(exampleDir, 'workflows', 'pipeline.ts'), [join(exampleDir, 'workflows')]);
    deployment = await startTwoEnclaveDeployment({ dir, route: () => route(), tap: (direction: 'up' | 'down', chunk: Buffer) => relayed[direction].push(Buffer.from(chunk)) });
    const w = await createParentWorker({ connection: env.nativeConnection, namespace: env.namespace, taskQueue, enclaves: deployment.enclaves, workflowBundle, maxCachedWorkflows: 0 });
    worker = { worker: w, running: w.run() };
    const imageC = createSimulatedEnclave({ pki: deployment.imageA.pki as never, pcrs: { 0: testImagePcr('another image') } });
    impostor = { identity: await createAttestedTlsIdentity({ nsm: createNsmClient(createSimulatedNsm(imageC)) }), pcr0: imageC.imageSha384 };
  });

  beforeEach(() => {
    relayed.up.length = 0;
    relayed.down.length = 0;
    route = () => deployment.handoffB;
  });

  afterAll(async () => {
    worker?.worker.shutdown();
    await worker?.running;
    impostor?.identity.close();
    await env?.close();
    await deployment?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the workflow completes with the report; the parent relayed only TLS records holding no plaintext; Temporal holds only sealed bytes and the receipt', async () => {
    const workflowId = `two-enclaves-${kind}-${Date.now()}`;
    const chainId = newChainId();
    const { report } = await runConfidentialWorkflow({ client: env.client, key: deployment.a.tsk, brief, workflowId, taskQueue, chainId });
    expect(report).toEqual(agents.report(agents.analysis(agents.research(brief))));

    const up = Buffer.concat(relayed.up);
    const down = Buffer.concat(relayed.down);
    expect(up.length).toBeGreaterThan(0);
    expect(down.length).toBeGreaterThan(0);
    expect(onlyTlsRecords(up)).toBe(true);
    expect(onlyTlsRecords(down)).toBe(true);
    for (const needle of needles) {
      expect(up.includes(needle), `A→B: ${needle}`).toBe(false);
      expect(down.includes(needle), `B→A: ${needle}`).toBe(false);
      expect(await serverHolds(env, workflowId, needle), `Temporal: ${needle}`).toBe(false);
    }

    // What analysis returned to Temporal is B's receipt, sealed by A for report #3 of this run.
    const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
    const sealedReceipts = history.events!.flatMap((e) => (e.activityTaskCompletedEventAttributes?.result?.payloads ?? []).map((p) => p.data!)).filter((d) => peekStateBinding(d).activity === 'report');
    expect(sealedReceipts).toHaveLength(1);
    const binding = { workflowId, chainId, activity: 'report', seq: 3, producer: 'analysis' };
    const opened = openState(deployment.a.tsk as never, sealedReceipts[0]!, binding);
    const receipt = JSON.parse(new TextDecoder().decode(opened.plaintext)) as Receipt;
    expect(Object.keys(receipt).sort()).toEqual(['sha256', 'transfer']);
    // B gives the result only to the step it was sent for (a retry of it included); another workflow,
    // run or step, or a receipt naming other bytes or no transfer, is refused.
    const { receiver } = deployment.b;
    expect(JSON.parse(new TextDecoder().decode(receiver.redeem(receipt, binding)))).toEqual(agents.analysis(agents.research(brief)));
    for (const other of [{ workflowId: `${workflowId}-2` }, { chainId: newChainId() }, { seq: 4 }, { producer: 'research' }]) {
      expect(() => receiver.redeem(receipt, { ...binding, ...other })).toThrow(expect.objectContaining({ code: 'ERR_HANDOFF_MISMATCH', message: 'the result was sent for another step, workflow or run' }));
    }
    expect(() => receiver.redeem({ ...receipt, sha256: '00'.repeat(32) }, binding)).toThrow(expect.objectContaining({ code: 'ERR_HANDOFF_MISMATCH', message: 'the receipt names other bytes than the ones received' }));
    expect(() => receiver.redeem({ ...receipt, transfer: '00'.repeat(16) }, binding)).toThrow(expect.objectContaining({ code: 'ERR_HANDOFF_UNKNOWN' }));
    await Worker.runReplayHistory({ workflowBundle: await cachedWorkflowBundle(join(exampleDir, 'workflows', 'pipeline.ts'), [join(exampleDir, 'workflows')]) }, history, workflowId);
  });

  it('the parent routes A to an enclave of another image instead of B: A refuses it before sending, and the workflow fails with ERR_TLS_ATTESTATION_PCR_MISMATCH', async () => {
    const { imageA, imageB, trustAnchors } = deployment;
    // The impostor runs the example's own receiver and admits A: only A's check stops the handoff.
    const cPath = join(dir, `impostor-${Date.now()}.sock`);
    const c: Receiver = startHandoffReceiver({ identity: impostor.identity, senders: { expectedPcrs: { 0: imageA.imageSha384 }, trustAnchors }, accepts: Object.values(HANDOFFS), listen: { family: 'unix', path: cPath } });
    route = () => ({ family: 'unix', path: cPath });
    try {
      const workflowId = `two-enclaves-to-impostor-${kind}-${Date.now()}`;
      const chainId = newChainId();
      const err = await runConfidentialWorkflow({ client: env.client, key: deployment.a.tsk, brief, workflowId, taskQueue, chainId }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const failure = ((err as WorkflowFailedError).cause as ActivityFailure).cause as ApplicationFailure;
      expect((err as WorkflowFailedError).cause).toBeInstanceOf(ActivityFailure);
      expect(((err as WorkflowFailedError).cause as ActivityFailure).activityType).toBe('analysis');
      expect(failure.type).toBe('ERR_ACTIVITY_HANDLER_FAILED');
      expect(failure.nonRetryable).toBe(true);
      expect(failure.details?.[1]).toBe('ERR_TLS_ATTESTATION_PCR_MISMATCH');
      const details = openHandlerError(deployment.a.tsk as never, failure.details![0] as Uint8Array, { workflowId, chainId, activity: 'analysis', seq: 2 });
      expect(details).toMatchObject({
        code: 'ERR_TLS_ATTESTATION_PCR_MISMATCH',
        message: `the peer's attestation refused: ERR_ATTESTATION_PCR_MISMATCH: PCR0 mismatch: expected ${imageB.imageSha384}, document has ${impostor.pcr0}`,
      });
      // A wrote nothing after the handshake: the impostor holds nothing and refused nobody.
      expect(c.pending).toBe(0);
      expect(c.refused).toEqual([]);
      expect(relayed.up.length).toBeGreaterThan(0); // the handshake went through the parent
      expect(onlyTlsRecords(Buffer.concat(relayed.up))).toBe(true);
      expect(Buffer.concat(relayed.up).subarray(0, 1)[0]).toBe(22);
      expect(Buffer.concat(relayed.up).includes('supported by independent sources')).toBe(false);
      expect(await serverHolds(env, workflowId, 'supported by independent sources')).toBe(false);
    } finally {
      await c.close();
    }
  });

  it('the parent drops A and connects an enclave of another image to B: B refuses it and reads nothing, and the workflow fails with a coded error', async () => {
    const { imageB, trustAnchors, handoffB } = deployment;
    const refusedBefore = deployment.b.receiver.refused.length;
    const pendingBefore = deployment.b.receiver.pending;
    const workflowId = `two-enclaves-from-impostor-${kind}-${Date.now()}`;
    const chainId = newChainId();
    // The impostor sends a forged result for this very step (workflow id and chain id are in clear in
    // every sealed state's header) through its own forwarder to B's handoff port, with the example's sender.
    const forwarder = await forwardTcpToVsock({ listen: { port: 0 }, target: { cid: 3, port: 6000 }, connect: () => connectSocket(handoffB, { allowHalfOpen: true }) });
    const sender = createHandoffSender({ identity: impostor.identity, receivers: { expectedPcrs: { 0: imageB.imageSha384 }, trustAnchors }, connect: async () => ({ host: forwarder.host, port: forwarder.port }) });
    let forged: Promise<unknown> | undefined;
    route = () => {
      forged = sender.send({ workflowId, chainId, activity: 'report', seq: 3, producer: 'analysis' }, new TextEncoder().encode(JSON.stringify({ question: 'forged', findings: [], assessment: 'forged', confidence: 1 }))).catch((e: unknown) => e);
      return null; // A's connection goes nowhere
    };
    try {
      const err = await runConfidentialWorkflow({ client: env.client, key: deployment.a.tsk, brief, workflowId, taskQueue, chainId }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const failure = ((err as WorkflowFailedError).cause as ActivityFailure).cause as ApplicationFailure;
      expect(failure.type).toBe('ERR_ACTIVITY_HANDLER_FAILED');
      expect(failure.nonRetryable).toBe(true);
      expect(failure.details?.[1]).toBe('ERR_HANDOFF_CUT');

      // B refused the impostor on its attestation, before reading a byte of what it sent.
      expect(await forged).toMatchObject({ code: 'ERR_HANDOFF_CUT' });
      const refused = deployment.b.receiver.refused.slice(refusedBefore);
      expect(refused).toHaveLength(1);
      expect(refused[0]).toMatchObject({
        code: 'ERR_TLS_ATTESTATION_PCR_MISMATCH',
        message: `the peer's attestation refused: ERR_ATTESTATION_PCR_MISMATCH: PCR0 mismatch: expected ${deployment.imageA.imageSha384}, document has ${impostor.pcr0}`,
      });
      expect(deployment.b.receiver.pending).toBe(pendingBefore);
      expect(relayed.down).toEqual([]);
    } finally {
      await forwarder.close();
    }
  });
});

it('`npm run demo:two-enclaves` runs the same flow and says what the parent and the server saw', async () => {
  const workflowBundle = await cachedWorkflowBundle(join(exampleDir, 'workflows', 'pipeline.ts'), [join(exampleDir, 'workflows')]);
  const lines: string[] = [];
  const result = await runTwoEnclaveDemo({ log: (line: string) => lines.push(line), workflowBundle, temporalAddress: '127.0.0.1:1' });
  const out = lines.join('\n');
  expect(result.leaked).toEqual([]);
  expect(result.report).toEqual(agents.report(agents.analysis(agents.research(demoBrief))));
  expect(onlyTlsRecords(result.relayed.up)).toBe(true);
  expect(out).toContain('Workflow completed: research (A) → analysis (A) ⇒ attested TLS ⇒ report (B)');
  expect(out).toMatch(/ sealed for report #3 from analysis, chain /);
  expect(out).toContain('→ no plaintext at the parent or the server');
}, 60_000);

describe.skipIf(realServerConfigured)('real Temporal server', () => {
  it.skip(realServerSkipNote, () => {});
});
