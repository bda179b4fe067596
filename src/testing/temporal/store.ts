import { randomBytes, randomUUID } from 'node:crypto';
import type { temporal } from '@temporalio/proto';
import type { ProtoRoot } from './proto.js';

type IHistoryEvent = temporal.api.history.v1.IHistoryEvent;
type IPayloads = temporal.api.common.v1.IPayloads;
type IFailure = temporal.api.failure.v1.IFailure;
type IDuration = { seconds?: number | { toNumber(): number } | null; nanos?: number | null };
type Req<T> = T;

/** A gRPC status the server layer turns into a call error. */
export class GrpcStatusError extends Error {
  constructor(
    readonly grpcCode: number,
    message: string,
  ) {
    super(message);
  }
}

// @grpc/grpc-js status codes, kept here so this file does not load gRPC.
const NOT_FOUND = 5;
const ALREADY_EXISTS = 6;
const INVALID_ARGUMENT = 3;
const UNIMPLEMENTED = 12;

function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v && typeof (v as { toNumber?: unknown }).toNumber === 'function') return (v as { toNumber(): number }).toNumber();
  return 0;
}

function durationMs(d: IDuration | null | undefined): number {
  if (!d) return 0;
  return num(d.seconds) * 1000 + Math.floor((d.nanos ?? 0) / 1e6);
}

// TimeoutType as the server spells it in failure messages and in `TemporalTimeout:<name>` non-retryable types.
const TIMEOUT_NAMES: Record<number, string> = { 1: 'StartToClose', 2: 'ScheduleToStart', 3: 'ScheduleToClose', 4: 'Heartbeat' };

function duration(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

interface ActivityState {
  exec: Execution;
  scheduledEventId: number;
  attrs: {
    activityId?: string | null;
    activityType?: temporal.api.common.v1.IActivityType | null;
    taskQueue?: temporal.api.taskqueue.v1.ITaskQueue | null;
    header?: unknown;
    input?: IPayloads | null;
    scheduleToCloseTimeout?: IDuration | null;
    scheduleToStartTimeout?: IDuration | null;
    startToCloseTimeout?: IDuration | null;
    heartbeatTimeout?: IDuration | null;
    retryPolicy?: unknown;
    priority?: unknown;
  };
  retry: { backoffCoefficient: number; initialMs: number; maxMs: number; maximumAttempts: number; nonRetryable: string[] };
  attempt: number;
  state: 'scheduled' | 'started' | 'done';
  token?: string;
  identity?: string;
  firstScheduledMs: number;
  attemptScheduledMs: number;
  startedMs: number;
  lastFailure?: IFailure;
  heartbeatDetails?: IPayloads | null;
  cancelRequestedEventId?: number;
  /** This attempt's timers: schedule-to-start while queued; start-to-close once started. */
  timers: NodeJS.Timeout[];
  /** Re-armed by each heartbeat (and only the heartbeat timer: start-to-close runs from the start). */
  heartbeatTimer?: NodeJS.Timeout;
  /** Schedule-to-close runs across attempts, from the first scheduling. */
  closeTimer?: NodeJS.Timeout;
}

interface Execution {
  namespace: string;
  workflowId: string;
  runId: string;
  workflowType: string;
  taskQueue: string;
  startMs: number;
  closeMs?: number;
  events: IHistoryEvent[];
  status: 'RUNNING' | 'COMPLETED' | 'FAILED' | 'TERMINATED';
  wft: { state: 'none' | 'scheduled' | 'started'; scheduledEventId: number; startedEventId: number; attempt: number; token?: string; timer?: NodeJS.Timeout };
  /** Start-to-close of each workflow task: the requested workflowTaskTimeout as the server settles it. */
  workflowTaskTimeoutMs: number;
  wftWanted: boolean;
  deferred: Array<() => void>;
  lastCompletedStartedEventId: number;
  activities: Map<number, ActivityState>;
  timers: Map<string, { startedEventId: number; handle: NodeJS.Timeout }>;
  closeWaiters: Array<() => void>;
}

interface Poller<T> {
  identity: string;
  resolve(task: T | null): void;
}

interface TaskQueue {
  workflowTasks: Execution[];
  activityTasks: ActivityState[];
  workflowPollers: Array<Poller<Execution>>;
  activityPollers: Array<Poller<ActivityState>>;
}

/** Options of the in-memory workflow store. */
export interface WorkflowStoreOptions {
  namespace: string;
  longPollTimeoutMs: number;
  workflowTaskRetryDelayMs: number;
  clock: () => number;
  /** Called synchronously when a task is handed to a worker, before the worker receives it. */
  onTaskStarted?: (task: StartedTask) => void;
}

/** A task the stand-in just handed to a worker (see `TemporalStandInOptions.onTaskStarted`). */
export interface StartedTask {
  readonly kind: 'workflow' | 'activity';
  readonly workflowId: string;
  readonly runId: string;
  /** The polling worker's identity (the SDK's default is `pid@hostname`). */
  readonly identity: string;
  readonly attempt: number;
  /** Activity tasks: the activity type and the step's ActivityTaskScheduled event id. */
  readonly activityType?: string;
  readonly scheduledEventId: number;
}

// The server's workflow task timeout: 10 s unless the start request asks otherwise, never over 120 s
// (MaxWorkflowTaskStartToCloseTimeout) nor over the run timeout (OverrideWorkflowTaskTimeout).
const DEFAULT_WORKFLOW_TASK_TIMEOUT_MS = 10_000;
const MAX_WORKFLOW_TASK_TIMEOUT_MS = 120_000;

/**
 * The state the stand-in keeps: executions with their history, task queues
 * with long-polling workers, task tokens. It implements the subset of the
 * Temporal server's behaviour the SDK's worker and client depend on for
 * workflows made of activities, timers and markers: buffered events while a
 * workflow task runs, server-side activity retries with backoff, start-to-close
 * and heartbeat timeouts, activity cancellation.
 */
export class WorkflowStore {
  readonly #proto: ProtoRoot;
  readonly #opts: WorkflowStoreOptions;
  readonly #runs = new Map<string, Execution>();
  readonly #latest = new Map<string, Execution>();
  readonly #queues = new Map<string, TaskQueue>();
  readonly #tokens = new Map<string, { kind: 'workflow'; exec: Execution } | { kind: 'activity'; act: ActivityState }>();
  readonly #idleTimers = new Set<NodeJS.Timeout>();
  #taskId = 1;
  #closed = false;

  constructor(proto: ProtoRoot, opts: WorkflowStoreOptions) {
    this.#proto = proto;
    this.#opts = opts;
  }

  get #enums() {
    return this.#proto.temporal.api.enums.v1;
  }

  /** Every run, oldest first. */
  runs(): Array<{ workflowId: string; runId: string; events: IHistoryEvent[] }> {
    return [...this.#runs.values()].map((e) => ({ workflowId: e.workflowId, runId: e.runId, events: e.events }));
  }

  findRun(workflowId: string, runId?: string): Execution {
    const exec = runId ? this.#runs.get(runId) : this.#latest.get(workflowId);
    if (!exec || exec.workflowId !== workflowId) throw new GrpcStatusError(NOT_FOUND, `workflow ${workflowId} not found`);
    return exec;
  }

  /** The workflow a task token belongs to (while the token is live). */
  workflowIdOfToken(taskToken: Uint8Array): string | undefined {
    const entry = this.#tokens.get(Buffer.from(taskToken).toString('hex'));
    return entry?.kind === 'workflow' ? entry.exec.workflowId : entry?.act.exec.workflowId;
  }

  shutdown(): void {
    this.#closed = true;
    for (const t of this.#idleTimers) clearTimeout(t);
    for (const q of this.#queues.values()) {
      for (const p of q.workflowPollers.splice(0)) p.resolve(null);
      for (const p of q.activityPollers.splice(0)) p.resolve(null);
    }
    for (const exec of this.#runs.values()) {
      for (const t of exec.timers.values()) clearTimeout(t.handle);
      this.#clearTimer(exec.wft.timer);
      for (const a of exec.activities.values()) this.#clearActivityTimers(a, true);
      for (const w of exec.closeWaiters.splice(0)) w();
    }
  }

  #later(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.#idleTimers.delete(t);
      if (!this.#closed) fn();
    }, ms);
    this.#idleTimers.add(t);
    return t;
  }

  #now() {
    const ms = this.#opts.clock();
    return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
  }

  #queue(name: string): TaskQueue {
    let q = this.#queues.get(name);
    if (!q) {
      q = { workflowTasks: [], activityTasks: [], workflowPollers: [], activityPollers: [] };
      this.#queues.set(name, q);
    }
    return q;
  }

  #append(exec: Execution, type: string, attrsField: string, attrs: object): number {
    const eventId = exec.events.length + 1;
    const eventType = (this.#enums.EventType as unknown as Record<string, number>)[`EVENT_TYPE_${type}`];
    if (eventType === undefined) throw new Error(`unknown event type ${type}`);
    exec.events.push({ eventId, eventTime: this.#now(), eventType, taskId: this.#taskId++, [attrsField]: attrs } as unknown as IHistoryEvent);
    return eventId;
  }

  /** Runs `fn` now, or after the running workflow task completes (the server buffers events meanwhile). */
  #whenIdle(exec: Execution, fn: () => void): void {
    if (exec.status !== 'RUNNING') return;
    if (exec.wft.state === 'started') exec.deferred.push(fn);
    else fn();
  }

  #scheduleWorkflowTask(exec: Execution): void {
    if (exec.status !== 'RUNNING') return;
    if (exec.wft.state === 'started') {
      exec.wftWanted = true;
      return;
    }
    if (exec.wft.state === 'scheduled') return;
    const scheduledEventId = this.#append(exec, 'WORKFLOW_TASK_SCHEDULED', 'workflowTaskScheduledEventAttributes', {
      taskQueue: { name: exec.taskQueue, kind: this.#enums.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      startToCloseTimeout: duration(exec.workflowTaskTimeoutMs),
      attempt: exec.wft.attempt,
    });
    exec.wft = { ...exec.wft, state: 'scheduled', scheduledEventId };
    this.#queue(exec.taskQueue).workflowTasks.push(exec);
    this.#dispatch(exec.taskQueue);
  }

  #dispatch(queueName: string): void {
    const q = this.#queue(queueName);
    while (q.workflowPollers.length > 0 && q.workflowTasks.length > 0) q.workflowPollers.shift()!.resolve(q.workflowTasks.shift()!);
    while (q.activityPollers.length > 0 && q.activityTasks.length > 0) q.activityPollers.shift()!.resolve(q.activityTasks.shift()!);
  }

  #newToken(entry: { kind: 'workflow'; exec: Execution } | { kind: 'activity'; act: ActivityState }): string {
    const token = randomBytes(16).toString('hex');
    this.#tokens.set(token, entry);
    return token;
  }

  #poll<T extends Execution | ActivityState>(pollers: Array<Poller<T>>, tasks: T[], identity: string, signal: AbortSignal): Promise<T | null> {
    const task = tasks.shift();
    if (task) return Promise.resolve(task);
    if (this.#closed) return Promise.resolve(null);
    return new Promise<T | null>((resolve) => {
      const poller: Poller<T> = {
        identity,
        resolve: (t) => {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          resolve(t);
        },
      };
      const remove = () => {
        const i = pollers.indexOf(poller);
        if (i >= 0) pollers.splice(i, 1);
      };
      const timer = setTimeout(() => {
        remove();
        poller.resolve(null);
      }, this.#opts.longPollTimeoutMs);
      const onAbort = () => {
        remove();
        poller.resolve(null);
      };
      signal.addEventListener('abort', onAbort);
      pollers.push(poller);
    });
  }

  // --- client-facing calls --------------------------------------------------

  startWorkflowExecution(req: Req<temporal.api.workflowservice.v1.IStartWorkflowExecutionRequest>) {
    const workflowId = req.workflowId ?? '';
    const workflowType = req.workflowType?.name ?? '';
    const taskQueue = req.taskQueue?.name ?? '';
    if (!workflowId || !workflowType || !taskQueue) throw new GrpcStatusError(INVALID_ARGUMENT, 'workflowId, workflowType and taskQueue are required');
    const existing = this.#latest.get(workflowId);
    if (existing?.status === 'RUNNING') throw new GrpcStatusError(ALREADY_EXISTS, `workflow ${workflowId} is already running`);
    const runId = randomUUID();
    const runTimeoutMs = durationMs(req.workflowRunTimeout);
    let workflowTaskTimeoutMs = Math.min(durationMs(req.workflowTaskTimeout) || DEFAULT_WORKFLOW_TASK_TIMEOUT_MS, MAX_WORKFLOW_TASK_TIMEOUT_MS);
    if (runTimeoutMs > 0) workflowTaskTimeoutMs = Math.min(workflowTaskTimeoutMs, runTimeoutMs);
    const exec: Execution = {
      namespace: req.namespace ?? this.#opts.namespace,
      workflowId,
      runId,
      workflowType,
      taskQueue,
      startMs: this.#opts.clock(),
      events: [],
      status: 'RUNNING',
      wft: { state: 'none', scheduledEventId: 0, startedEventId: 0, attempt: 1 },
      workflowTaskTimeoutMs,
      wftWanted: false,
      deferred: [],
      lastCompletedStartedEventId: 0,
      activities: new Map(),
      timers: new Map(),
      closeWaiters: [],
    };
    this.#runs.set(runId, exec);
    this.#latest.set(workflowId, exec);
    this.#append(exec, 'WORKFLOW_EXECUTION_STARTED', 'workflowExecutionStartedEventAttributes', {
      workflowType: { name: workflowType },
      taskQueue: { name: taskQueue, kind: this.#enums.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      header: req.header,
      input: req.input,
      workflowExecutionTimeout: req.workflowExecutionTimeout,
      workflowRunTimeout: req.workflowRunTimeout,
      workflowTaskTimeout: duration(workflowTaskTimeoutMs),
      originalExecutionRunId: runId,
      firstExecutionRunId: runId,
      identity: req.identity,
      attempt: 1,
      memo: req.memo,
      searchAttributes: req.searchAttributes,
      workflowId,
    });
    this.#scheduleWorkflowTask(exec);
    return { runId, started: true };
  }

  async getWorkflowExecutionHistory(req: Req<temporal.api.workflowservice.v1.IGetWorkflowExecutionHistoryRequest>, signal: AbortSignal) {
    const exec = this.findRun(req.execution?.workflowId ?? '', req.execution?.runId || undefined);
    const closeOnly = req.historyEventFilterType === this.#enums.HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT;
    if (!closeOnly) return { history: { events: exec.events } };
    if (exec.status === 'RUNNING' && req.waitNewEvent) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, this.#opts.longPollTimeoutMs);
        signal.addEventListener('abort', done);
        exec.closeWaiters.push(done);
      });
    }
    if (exec.status === 'RUNNING') return { history: { events: [] }, nextPageToken: Buffer.from('wait') };
    return { history: { events: [exec.events[exec.events.length - 1]] } };
  }

  describeWorkflowExecution(req: Req<temporal.api.workflowservice.v1.IDescribeWorkflowExecutionRequest>) {
    const exec = this.findRun(req.execution?.workflowId ?? '', req.execution?.runId || undefined);
    const status = (this.#enums.WorkflowExecutionStatus as unknown as Record<string, number>)[`WORKFLOW_EXECUTION_STATUS_${exec.status}`];
    const toTs = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });
    return {
      executionConfig: { taskQueue: { name: exec.taskQueue } },
      workflowExecutionInfo: {
        execution: { workflowId: exec.workflowId, runId: exec.runId },
        type: { name: exec.workflowType },
        startTime: toTs(exec.startMs),
        closeTime: exec.closeMs === undefined ? null : toTs(exec.closeMs),
        status,
        historyLength: exec.events.length,
        taskQueue: exec.taskQueue,
      },
      pendingActivities: [...exec.activities.values()]
        .filter((a) => a.state !== 'done')
        .map((a) => ({ activityId: a.attrs.activityId, activityType: a.attrs.activityType, attempt: a.attempt, lastFailure: a.lastFailure })),
    };
  }

  terminateWorkflowExecution(req: Req<temporal.api.workflowservice.v1.ITerminateWorkflowExecutionRequest>) {
    const exec = this.findRun(req.workflowExecution?.workflowId ?? '', req.workflowExecution?.runId || undefined);
    if (exec.status !== 'RUNNING') throw new GrpcStatusError(NOT_FOUND, 'workflow execution already completed');
    this.#append(exec, 'WORKFLOW_EXECUTION_TERMINATED', 'workflowExecutionTerminatedEventAttributes', { reason: req.reason, details: req.details, identity: req.identity });
    this.#close(exec, 'TERMINATED');
    return {};
  }

  // --- worker-facing calls: workflow tasks ----------------------------------

  async pollWorkflowTaskQueue(req: Req<temporal.api.workflowservice.v1.IPollWorkflowTaskQueueRequest>, signal: AbortSignal) {
    const q = this.#queue(req.taskQueue?.name ?? '');
    let exec: Execution | null;
    do {
      exec = await this.#poll(q.workflowPollers, q.workflowTasks, req.identity ?? '', signal);
    } while (exec && (exec.status !== 'RUNNING' || exec.wft.state !== 'scheduled'));
    if (!exec) return {};
    const startedEventId = this.#append(exec, 'WORKFLOW_TASK_STARTED', 'workflowTaskStartedEventAttributes', {
      scheduledEventId: exec.wft.scheduledEventId,
      identity: req.identity,
      requestId: randomUUID(),
    });
    const token = this.#newToken({ kind: 'workflow', exec });
    // The server's start-to-close timer: a worker that dies (or stalls) holding the task loses it.
    const timer = this.#later(exec.workflowTaskTimeoutMs, () => this.#timeOutWorkflowTask(exec, token));
    exec.wft = { ...exec.wft, state: 'started', startedEventId, token, timer };
    this.#opts.onTaskStarted?.({ kind: 'workflow', workflowId: exec.workflowId, runId: exec.runId, identity: req.identity ?? '', attempt: exec.wft.attempt, scheduledEventId: exec.wft.scheduledEventId });
    return {
      taskToken: Buffer.from(token, 'hex'),
      workflowExecution: { workflowId: exec.workflowId, runId: exec.runId },
      workflowType: { name: exec.workflowType },
      previousStartedEventId: exec.lastCompletedStartedEventId,
      startedEventId,
      attempt: exec.wft.attempt,
      history: { events: exec.events },
      workflowExecutionTaskQueue: { name: exec.taskQueue, kind: this.#enums.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      scheduledTime: exec.events[exec.wft.scheduledEventId - 1]?.eventTime,
      startedTime: this.#now(),
    };
  }

  #takeWorkflowToken(taskToken: Uint8Array | null | undefined): Execution {
    const token = Buffer.from(taskToken ?? []).toString('hex');
    const entry = this.#tokens.get(token);
    this.#tokens.delete(token);
    if (!entry || entry.kind !== 'workflow' || entry.exec.wft.token !== token || entry.exec.status !== 'RUNNING') {
      throw new GrpcStatusError(NOT_FOUND, 'workflow task not found');
    }
    return entry.exec;
  }

  #finishWorkflowTask(exec: Execution): void {
    this.#clearTimer(exec.wft.timer);
    exec.wft = { state: 'none', scheduledEventId: 0, startedEventId: 0, attempt: exec.wft.attempt };
    const deferred = exec.deferred.splice(0);
    for (const fn of deferred) fn();
    if (exec.wftWanted) {
      exec.wftWanted = false;
      this.#scheduleWorkflowTask(exec);
    }
  }

  respondWorkflowTaskCompleted(req: Req<temporal.api.workflowservice.v1.IRespondWorkflowTaskCompletedRequest>) {
    const C = this.#enums.CommandType;
    const supported = new Set<number>([
      C.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
      C.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK,
      C.COMMAND_TYPE_START_TIMER,
      C.COMMAND_TYPE_CANCEL_TIMER,
      C.COMMAND_TYPE_RECORD_MARKER,
      C.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
      C.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION,
    ]);
    for (const command of req.commands ?? []) {
      if (!supported.has(command.commandType ?? 0)) {
        const name = Object.entries(C).find(([, v]) => v === command.commandType)?.[0] ?? String(command.commandType);
        throw new GrpcStatusError(UNIMPLEMENTED, `the Temporal stand-in does not support ${name}`);
      }
    }
    const exec = this.#takeWorkflowToken(req.taskToken);
    const completedId = this.#append(exec, 'WORKFLOW_TASK_COMPLETED', 'workflowTaskCompletedEventAttributes', {
      scheduledEventId: exec.wft.scheduledEventId,
      startedEventId: exec.wft.startedEventId,
      identity: req.identity,
      binaryChecksum: req.binaryChecksum,
      workerVersion: req.workerVersionStamp,
      sdkMetadata: req.sdkMetadata,
      meteringMetadata: req.meteringMetadata,
      deployment: req.deployment,
      versioningBehavior: req.versioningBehavior,
    });
    exec.lastCompletedStartedEventId = exec.wft.startedEventId;
    exec.wft.attempt = 1;
    for (const command of req.commands ?? []) {
      if (exec.status !== 'RUNNING') break;
      this.#applyCommand(exec, command, completedId);
    }
    if (req.forceCreateNewWorkflowTask) exec.wftWanted = true;
    this.#finishWorkflowTask(exec);
    return { activityTasks: [] };
  }

  respondWorkflowTaskFailed(req: Req<temporal.api.workflowservice.v1.IRespondWorkflowTaskFailedRequest>) {
    const exec = this.#takeWorkflowToken(req.taskToken);
    this.#append(exec, 'WORKFLOW_TASK_FAILED', 'workflowTaskFailedEventAttributes', {
      scheduledEventId: exec.wft.scheduledEventId,
      startedEventId: exec.wft.startedEventId,
      cause: req.cause,
      failure: req.failure,
      identity: req.identity,
    });
    this.#abandonWorkflowTask(exec);
    // The real server retries a failed workflow task; a fixed delay keeps a broken workflow from spinning.
    this.#later(this.#opts.workflowTaskRetryDelayMs, () => this.#scheduleWorkflowTask(exec));
    return {};
  }

  /**
   * The workflow task's start-to-close timer fired while `token` still held it: as the server's
   * timer queue does, record WorkflowTaskTimedOut (START_TO_CLOSE), count the attempt, and schedule
   * a new workflow task at once, for any worker. The late worker's token is dead from here on.
   */
  #timeOutWorkflowTask(exec: Execution, token: string): void {
    if (exec.status !== 'RUNNING' || exec.wft.state !== 'started' || exec.wft.token !== token) return;
    this.#tokens.delete(token);
    this.#append(exec, 'WORKFLOW_TASK_TIMED_OUT', 'workflowTaskTimedOutEventAttributes', {
      scheduledEventId: exec.wft.scheduledEventId,
      startedEventId: exec.wft.startedEventId,
      timeoutType: this.#enums.TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
    });
    this.#abandonWorkflowTask(exec);
    this.#scheduleWorkflowTask(exec);
  }

  /** A started workflow task that failed or timed out: next attempt, and the events buffered meanwhile are written. */
  #abandonWorkflowTask(exec: Execution): void {
    this.#clearTimer(exec.wft.timer);
    exec.wft = { state: 'none', scheduledEventId: 0, startedEventId: 0, attempt: exec.wft.attempt + 1 };
    const deferred = exec.deferred.splice(0);
    exec.wftWanted = false;
    for (const fn of deferred) fn();
  }

  #clearTimer(timer: NodeJS.Timeout | undefined): void {
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#idleTimers.delete(timer);
  }

  #applyCommand(exec: Execution, command: temporal.api.command.v1.ICommand, completedId: number): void {
    const C = this.#enums.CommandType;
    switch (command.commandType) {
      case C.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK:
        return this.#scheduleActivity(exec, command.scheduleActivityTaskCommandAttributes ?? {}, completedId);
      case C.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK:
        return this.#requestCancelActivity(exec, num(command.requestCancelActivityTaskCommandAttributes?.scheduledEventId), completedId);
      case C.COMMAND_TYPE_START_TIMER: {
        const a = command.startTimerCommandAttributes ?? {};
        const timerId = a.timerId ?? '';
        const startedEventId = this.#append(exec, 'TIMER_STARTED', 'timerStartedEventAttributes', {
          timerId,
          startToFireTimeout: a.startToFireTimeout,
          workflowTaskCompletedEventId: completedId,
        });
        const handle = this.#later(durationMs(a.startToFireTimeout), () =>
          this.#whenIdle(exec, () => {
            if (!exec.timers.delete(timerId)) return;
            this.#append(exec, 'TIMER_FIRED', 'timerFiredEventAttributes', { timerId, startedEventId });
            this.#scheduleWorkflowTask(exec);
          }),
        );
        exec.timers.set(timerId, { startedEventId, handle });
        return;
      }
      case C.COMMAND_TYPE_CANCEL_TIMER: {
        const timerId = command.cancelTimerCommandAttributes?.timerId ?? '';
        const timer = exec.timers.get(timerId);
        if (!timer) return;
        clearTimeout(timer.handle);
        exec.timers.delete(timerId);
        this.#append(exec, 'TIMER_CANCELED', 'timerCanceledEventAttributes', {
          timerId,
          startedEventId: timer.startedEventId,
          workflowTaskCompletedEventId: completedId,
        });
        return;
      }
      case C.COMMAND_TYPE_RECORD_MARKER: {
        const a = command.recordMarkerCommandAttributes ?? {};
        this.#append(exec, 'MARKER_RECORDED', 'markerRecordedEventAttributes', { ...a, workflowTaskCompletedEventId: completedId });
        return;
      }
      case C.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION:
        this.#append(exec, 'WORKFLOW_EXECUTION_COMPLETED', 'workflowExecutionCompletedEventAttributes', {
          result: command.completeWorkflowExecutionCommandAttributes?.result,
          workflowTaskCompletedEventId: completedId,
        });
        return this.#close(exec, 'COMPLETED');
      case C.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION:
        this.#append(exec, 'WORKFLOW_EXECUTION_FAILED', 'workflowExecutionFailedEventAttributes', {
          failure: command.failWorkflowExecutionCommandAttributes?.failure,
          retryState: this.#enums.RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET,
          workflowTaskCompletedEventId: completedId,
        });
        return this.#close(exec, 'FAILED');
    }
  }

  #close(exec: Execution, status: Execution['status']): void {
    exec.status = status;
    exec.closeMs = this.#opts.clock();
    for (const t of exec.timers.values()) clearTimeout(t.handle);
    exec.timers.clear();
    this.#clearTimer(exec.wft.timer);
    for (const a of exec.activities.values()) {
      this.#clearActivityTimers(a, true);
      a.state = 'done';
    }
    exec.deferred.length = 0;
    for (const w of exec.closeWaiters.splice(0)) w();
  }

  // --- activities -------------------------------------------------------------

  #scheduleActivity(exec: Execution, a: temporal.api.command.v1.IScheduleActivityTaskCommandAttributes, completedId: number): void {
    const rp: temporal.api.common.v1.IRetryPolicy = a.retryPolicy ?? {};
    const initialMs = durationMs(rp.initialInterval) || 1000;
    const retry = {
      initialMs,
      backoffCoefficient: rp.backoffCoefficient || 2,
      maxMs: durationMs(rp.maximumInterval) || 100 * initialMs,
      maximumAttempts: rp.maximumAttempts ?? 0,
      nonRetryable: rp.nonRetryableErrorTypes ?? [],
    };
    const startToClose = a.startToCloseTimeout ?? a.scheduleToCloseTimeout;
    const attrs = {
      activityId: a.activityId,
      activityType: a.activityType,
      taskQueue: a.taskQueue?.name ? a.taskQueue : { name: exec.taskQueue, kind: this.#enums.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      header: a.header,
      input: a.input,
      // The server fills every timeout in (zero = no limit); the SDK requires them in activity tasks.
      scheduleToCloseTimeout: a.scheduleToCloseTimeout ?? duration(0),
      scheduleToStartTimeout: a.scheduleToStartTimeout ?? a.scheduleToCloseTimeout ?? duration(0),
      startToCloseTimeout: startToClose ?? duration(0),
      heartbeatTimeout: a.heartbeatTimeout ?? duration(0),
      workflowTaskCompletedEventId: completedId,
      retryPolicy: {
        initialInterval: duration(retry.initialMs),
        backoffCoefficient: retry.backoffCoefficient,
        maximumInterval: duration(retry.maxMs),
        maximumAttempts: retry.maximumAttempts,
        nonRetryableErrorTypes: retry.nonRetryable,
      },
      priority: a.priority,
    };
    const scheduledEventId = this.#append(exec, 'ACTIVITY_TASK_SCHEDULED', 'activityTaskScheduledEventAttributes', attrs);
    const now = this.#opts.clock();
    const act: ActivityState = {
      exec,
      scheduledEventId,
      attrs,
      retry,
      attempt: 1,
      state: 'scheduled',
      firstScheduledMs: now,
      attemptScheduledMs: now,
      startedMs: 0,
      timers: [],
    };
    exec.activities.set(scheduledEventId, act);
    const T = this.#enums.TimeoutType;
    const scheduleToCloseMs = durationMs(attrs.scheduleToCloseTimeout);
    if (scheduleToCloseMs > 0) act.closeTimer = this.#later(scheduleToCloseMs, () => this.#timeOut(act, T.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE));
    this.#enqueueActivity(act);
  }

  // Each attempt waits in the queue at most its schedule-to-start timeout (the server defaults it to
  // schedule-to-close; zero = no limit).
  #enqueueActivity(act: ActivityState): void {
    const name = act.attrs.taskQueue?.name ?? '';
    this.#clearActivityTimers(act, false);
    const scheduleToStartMs = durationMs(act.attrs.scheduleToStartTimeout);
    if (scheduleToStartMs > 0) act.timers.push(this.#later(scheduleToStartMs, () => this.#timeOut(act, this.#enums.TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START)));
    this.#queue(name).activityTasks.push(act);
    this.#dispatch(name);
  }

  #clearActivityTimers(act: ActivityState, all: boolean): void {
    for (const t of act.timers) this.#clearTimer(t);
    act.timers = [];
    this.#clearTimer(act.heartbeatTimer);
    act.heartbeatTimer = undefined;
    if (all) {
      this.#clearTimer(act.closeTimer);
      act.closeTimer = undefined;
    }
  }

  #requestCancelActivity(exec: Execution, scheduledEventId: number, completedId: number): void {
    const act = exec.activities.get(scheduledEventId);
    const requestedId = this.#append(exec, 'ACTIVITY_TASK_CANCEL_REQUESTED', 'activityTaskCancelRequestedEventAttributes', {
      scheduledEventId,
      workflowTaskCompletedEventId: completedId,
    });
    if (!act || act.state === 'done') return;
    act.cancelRequestedEventId = requestedId;
    if (act.state === 'scheduled') {
      // Not running anywhere: the server cancels it by itself.
      act.state = 'done';
      this.#clearActivityTimers(act, true);
      this.#unqueue(act);
      this.#append(exec, 'ACTIVITY_TASK_CANCELED', 'activityTaskCanceledEventAttributes', {
        scheduledEventId,
        latestCancelRequestedEventId: requestedId,
        startedEventId: 0,
      });
      exec.wftWanted = true;
    }
  }

  async pollActivityTaskQueue(req: Req<temporal.api.workflowservice.v1.IPollActivityTaskQueueRequest>, signal: AbortSignal) {
    const q = this.#queue(req.taskQueue?.name ?? '');
    let act: ActivityState | null;
    do {
      act = await this.#poll(q.activityPollers, q.activityTasks, req.identity ?? '', signal);
    } while (act && (act.state !== 'scheduled' || act.exec.status !== 'RUNNING'));
    if (!act) return {};
    act.state = 'started';
    act.startedMs = this.#opts.clock();
    act.identity = req.identity ?? '';
    act.token = this.#newToken({ kind: 'activity', act });
    this.#armActivityTimers(act);
    const exec = act.exec;
    this.#opts.onTaskStarted?.({
      kind: 'activity',
      workflowId: exec.workflowId,
      runId: exec.runId,
      identity: act.identity,
      attempt: act.attempt,
      activityType: act.attrs.activityType?.name ?? '',
      scheduledEventId: act.scheduledEventId,
    });
    const toTs = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });
    return {
      taskToken: Buffer.from(act.token, 'hex'),
      workflowNamespace: exec.namespace,
      workflowType: { name: exec.workflowType },
      workflowExecution: { workflowId: exec.workflowId, runId: exec.runId },
      activityType: act.attrs.activityType,
      activityId: act.attrs.activityId,
      header: act.attrs.header,
      input: act.attrs.input,
      heartbeatDetails: act.heartbeatDetails,
      scheduledTime: toTs(act.firstScheduledMs),
      currentAttemptScheduledTime: toTs(act.attemptScheduledMs),
      startedTime: toTs(act.startedMs),
      attempt: act.attempt,
      scheduleToCloseTimeout: act.attrs.scheduleToCloseTimeout,
      startToCloseTimeout: act.attrs.startToCloseTimeout,
      heartbeatTimeout: act.attrs.heartbeatTimeout,
      retryPolicy: act.attrs.retryPolicy,
      priority: act.attrs.priority,
    };
  }

  #unqueue(act: ActivityState): void {
    const q = this.#queue(act.attrs.taskQueue?.name ?? '');
    const i = q.activityTasks.indexOf(act);
    if (i >= 0) q.activityTasks.splice(i, 1);
  }

  /** A started attempt: start-to-close from now (never extended), heartbeat from now (re-armed by each heartbeat). */
  #armActivityTimers(act: ActivityState): void {
    this.#clearActivityTimers(act, false);
    const startToCloseMs = durationMs(act.attrs.startToCloseTimeout);
    if (startToCloseMs > 0) act.timers.push(this.#later(startToCloseMs, () => this.#timeOut(act, this.#enums.TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE)));
    this.#armHeartbeatTimer(act);
  }

  #armHeartbeatTimer(act: ActivityState): void {
    this.#clearTimer(act.heartbeatTimer);
    act.heartbeatTimer = undefined;
    const heartbeatMs = durationMs(act.attrs.heartbeatTimeout);
    if (heartbeatMs > 0) act.heartbeatTimer = this.#later(heartbeatMs, () => this.#timeOut(act, this.#enums.TimeoutType.TIMEOUT_TYPE_HEARTBEAT));
  }

  /**
   * A timer fired. As the server: start-to-close and heartbeat time out a running attempt and are
   * retried like failures; schedule-to-start times out a queued attempt and schedule-to-close the
   * whole activity, and neither is retried (only StartToClose and Heartbeat timeouts are retryable).
   */
  #timeOut(act: ActivityState, timeoutType: number): void {
    if (act.state === 'done' || act.exec.status !== 'RUNNING') return;
    const T = this.#enums.TimeoutType;
    const running = timeoutType === T.TIMEOUT_TYPE_START_TO_CLOSE || timeoutType === T.TIMEOUT_TYPE_HEARTBEAT;
    if (running && act.state !== 'started') return;
    if (timeoutType === T.TIMEOUT_TYPE_SCHEDULE_TO_START && act.state !== 'scheduled') return;
    const name = TIMEOUT_NAMES[timeoutType] ?? String(timeoutType);
    const failure: IFailure = { message: `activity ${name} timeout`, source: 'Server', timeoutFailureInfo: { timeoutType, lastHeartbeatDetails: act.heartbeatDetails } };
    this.#attemptFailed(act, failure, act.identity ?? '', true);
  }

  #takeActivityToken(taskToken: Uint8Array | null | undefined): ActivityState {
    const token = Buffer.from(taskToken ?? []).toString('hex');
    const entry = this.#tokens.get(token);
    if (!entry || entry.kind !== 'activity' || entry.act.token !== token || entry.act.state !== 'started' || entry.act.exec.status !== 'RUNNING') {
      throw new GrpcStatusError(NOT_FOUND, 'activity task not found');
    }
    return entry.act;
  }

  #endAttempt(act: ActivityState): void {
    this.#tokens.delete(act.token ?? '');
    act.token = undefined;
    this.#clearActivityTimers(act, false);
  }

  #appendStarted(act: ActivityState): number {
    return this.#append(act.exec, 'ACTIVITY_TASK_STARTED', 'activityTaskStartedEventAttributes', {
      scheduledEventId: act.scheduledEventId,
      identity: act.identity,
      requestId: randomUUID(),
      attempt: act.attempt,
      lastFailure: act.lastFailure,
    });
  }

  recordActivityTaskHeartbeat(req: Req<temporal.api.workflowservice.v1.IRecordActivityTaskHeartbeatRequest>) {
    const act = this.#takeActivityToken(req.taskToken);
    act.heartbeatDetails = req.details;
    this.#armHeartbeatTimer(act);
    return { cancelRequested: act.cancelRequestedEventId !== undefined };
  }

  respondActivityTaskCompleted(req: Req<temporal.api.workflowservice.v1.IRespondActivityTaskCompletedRequest>) {
    const act = this.#takeActivityToken(req.taskToken);
    this.#endAttempt(act);
    this.#clearActivityTimers(act, true);
    act.state = 'done';
    this.#whenIdle(act.exec, () => {
      const startedEventId = this.#appendStarted(act);
      this.#append(act.exec, 'ACTIVITY_TASK_COMPLETED', 'activityTaskCompletedEventAttributes', {
        result: req.result,
        scheduledEventId: act.scheduledEventId,
        startedEventId,
        identity: req.identity,
      });
      this.#scheduleWorkflowTask(act.exec);
    });
    return {};
  }

  respondActivityTaskFailed(req: Req<temporal.api.workflowservice.v1.IRespondActivityTaskFailedRequest>) {
    const act = this.#takeActivityToken(req.taskToken);
    this.#attemptFailed(act, req.failure ?? {}, req.identity ?? '', false);
    return { failures: [] };
  }

  respondActivityTaskCanceled(req: Req<temporal.api.workflowservice.v1.IRespondActivityTaskCanceledRequest>) {
    const act = this.#takeActivityToken(req.taskToken);
    this.#endAttempt(act);
    this.#clearActivityTimers(act, true);
    act.state = 'done';
    this.#whenIdle(act.exec, () => {
      const startedEventId = this.#appendStarted(act);
      this.#append(act.exec, 'ACTIVITY_TASK_CANCELED', 'activityTaskCanceledEventAttributes', {
        details: req.details,
        latestCancelRequestedEventId: act.cancelRequestedEventId ?? 0,
        scheduledEventId: act.scheduledEventId,
        startedEventId,
        identity: req.identity,
      });
      this.#scheduleWorkflowTask(act.exec);
    });
    return {};
  }

  #attemptFailed(act: ActivityState, failure: IFailure, identity: string, timedOut: boolean): void {
    const wasStarted = act.state === 'started';
    this.#endAttempt(act);
    if (!wasStarted) this.#unqueue(act);
    const R = this.#enums.RetryState;
    const T = this.#enums.TimeoutType;
    const app = failure.applicationFailureInfo;
    const timeoutType = failure.timeoutFailureInfo?.timeoutType;
    const retryableTimeout = timeoutType === T.TIMEOUT_TYPE_START_TO_CLOSE || timeoutType === T.TIMEOUT_TYPE_HEARTBEAT;
    let retryState: number | undefined;
    if (act.cancelRequestedEventId !== undefined) retryState = R.RETRY_STATE_CANCEL_REQUESTED;
    else if (timeoutType !== undefined && timeoutType !== null && (!retryableTimeout || act.retry.nonRetryable.includes(`TemporalTimeout:${TIMEOUT_NAMES[timeoutType]}`))) {
      retryState = R.RETRY_STATE_NON_RETRYABLE_FAILURE;
    } else if (app?.nonRetryable || (app?.type && act.retry.nonRetryable.includes(app.type))) retryState = R.RETRY_STATE_NON_RETRYABLE_FAILURE;
    else if (act.retry.maximumAttempts > 0 && act.attempt >= act.retry.maximumAttempts) retryState = R.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED;
    const backoffMs = Math.min(act.retry.initialMs * act.retry.backoffCoefficient ** (act.attempt - 1), act.retry.maxMs);
    const scheduleToCloseMs = durationMs(act.attrs.scheduleToCloseTimeout);
    if (retryState === undefined && scheduleToCloseMs > 0 && this.#opts.clock() + backoffMs > act.firstScheduledMs + scheduleToCloseMs) {
      retryState = R.RETRY_STATE_TIMEOUT;
      // The server's wording when a timed-out attempt has no time left for another.
      if (timedOut) failure = { message: 'Not enough time to schedule next retry before activity ScheduleToClose timeout, giving up retrying', source: 'Server', timeoutFailureInfo: { timeoutType: T.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, lastHeartbeatDetails: act.heartbeatDetails } };
    }
    if (retryState === undefined) {
      // The server keeps the last failure (it reaches the next attempt and the ActivityTaskStarted event).
      act.lastFailure = failure;
      act.attempt += 1;
      act.state = 'scheduled';
      act.timers.push(
        this.#later(backoffMs, () => {
          if (act.state !== 'scheduled' || act.exec.status !== 'RUNNING') return;
          act.attemptScheduledMs = this.#opts.clock();
          this.#enqueueActivity(act);
        }),
      );
      return;
    }
    this.#clearActivityTimers(act, true);
    act.state = 'done';
    act.identity = identity || act.identity;
    this.#whenIdle(act.exec, () => {
      // An attempt that never started (schedule-to-start, or schedule-to-close while queued) has no started event.
      const startedEventId = wasStarted ? this.#appendStarted(act) : 0;
      const common = { failure, scheduledEventId: act.scheduledEventId, startedEventId, retryState };
      if (timedOut) this.#append(act.exec, 'ACTIVITY_TASK_TIMED_OUT', 'activityTaskTimedOutEventAttributes', common);
      else this.#append(act.exec, 'ACTIVITY_TASK_FAILED', 'activityTaskFailedEventAttributes', { ...common, identity });
      this.#scheduleWorkflowTask(act.exec);
    });
  }

  /** Answers this worker's outstanding polls with "no task", as the server does on ShutdownWorker. */
  shutdownWorker(req: Req<temporal.api.workflowservice.v1.IShutdownWorkerRequest>) {
    for (const q of this.#queues.values()) {
      for (const list of [q.workflowPollers, q.activityPollers] as Array<Array<Poller<unknown>>>) {
        for (const p of list.filter((p) => p.identity === req.identity)) {
          list.splice(list.indexOf(p), 1);
          p.resolve(null);
        }
      }
    }
    return {};
  }
}
