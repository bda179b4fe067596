import { createRequire } from 'node:module';
import type * as Grpc from '@grpc/grpc-js';
import type { temporal } from '@temporalio/proto';
import { loadProto, workflowServiceMethods } from './proto.js';
import { GrpcStatusError, WorkflowStore, type StartedTask } from './store.js';

export type { StartedTask } from './store.js';

/** Options of {@link startTemporalStandIn}. */
export interface TemporalStandInOptions {
  /** Namespace reported by DescribeNamespace. Default `default`. */
  namespace?: string;
  /** Port on 127.0.0.1. Default 0 (any free port). */
  port?: number;
  /** How long an empty long poll (task queue, workflow result) is held. Default 10 000 ms. */
  longPollTimeoutMs?: number;
  /** Delay before a failed workflow task is scheduled again. Default 1 000 ms. */
  workflowTaskRetryDelayMs?: number;
  /** Clock for event times (a long-lived object's `clock`, as everywhere in the SDK). Default `() => new Date()`. */
  clock?: () => Date;
  /**
   * Called synchronously each time a workflow or activity task is handed to a worker, before the
   * answer to its poll is sent: a test can kill that worker (by the pid in its identity) while it
   * holds the task, deterministically. Must not throw.
   */
  onTaskStarted?: (task: StartedTask) => void;
}

/** One request the stand-in received, as the bytes that came over the wire. */
export interface RecordedCall {
  method: string;
  request: Uint8Array;
  /** The workflow the request concerns, when it names one or carries a live task token. */
  workflowId?: string;
}

/** A running in-process Temporal `WorkflowService`. */
export interface TemporalStandIn {
  /** `127.0.0.1:PORT`, for `Connection.connect({ address })` and `NativeConnection.connect({ address })`. */
  readonly address: string;
  readonly namespace: string;
  /** The history of a run (latest run of `workflowId` without `runId`), as a `temporal.api.history.v1.History` message. */
  history(workflowId: string, runId?: string): temporal.api.history.v1.History;
  /** Every run the server stored, encoded as History protos (what a real server would persist). */
  storedHistories(): Array<{ workflowId: string; runId: string; history: Uint8Array }>;
  /** Every request received, in order (a superset of what is stored: it includes retried attempts' failures). */
  recordedCalls(): readonly RecordedCall[];
  /**
   * Whether any stored history or any received request contains `needle` (UTF-8 for strings);
   * with `workflowId`, only that workflow's histories and the requests about it.
   */
  sawBytes(needle: Uint8Array | string, options?: { workflowId?: string }): boolean;
  /** Names of WorkflowService methods that were called but are not implemented by the stand-in. */
  readonly unimplementedCalls: readonly string[];
  close(): Promise<void>;
}

type Handler = (request: never, signal: AbortSignal) => unknown;
type RequestShape = {
  workflowId?: string;
  execution?: { workflowId?: string } | null;
  workflowExecution?: { workflowId?: string } | null;
  taskToken?: Uint8Array;
};

/**
 * Starts an in-process gRPC Temporal `WorkflowService` on 127.0.0.1, for tests
 * and demos where no Temporal server is available. It speaks the real wire
 * protocol (the protos shipped with `@temporalio/proto`), so the real
 * `@temporalio/client` and the Rust-core `@temporalio/worker` connect to it
 * unchanged. It keeps a real event history per run and supports workflows
 * made of activities (sequential or parallel, with server-side retries,
 * the four activity timeouts, heartbeats and cancellation), timers and
 * markers. A workflow task not answered within the run's workflow task
 * timeout (requested by the client, default 10 s, at most 120 s) times out
 * and is handed to any worker again, as on the server, so a worker killed
 * while holding one strands nothing. It does not implement sticky task
 * queues: run workers with `maxCachedWorkflows: 0`.
 * Signals, queries, updates, child workflows, continue-as-new, visibility and
 * persistence are not implemented (such calls fail with `UNIMPLEMENTED` and
 * are listed in `unimplementedCalls`).
 *
 * Requires the optional peer dependencies `@grpc/grpc-js` and `@temporalio/proto`.
 *
 * @example
 * ```ts
 * import { startTemporalStandIn } from 'nitro-enclave-sdk/testing/temporal';
 * import { Connection, Client } from '@temporalio/client';
 *
 * const server = await startTemporalStandIn();
 * const client = new Client({ connection: await Connection.connect({ address: server.address }) });
 * // ... run a Worker with NativeConnection.connect({ address: server.address }) and maxCachedWorkflows: 0
 * const history = server.history('my-workflow-id');
 * console.log(server.sawBytes('secret')); // false when the workflow's data is sealed
 * await server.close();
 * ```
 */
export async function startTemporalStandIn(options: TemporalStandInOptions = {}): Promise<TemporalStandIn> {
  const namespace = options.namespace ?? 'default';
  const longPollTimeoutMs = options.longPollTimeoutMs ?? 10_000;
  if (!Number.isInteger(longPollTimeoutMs) || longPollTimeoutMs <= 0) throw new TypeError('longPollTimeoutMs must be a positive integer');
  const require = createRequire(import.meta.url);
  const grpc = require('@grpc/grpc-js') as typeof Grpc;
  const proto = loadProto();
  const store = new WorkflowStore(proto, {
    namespace,
    longPollTimeoutMs,
    workflowTaskRetryDelayMs: options.workflowTaskRetryDelayMs ?? 1000,
    clock: options.clock ? () => options.clock!().getTime() : Date.now,
    ...(options.onTaskStarted ? { onTaskStarted: options.onTaskStarted } : {}),
  });
  const calls: RecordedCall[] = [];
  const unimplementedCalls: string[] = [];
  const enums = proto.temporal.api.enums.v1;

  const handlers: Record<string, Handler> = {
    GetSystemInfo: () => ({
      serverVersion: '1.0.0-nitro-enclave-sdk-stand-in',
      capabilities: {
        signalAndQueryHeader: true,
        internalErrorDifferentiation: true,
        activityFailureIncludeHeartbeat: true,
        encodedFailureAttributes: true,
        sdkMetadata: true,
        upsertMemo: true,
      },
    }),
    DescribeNamespace: (req: temporal.api.workflowservice.v1.IDescribeNamespaceRequest) => {
      if (req.namespace && req.namespace !== namespace) throw new GrpcStatusError(grpc.status.NOT_FOUND, `namespace ${req.namespace} not found`);
      return {
        namespaceInfo: { name: namespace, id: '00000000-0000-4000-8000-000000000000', state: enums.NamespaceState.NAMESPACE_STATE_REGISTERED },
        config: { workflowExecutionRetentionTtl: { seconds: 86_400 } },
      };
    },
    StartWorkflowExecution: (req) => store.startWorkflowExecution(req),
    GetWorkflowExecutionHistory: (req, signal) => store.getWorkflowExecutionHistory(req, signal),
    DescribeWorkflowExecution: (req) => store.describeWorkflowExecution(req),
    TerminateWorkflowExecution: (req) => store.terminateWorkflowExecution(req),
    PollWorkflowTaskQueue: (req, signal) => store.pollWorkflowTaskQueue(req, signal),
    RespondWorkflowTaskCompleted: (req) => store.respondWorkflowTaskCompleted(req),
    RespondWorkflowTaskFailed: (req) => store.respondWorkflowTaskFailed(req),
    PollActivityTaskQueue: (req, signal) => store.pollActivityTaskQueue(req, signal),
    RecordActivityTaskHeartbeat: (req) => store.recordActivityTaskHeartbeat(req),
    RespondActivityTaskCompleted: (req) => store.respondActivityTaskCompleted(req),
    RespondActivityTaskFailed: (req) => store.respondActivityTaskFailed(req),
    RespondActivityTaskCanceled: (req) => store.respondActivityTaskCanceled(req),
    ShutdownWorker: (req) => store.shutdownWorker(req),
  };

  const definition: Record<string, Grpc.MethodDefinition<Uint8Array, unknown>> = {};
  const implementation: Grpc.UntypedServiceImplementation = {};
  for (const method of workflowServiceMethods(proto)) {
    if (method.requestStream || method.responseStream) continue;
    const requestType = method.resolvedRequestType!;
    const responseType = method.resolvedResponseType!;
    definition[method.name] = {
      path: `/temporal.api.workflowservice.v1.WorkflowService/${method.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (value: Uint8Array) => Buffer.from(value),
      requestDeserialize: (bytes: Buffer) => new Uint8Array(bytes),
      responseSerialize: (value: unknown) => Buffer.from(responseType.encode(value).finish()),
      responseDeserialize: (bytes: Buffer) => responseType.decode(bytes),
    };
    const handler = handlers[method.name];
    implementation[method.name] = (call: Grpc.ServerUnaryCall<Uint8Array, unknown>, callback: Grpc.sendUnaryData<unknown>) => {
      const recorded: RecordedCall = { method: method.name, request: call.request };
      calls.push(recorded);
      if (!handler) {
        unimplementedCalls.push(method.name);
        callback({ code: grpc.status.UNIMPLEMENTED, details: `the Temporal stand-in does not implement ${method.name}` });
        return;
      }
      const abort = new AbortController();
      call.once('cancelled', () => abort.abort());
      Promise.resolve()
        .then(() => {
          const request = requestType.decode(call.request) as RequestShape;
          const workflowId =
            request.workflowId || request.execution?.workflowId || request.workflowExecution?.workflowId || (request.taskToken?.length ? store.workflowIdOfToken(request.taskToken) : undefined);
          if (workflowId) recorded.workflowId = workflowId;
          return handler(request as never, abort.signal);
        })
        .then(
          (response) => callback(null, response),
          (err: unknown) => {
            if (err instanceof GrpcStatusError) callback({ code: err.grpcCode, details: err.message });
            else callback({ code: grpc.status.INTERNAL, details: err instanceof Error ? err.message : String(err) });
          },
        );
    };
  }

  const server = new grpc.Server();
  server.addService(definition, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${options.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const History = proto.temporal.api.history.v1.History;

  const encodeHistory = (events: temporal.api.history.v1.IHistoryEvent[]) => History.encode({ events }).finish();
  return {
    address: `127.0.0.1:${port}`,
    namespace,
    history(workflowId, runId) {
      const exec = store.findRun(workflowId, runId);
      return History.decode(encodeHistory(exec.events));
    },
    storedHistories() {
      return store.runs().map((r) => ({ workflowId: r.workflowId, runId: r.runId, history: encodeHistory(r.events) }));
    },
    recordedCalls: () => calls,
    sawBytes(needle, { workflowId } = {}) {
      const n = typeof needle === 'string' ? Buffer.from(needle, 'utf8') : Buffer.from(needle);
      if (n.length === 0) throw new TypeError('needle must not be empty');
      const mine = (id: string | undefined) => workflowId === undefined || id === workflowId;
      return (
        store.runs().some((r) => mine(r.workflowId) && Buffer.from(encodeHistory(r.events)).includes(n)) ||
        calls.some((c) => mine(c.workflowId) && Buffer.from(c.request.buffer, c.request.byteOffset, c.request.byteLength).includes(n))
      );
    },
    unimplementedCalls,
    async close() {
      store.shutdown();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 2000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}
