// The example's workflow on the real Temporal client and Rust-core worker, against the in-process
// stand-in (and a real server when one is configured). The question each test asks: what does the
// server hold? Without sealing (control) it holds the plaintext; with sealing it must not.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ActivityFailure, ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The example imports 'nitro-enclave-sdk' (the built package, by self-reference), as a user's app would.
// @ts-expect-error: plain ESM example without type declarations
import { agents, fromBytes, toBytes } from '../../examples/confidential-workflow/enclave/agents.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { runConfidentialWorkflow } from '../../examples/confidential-workflow/enclave/starter.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { startSimulatedDeployment } from '../../examples/confidential-workflow/demo.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { createParentWorker } from '../../examples/confidential-workflow/parent/worker.mjs';
import { cachedWorkflowBundle } from './helpers/bundle.js';
import { realServerConfigured, realServerSkipNote, serverHolds, startTemporal, type TemporalUnderTest } from './helpers/temporal.js';

const exampleDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'confidential-workflow');
const workflowsPath = join(exampleDir, 'workflows', 'pipeline.ts');

const brief = { question: 'Should Acme acquire Globex (codename BLUEHERON)?', sources: ['Globex 10-K 2025', 'Acme board minutes of March'] };
// One needle per thing the server must never see in the sealed run: the input, each state, the result.
// research fails on a brief without sources, with the question in its error message.
const failingBrief = { question: 'Is codename REDKITE viable?', sources: [] };
const failingNeedle = 'research found no sources for "Is codename REDKITE viable?"';
const needles = { input: 'BLUEHERON', research: 'relevant to', analysis: 'supported by independent sources', result: 'Report: Should Acme' };

Runtime.install({ logger: new DefaultLogger('ERROR') });
const targets: Array<'stand-in' | 'real'> = realServerConfigured ? ['stand-in', 'real'] : ['stand-in'];

describe.each(targets)('the confidential pipeline on the %s Temporal server', (kind) => {
  let env: TemporalUnderTest;
  let workflowBundle: { code: string };
  const workers: Array<{ worker: Worker; running: Promise<void> }> = [];
  const plainQueue = `plain-${kind}-${process.pid}`;
  const sealedQueue = `sealed-${kind}-${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'nes-wf-e2e-'));
  let deployment: { enclave: { tsk: unknown }; agentsAddress: object; close(): Promise<void> };

  async function startWorker(taskQueue: string, activities: Record<string, (...args: never[]) => Promise<unknown>>) {
    const worker = await Worker.create({ connection: env.nativeConnection, namespace: env.namespace, taskQueue, workflowBundle, activities, maxCachedWorkflows: 0 });
    workers.push({ worker, running: worker.run() });
  }

  beforeAll(async () => {
    env = await startTemporal(kind);
    workflowBundle = await cachedWorkflowBundle(workflowsPath, [join(exampleDir, 'workflows')]);
    // Control: the same workflow, the agents run on the parent on plaintext (no enclave, no sealing).
    const plain = (name: string) => async (state: Uint8Array) => toBytes(agents[name](fromBytes(state)));
    await startWorker(plainQueue, { research: plain('research'), analysis: plain('analysis'), report: plain('report') });
    // Sealed: the simulated enclave (TSK from the KMS simulator) serves the agents; the parent's worker
    // is the example's, with createSealedActivities, and holds no key.
    deployment = await startSimulatedDeployment({ dir });
    const worker = await createParentWorker({ connection: env.nativeConnection, namespace: env.namespace, taskQueue: sealedQueue, enclave: deployment.agentsAddress, workflowBundle, maxCachedWorkflows: 0 });
    workers.push({ worker, running: worker.run() });
  });

  afterAll(async () => {
    for (const { worker } of workers) worker.shutdown();
    await Promise.all(workers.map((w) => w.running));
    await env?.close();
    await deployment?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('control: without sealing, the server holds the input, every state and the result in plaintext', async () => {
    const workflowId = `plain-${kind}-${Date.now()}`;
    const result = await env.client.workflow.execute('confidentialPipeline', { taskQueue: plainQueue, workflowId, args: [toBytes(brief)] });
    expect(fromBytes(result).verdict).toBe('supported by independent sources');
    for (const needle of Object.values(needles)) expect(await serverHolds(env, workflowId, needle), needle).toBe(true);
    await Worker.runReplayHistory({ workflowBundle }, await env.client.workflow.getHandle(workflowId).fetchHistory(), workflowId);
  });

  it('control: without sealing, a failing agent puts its message at the server', async () => {
    const workflowId = `plain-fail-${kind}-${Date.now()}`;
    const err = await env.client.workflow.execute('confidentialPipeline', { taskQueue: plainQueue, workflowId, args: [toBytes(failingBrief)] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(await serverHolds(env, workflowId, failingNeedle)).toBe(true);
  }, 30_000);

  it('sealed: the input is sealed in the enclave; the server holds no plaintext of input, states or result, and the history replays', async () => {
    const workflowId = `sealed-${kind}-${Date.now()}`;
    const { report } = await runConfidentialWorkflow({ client: env.client, key: deployment.enclave.tsk, brief, workflowId, taskQueue: sealedQueue });
    expect(report).toEqual(agents.report(agents.analysis(agents.research(brief))));
    for (const [what, needle] of Object.entries(needles)) expect(await serverHolds(env, workflowId, needle), what).toBe(false);
    await Worker.runReplayHistory({ workflowBundle }, await env.client.workflow.getHandle(workflowId).fetchHistory(), workflowId);
  });

  it('sealed: the host answers a later run of the same workflow id with run 1’s report: the starter refuses it (ERR_SEALED_WRONG_CHAIN)', async () => {
    const workflowId = `sealed-reused-${kind}-${Date.now()}`;
    const run1 = await runConfidentialWorkflow({ client: env.client, key: deployment.enclave.tsk, brief, workflowId, taskQueue: sealedQueue });
    // Run 2 (same workflow id, as Temporal allows once run 1 closed): the host returns run 1's result.
    const hostile = { workflow: { execute: async () => run1.sealedReport } };
    const err = await runConfidentialWorkflow({ client: hostile, key: deployment.enclave.tsk, brief: { ...brief, question: 'another question' }, workflowId, taskQueue: sealedQueue }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('ERR_SEALED_WRONG_CHAIN');
  });

  it('sealed: a failing agent fails the workflow with a coded, non-retryable failure and its message never reaches the server', async () => {
    const workflowId = `sealed-fail-${kind}-${Date.now()}`;
    const err = await runConfidentialWorkflow({ client: env.client, key: deployment.enclave.tsk, brief: failingBrief, workflowId, taskQueue: sealedQueue }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause as ActivityFailure;
    expect(cause).toBeInstanceOf(ActivityFailure);
    expect((cause.cause as ApplicationFailure).type).toBe('ERR_ACTIVITY_HANDLER_FAILED');
    expect((cause.cause as ApplicationFailure).nonRetryable).toBe(true);
    expect(await serverHolds(env, workflowId, failingNeedle)).toBe(false);
    expect(await serverHolds(env, workflowId, 'REDKITE')).toBe(false);
  });
});

describe.skipIf(realServerConfigured)('real Temporal server', () => {
  it.skip(realServerSkipNote, () => {});
});
