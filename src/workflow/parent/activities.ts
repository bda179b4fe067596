import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { SocketAddress } from '../../vsock/connect.js';
import { checkRetryOptions, waitForEnclave, type EnclaveRetryOptions } from './availability.js';
import { createSealedActivityClient, SealedActivityError, type SealedActivityClient, type SealedActivityClientOptions } from './client.js';

/**
 * A Temporal activity that forwards a sealed state to the enclave and returns the next sealed state.
 * The workflow calls it as `activity(state, seq)`: the sealed state and this step's sequence number
 * (the state's binding must say the same). Positional on purpose: Temporal's default converter keeps
 * only a top-level `Uint8Array` argument binary (`binary/plain`); inside an object it would go through
 * JSON and arrive as `{"0": …, "1": …}`.
 */
export type SealedActivity = (state: Uint8Array, seq: number) => Promise<Uint8Array>;

/** Options of {@link createSealedActivities}: the enclave's address (or a ready client), the activity names and a per-call timeout. */
export interface CreateSealedActivitiesOptions<N extends string> {
  /** The enclave's sealed-activity server (vsock in production). Ignored when `client` is given. */
  readonly address?: SocketAddress;
  /** Activity names: each must be a handler in the enclave's `serveSealedActivities`. */
  readonly names: readonly N[];
  /** Per call: no answer in this many ms → retryable ERR_ACTIVITY_TIMEOUT (the enclave is told to cancel). Default 0: rely on Temporal's timeouts. */
  readonly timeoutMs?: number;
  /** Share one client (one multiplexed connection) between activity sets, or close it on shutdown. */
  readonly client?: SealedActivityClient;
  /** Passed to the client this creates when `client` is not given. */
  readonly clientOptions?: Omit<SealedActivityClientOptions, 'address'>;
  /**
   * While the enclave cannot be reached *before* a step is sent (stopped, restarting), wait for it
   * this long, heartbeating, instead of failing the attempt at once; at most half the activity's
   * start-to-close timeout. Nothing has reached the enclave, so the wait never runs a step twice.
   * 0 fails at once. Default 30 000.
   */
  readonly waitForEnclaveMs?: number;
  /** How often the enclave is tried again meanwhile (default from 100 ms, doubling up to 2 s). */
  readonly enclaveRetry?: EnclaveRetryOptions;
}

/**
 * Temporal activity implementations for the parent's worker: each forwards the sealed state to
 * the enclave (workflow id from the activity's Temporal info, activity name = its key) and returns
 * the enclave's sealed answer. The parent holds no key and sees no plaintext.
 *
 * Failures, mapped to Temporal:
 * - enclave unreachable before the step is sent → it waits for the enclave (`waitForEnclaveMs`,
 *   heartbeating), and only then fails;
 * - enclave unreachable after that wait, connection lost mid-step (restart), `timeoutMs` → retryable
 *   `ApplicationFailure` whose `type` is the code (ERR_ACTIVITY_UNAVAILABLE, ERR_ACTIVITY_TIMEOUT);
 * - the handler threw → non-retryable `ApplicationFailure`, type ERR_ACTIVITY_HANDLER_FAILED,
 *   `details: [sealedDetails, handlerCode]` (details readable only in an enclave);
 * - binding refusals, bad frames, unknown handler, too large, wrong key → non-retryable, type = code;
 * - cancellation (delivered through heartbeats) → a CANCEL frame to the enclave, then `CancelledFailure`.
 * The enclave's heartbeats during long steps become `Context.current().heartbeat()`.
 *
 * @example
 * ```ts
 * import { Worker } from '@temporalio/worker';
 * const activities = createSealedActivities({ address: { family: 'vsock', cid: 16, port: 5005 }, names: ['research', 'analysis', 'report'] });
 * const worker = await Worker.create({ taskQueue: 'agents', workflowsPath, activities });
 * ```
 */
export function createSealedActivities<N extends string>(options: CreateSealedActivitiesOptions<N>): Record<N, SealedActivity> {
  if (!options || typeof options !== 'object') throw new TypeError('options must be an object');
  if (!Array.isArray(options.names) || options.names.length === 0 || options.names.some((n) => typeof n !== 'string' || !n)) throw new TypeError('names must list at least one activity name');
  const timeoutMs = options.timeoutMs ?? 0;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0) throw new TypeError('timeoutMs must be a non-negative integer');
  if (!options.client && !options.address) throw new TypeError('address (or client) is required');
  const waitForEnclaveMs = options.waitForEnclaveMs ?? 30_000;
  if (!Number.isInteger(waitForEnclaveMs) || waitForEnclaveMs < 0) throw new TypeError('waitForEnclaveMs must be a non-negative integer');
  const enclaveRetry = options.enclaveRetry ?? {};
  checkRetryOptions(enclaveRetry);
  const client = options.client ?? createSealedActivityClient({ ...options.clientOptions, address: options.address! });
  const activities = {} as Record<N, SealedActivity>;
  const names: readonly N[] = options.names;
  for (const name of names) {
    const activity: SealedActivity = async (state, seq) => {
      const ctx = Context.current();
      if (!(state instanceof Uint8Array) || !Number.isSafeInteger(seq) || seq < 0) {
        throw ApplicationFailure.nonRetryable(`${name}: arguments must be (state: Uint8Array, seq: non-negative integer)`, 'TypeError');
      }
      const workflowId = ctx.info.workflowExecution?.workflowId;
      if (!workflowId) throw ApplicationFailure.nonRetryable(`${name}: a sealed activity runs only inside a workflow (its state is bound to the workflow id)`, 'TypeError');
      try {
        const startToCloseMs = ctx.info.startToCloseTimeoutMs;
        const waitMs = startToCloseMs > 0 ? Math.min(waitForEnclaveMs, Math.floor(startToCloseMs / 2)) : waitForEnclaveMs;
        if (waitMs > 0) {
          // Heartbeats keep the attempt alive while it waits, and bring cancellation.
          await waitForEnclave(client, { ...enclaveRetry, signal: ctx.cancellationSignal, timeoutMs: waitMs, onRetry: () => ctx.heartbeat() });
        }
        const result = await client.call(
          { activity: name, workflowId, seq, state },
          { signal: ctx.cancellationSignal, timeoutMs, onHeartbeat: () => ctx.heartbeat() },
        );
        return result.state;
      } catch (err) {
        throw toTemporalFailure(err, ctx.cancellationSignal);
      }
    };
    Object.defineProperty(activity, 'name', { value: name });
    activities[name] = activity;
  }
  return activities;
}

function toTemporalFailure(err: unknown, signal: AbortSignal): Error {
  if (signal.aborted && !(err instanceof SealedActivityError)) {
    return signal.reason instanceof CancelledFailure ? signal.reason : new CancelledFailure('the activity was cancelled while it waited for the enclave');
  }
  if (!(err instanceof SealedActivityError)) return err as Error;
  if (err.code === 'ERR_ACTIVITY_CANCELLED' && signal.aborted) {
    return signal.reason instanceof CancelledFailure ? signal.reason : new CancelledFailure('the activity was cancelled; the enclave was told to stop');
  }
  const details: unknown[] = err.details ? [err.details, err.handlerCode ?? null] : [];
  return ApplicationFailure.create({ message: err.message, type: err.code, nonRetryable: !err.retryable, details, cause: err });
}
