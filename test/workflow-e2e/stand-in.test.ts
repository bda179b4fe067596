import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure, TerminatedFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTemporalStandIn, type TemporalStandIn } from '../../src/testing/temporal/index.js';
import { cachedWorkflowBundle } from './helpers/bundle.js';

const here = dirname(fileURLToPath(import.meta.url));
const workflowsPath = join(here, 'workflows', 'plain.ts');
const taskQueue = 'stand-in-test';

let server: TemporalStandIn;
let client: Client;
let connection: Connection;
let worker: Worker;
let running: Promise<void>;
let workflowBundle: { code: string };
const attempts = new Map<string, number>();
let cancelSeen = false;

beforeAll(async () => {
  // Expected activity and workflow failures are logged at WARN by the worker.
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const t0 = Date.now();
  workflowBundle = await cachedWorkflowBundle(workflowsPath, [join(here, 'workflows')]);
  console.log(`workflow bundle: ${Date.now() - t0} ms`);
  server = await startTemporalStandIn();
  const t1 = Date.now();
  worker = await Worker.create({
    connection: await NativeConnection.connect({ address: server.address }),
    taskQueue,
    workflowBundle,
    maxCachedWorkflows: 0,
    activities: {
      research: async (topic: string) => `notes on ${topic}`,
      analyse: async (notes: string, angle: string) => `${angle} of ${notes}`,
      flaky: async (text: string) => {
        const n = (attempts.get(text) ?? 0) + 1;
        attempts.set(text, n);
        if (n < 3) throw new Error(`transient failure ${n} for ${text}`);
        return `${text} after ${n} attempts`;
      },
      waitForCancel: async () => {
        // Heartbeats until the server answers a heartbeat with "cancel requested".
        const ctx = Context.current();
        for (;;) {
          ctx.heartbeat();
          try {
            await ctx.sleep(50);
          } catch (err) {
            cancelSeen = err instanceof CancelledFailure;
            throw err;
          }
        }
      },
      silentOnce: async () => {
        const { attempt } = Context.current().info;
        if (attempt === 1) await new Promise((resolve) => setTimeout(resolve, 2000));
        return attempt;
      },
      hangOnce: async () => {
        const { attempt } = Context.current().info;
        if (attempt === 1) await new Promise((resolve) => setTimeout(resolve, 3000));
        return attempt;
      },
      refuse: async (text: string) => {
        throw ApplicationFailure.nonRetryable(`refused ${text}`, 'Refused');
      },
    },
  });
  running = worker.run();
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  console.log(`worker start: ${Date.now() - t1} ms`);
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await connection?.close();
  await server?.close();
});

describe('Temporal stand-in with the real client and Rust-core worker', () => {
  it('runs a workflow with sequential and parallel activities, and the history replays', async () => {
    const handle = await client.workflow.start('plainPipeline', { taskQueue, workflowId: 'plain-1', args: ['lighthouses'] });
    expect(await handle.result()).toBe('risk of notes on lighthouses | cost of notes on lighthouses');
    const history = server.history('plain-1');
    const types = history.events.map((e) => e.eventType);
    const { EventType } = (await import('@temporalio/proto')).temporal.api.enums.v1;
    expect(types[0]).toBe(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED);
    expect(types.at(-1)).toBe(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);
    expect(types.filter((t) => t === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)).toHaveLength(3);
    // the client reads the same history back over gRPC
    const fetched = await handle.fetchHistory();
    expect(fetched.events?.length).toBe(history.events.length);
    await Worker.runReplayHistory({ workflowBundle, replayName: 'plain-1' }, history);
    expect(server.sawBytes('notes on lighthouses')).toBe(true);
    expect(server.unimplementedCalls).toEqual([]);
  });

  it('retries a failing activity on the server side', async () => {
    const handle = await client.workflow.start('retried', { taskQueue, workflowId: 'retry-1', args: ['x1'] });
    expect(await handle.result()).toBe('x1 after 3 attempts');
    await Worker.runReplayHistory({ workflowBundle }, server.history('retry-1'));
    // the failures of the first two attempts reached the server (it keeps the last one)
    expect(server.sawBytes('transient failure 2 for x1')).toBe(true);
  });

  it('fails the workflow with a non-retryable activity failure', async () => {
    const handle = await client.workflow.start('refused', { taskQueue, workflowId: 'refused-1', args: ['y1'] });
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause?.message).toBe('pipeline stopped: refused y1');
    expect(attempts.has('y1')).toBe(false);
    await Worker.runReplayHistory({ workflowBundle }, server.history('refused-1'));
  });

  it('delivers the workflow cancellation to a heartbeating activity (timers, cancel request, heartbeats)', async () => {
    const handle = await client.workflow.start('cancelAfterTimer', { taskQueue, workflowId: 'cancel-1' });
    expect(await handle.result()).toBe('activity cancelled');
    expect(cancelSeen).toBe(true);
    const { EventType } = (await import('@temporalio/proto')).temporal.api.enums.v1;
    const types = server.history('cancel-1').events.map((e) => e.eventType);
    expect(types).toContain(EventType.EVENT_TYPE_TIMER_FIRED);
    expect(types).toContain(EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED);
    expect(types).toContain(EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED);
    await Worker.runReplayHistory({ workflowBundle }, server.history('cancel-1'));
  });

  it('times out an attempt that outlives its start-to-close timeout, and retries it', async () => {
    const handle = await client.workflow.start('timedOutOnce', { taskQueue, workflowId: 'timeout-1' });
    expect(await handle.result()).toBe(2);
    const history = server.history('timeout-1');
    const started = history.events.find((e) => e.activityTaskStartedEventAttributes)!.activityTaskStartedEventAttributes!;
    expect(started.attempt).toBe(2);
    expect(started.lastFailure?.timeoutFailureInfo).toBeTruthy();
    await Worker.runReplayHistory({ workflowBundle }, history);
  });

  it('times out an attempt that stops heartbeating, and retries it', async () => {
    const handle = await client.workflow.start('heartbeatLost', { taskQueue, workflowId: 'heartbeat-1' });
    expect(await handle.result()).toBe(2);
    const started = server.history('heartbeat-1').events.find((e) => e.activityTaskStartedEventAttributes)!.activityTaskStartedEventAttributes!;
    expect(started.attempt).toBe(2);
    expect(started.lastFailure?.message).toBe('activity Heartbeat timeout');
  });

  it('describes and terminates a run, and refuses what it does not implement with UNIMPLEMENTED (listed)', async () => {
    // No worker polls this queue: the run stays at its first workflow task.
    const handle = await client.workflow.start('plainPipeline', { taskQueue: 'nobody-polls', workflowId: 'idle-1', args: ['x'] });
    expect((await handle.describe()).status.name).toBe('RUNNING');
    const signal = await handle.signal('nudge').catch((e: unknown) => e);
    expect((signal as { cause?: { code?: number } }).cause?.code).toBe(12); // gRPC UNIMPLEMENTED
    expect(server.unimplementedCalls).toEqual(['SignalWorkflowExecution']);
    await handle.terminate('test over');
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause).toBeInstanceOf(TerminatedFailure);
    expect((await handle.describe()).status.name).toBe('TERMINATED');
  });
});
