// The example's workflow on the real Temporal client and Rust-core worker, against the in-process
// stand-in (and a real server when one is configured). The question each test asks: what does the
// server hold? Without sealing (control) it holds the plaintext; with sealing it must not.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WorkflowFailedError } from '@temporalio/client';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: plain ESM example without type declarations
import { agents, fromBytes, toBytes } from '../../examples/confidential-workflow/enclave/agents.mjs';
import { cachedWorkflowBundle } from './helpers/bundle.js';
import { realServerConfigured, realServerSkipNote, serverHolds, startTemporal, type TemporalUnderTest } from './helpers/temporal.js';

const exampleDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'confidential-workflow');
const workflowsPath = join(exampleDir, 'workflows', 'pipeline.ts');

const brief = { question: 'Should Acme acquire Globex (codename BLUEHERON)?', sources: ['Globex 10-K 2025', 'Acme board minutes of March'] };
// One needle per thing the server must never see in the sealed run: the input, each state, the result.
const needles = { input: 'BLUEHERON', research: 'relevant to', analysis: 'supported by independent sources', result: 'Report: Should Acme' };

Runtime.install({ logger: new DefaultLogger('ERROR') });
const targets: Array<'stand-in' | 'real'> = realServerConfigured ? ['stand-in', 'real'] : ['stand-in'];

describe.each(targets)('the confidential pipeline on the %s Temporal server', (kind) => {
  let env: TemporalUnderTest;
  let workflowBundle: { code: string };
  const workers: Array<{ worker: Worker; running: Promise<void> }> = [];
  const plainQueue = `plain-${kind}-${process.pid}`;

  async function startWorker(taskQueue: string, activities: Record<string, (...args: never[]) => Promise<unknown>>) {
    const worker = await Worker.create({ connection: env.nativeConnection, namespace: env.namespace, taskQueue, workflowBundle, activities, maxCachedWorkflows: 0 });
    workers.push({ worker, running: worker.run() });
  }

  beforeAll(async () => {
    env = await startTemporal(kind);
    workflowBundle = await cachedWorkflowBundle(workflowsPath, [join(exampleDir, 'workflows')]);
    // Control: the same workflow, the agents run on the parent on plaintext (no enclave, no sealing).
    const plain = (name: string) => async (state: Uint8Array) => {
      const input = fromBytes(state);
      if (input.question?.includes('FAIL')) throw new Error(`agent ${name} failed on ${input.question}`);
      return toBytes(agents[name](input));
    };
    await startWorker(plainQueue, { research: plain('research'), analysis: plain('analysis'), report: plain('report') });
  });

  afterAll(async () => {
    for (const { worker } of workers) worker.shutdown();
    await Promise.all(workers.map((w) => w.running));
    await env?.close();
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
    const failing = { question: 'FAIL on codename REDKITE', sources: [] };
    const err = await env.client.workflow.execute('confidentialPipeline', { taskQueue: plainQueue, workflowId, args: [toBytes(failing)], retry: { maximumAttempts: 1 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(await serverHolds(env, workflowId, 'agent research failed on FAIL on codename REDKITE')).toBe(true);
  }, 30_000);
});

describe.skipIf(realServerConfigured)('real Temporal server', () => {
  it.skip(realServerSkipNote, () => {});
});
