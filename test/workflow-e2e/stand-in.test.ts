import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure, TerminatedFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTemporalStandIn, type TemporalStandIn } from '../../src/testing/temporal/index.js';
import { cachedWorkflowBundle } from './helpers/bundle.js';
import { startChild } from './helpers/processes.js';

const { EventType: E, TimeoutType, RetryState, CommandType } = temporal.api.enums.v1;

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
      heartbeatPast: async () => {
        const ctx = Context.current();
        if (ctx.info.attempt === 1) {
          // Heartbeats every 100 ms for 2.5 s: the 1 s start-to-close timeout must still end the attempt.
          for (let i = 0; i < 25 && !ctx.cancellationSignal.aborted; i++) {
            ctx.heartbeat(i);
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
        return ctx.info.attempt;
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

describe('Temporal stand-in: workflow task timeouts, as the server', () => {
  it('times out a workflow task its worker never answers, records WORKFLOW_TASK_TIMED_OUT, hands the task to another worker, and refuses the late answer', async () => {
    const queue = 'raw-wft-timeout';
    const handle = await client.workflow.start('plainPipeline', { taskQueue: queue, workflowId: 'wft-timeout-1', args: ['x'], workflowTaskTimeout: '1s' });
    const service = connection.workflowService;
    // A worker that takes the task and stalls (raw gRPC: the real worker always answers).
    const stalled = await service.pollWorkflowTaskQueue({ namespace: 'default', taskQueue: { name: queue }, identity: 'stalled@test' });
    expect(stalled.attempt).toBe(1);
    // The next poll is answered when the 1 s timeout hands the task out again (bounded by the long poll).
    const second = await service.pollWorkflowTaskQueue({ namespace: 'default', taskQueue: { name: queue }, identity: 'second@test' });
    expect(second.attempt).toBe(2);
    const late = await service
      .respondWorkflowTaskCompleted({ namespace: 'default', taskToken: stalled.taskToken, identity: 'stalled@test', commands: [] })
      .catch((e: unknown) => e);
    expect((late as { code?: number }).code).toBe(5); // NOT_FOUND: its token died with the timeout
    await service.respondWorkflowTaskCompleted({
      namespace: 'default',
      taskToken: second.taskToken,
      identity: 'second@test',
      commands: [{ commandType: CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION, completeWorkflowExecutionCommandAttributes: {} }],
    });
    await handle.result();
    const events = server.history('wft-timeout-1').events;
    expect(events.map((e) => e.eventType)).toEqual([
      E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
      E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
      E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
      E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
      E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
      E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
      E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
      E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    ]);
    // The requested timeout is the one written and enforced (not the 10 s default).
    expect(Number(events[0]!.workflowExecutionStartedEventAttributes!.workflowTaskTimeout!.seconds)).toBe(1);
    expect(Number(events[1]!.workflowTaskScheduledEventAttributes!.startToCloseTimeout!.seconds)).toBe(1);
    const t = events[3]!.workflowTaskTimedOutEventAttributes!;
    expect([Number(t.scheduledEventId), Number(t.startedEventId), t.timeoutType]).toEqual([2, 3, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE]);
    expect(events[4]!.workflowTaskScheduledEventAttributes!.attempt).toBe(2);
    expect(events[5]!.workflowTaskStartedEventAttributes!.identity).toBe('second@test');
  });

  it('writes the default (10 s) and caps a longer request at 120 s, as the server does', async () => {
    await client.workflow.start('plainPipeline', { taskQueue: 'nobody-polls', workflowId: 'wft-default', args: ['x'] });
    await client.workflow.start('plainPipeline', { taskQueue: 'nobody-polls', workflowId: 'wft-capped', args: ['x'], workflowTaskTimeout: '10 minutes' });
    const timeoutOf = (id: string) => Number(server.history(id).events[0]!.workflowExecutionStartedEventAttributes!.workflowTaskTimeout!.seconds);
    expect([timeoutOf('wft-default'), timeoutOf('wft-capped')]).toEqual([10, 120]);
    await client.workflow.getHandle('wft-default').terminate();
    await client.workflow.getHandle('wft-capped').terminate();
  });

  it('a worker process killed (-9) while it holds a workflow task strands nothing: the task times out and another worker completes the workflow', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nes-stand-in-kill-'));
    const bundlePath = join(dir, 'workflows.js');
    writeFileSync(bundlePath, workflowBundle.code);
    const queue = 'kill-holder';
    let victim: Awaited<ReturnType<typeof startChild<{ ready: string }>>> | undefined;
    const killedHolding: string[] = [];
    // The hook runs before the poll's answer leaves the stand-in: the worker dies holding the task.
    const own = await startTemporalStandIn({
      onTaskStarted: (task) => {
        if (task.kind === 'workflow' && victim && task.identity === victim.ready.ready) {
          killedHolding.push(`${task.workflowId}#${task.attempt}`);
          victim.process.kill('SIGKILL');
        }
      },
    });
    const ownConnection = await Connection.connect({ address: own.address });
    let rescuer: { worker: Worker; running: Promise<void> } | undefined;
    try {
      victim = await startChild<{ ready: string }>('worker-process.mjs', { kind: 'plain', address: own.address, taskQueue: queue, bundlePath, identity: 'victim@kill-test' });
      const handle = await new Client({ connection: ownConnection }).workflow.start('plainPipeline', { taskQueue: queue, workflowId: 'killed-holder', args: ['buoys'], workflowTaskTimeout: '2s' });
      expect(await victim.exited).toBe('SIGKILL');
      expect(killedHolding).toEqual(['killed-holder#1']);
      const worker = await Worker.create({ connection: await NativeConnection.connect({ address: own.address }), taskQueue: queue, workflowBundle, maxCachedWorkflows: 0, identity: 'rescuer@kill-test', activities: { research: async (t: string) => `notes on ${t}`, analyse: async (n: string, a: string) => `${a} of ${n}` } });
      rescuer = { worker, running: worker.run() };
      expect(await handle.result()).toBe('risk of notes on buoys | cost of notes on buoys');
      const events = own.history('killed-holder').events;
      const timedOut = events.filter((e) => e.eventType === E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT);
      expect(timedOut).toHaveLength(1);
      expect(timedOut[0]!.workflowTaskTimedOutEventAttributes!.timeoutType).toBe(TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE);
      const startedBy = events.filter((e) => e.workflowTaskStartedEventAttributes).map((e) => e.workflowTaskStartedEventAttributes!.identity);
      expect(startedBy[0]).toBe('victim@kill-test');
      expect(new Set(startedBy.slice(1))).toEqual(new Set(['rescuer@kill-test']));
      await Worker.runReplayHistory({ workflowBundle }, own.history('killed-holder'));
    } finally {
      rescuer?.worker.shutdown();
      await rescuer?.running;
      await victim?.kill9();
      await ownConnection.close();
      await own.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);
});

describe('Temporal stand-in: activity timeouts, as the server', () => {
  it('heartbeats do not extend start-to-close: the attempt still times out on StartToClose and is retried', async () => {
    const handle = await client.workflow.start('heartbeatsDoNotExtend', { taskQueue, workflowId: 'beats-1' });
    expect(await handle.result()).toBe(2);
    const started = server.history('beats-1').events.find((e) => e.activityTaskStartedEventAttributes)!.activityTaskStartedEventAttributes!;
    expect(started.attempt).toBe(2);
    expect(started.lastFailure?.message).toBe('activity StartToClose timeout');
    expect(started.lastFailure?.timeoutFailureInfo?.timeoutType).toBe(TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE);
  });

  it('times out an activity no worker starts on ScheduleToStart, without retrying it (only StartToClose and Heartbeat timeouts are retryable)', async () => {
    const handle = await client.workflow.start('neverStarted', { taskQueue, workflowId: 'unpolled-1' });
    expect(await handle.result()).toBe('TimeoutFailure:SCHEDULE_TO_START');
    const events = server.history('unpolled-1').events;
    const timedOut = events.find((e) => e.activityTaskTimedOutEventAttributes)!.activityTaskTimedOutEventAttributes!;
    expect(timedOut.failure?.message).toBe('activity ScheduleToStart timeout');
    expect(timedOut.retryState).toBe(RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE);
    expect(Number(timedOut.startedEventId)).toBe(0);
    expect(events.some((e) => e.activityTaskStartedEventAttributes)).toBe(false);
    await Worker.runReplayHistory({ workflowBundle }, server.history('unpolled-1'));
  });
});
