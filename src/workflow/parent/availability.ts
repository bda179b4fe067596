import { SealedActivityError, type SealedActivityClient } from './client.js';

/** How often an unreachable enclave is tried again: from `retryIntervalMs`, doubling up to `maxRetryIntervalMs`. */
export interface EnclaveRetryOptions {
  /** First wait after a failed connect. Default 100 ms. */
  readonly retryIntervalMs?: number;
  /** Longest wait between connects. Default 2000 ms. */
  readonly maxRetryIntervalMs?: number;
  /** Clock for the deadline (ms since the epoch). Default `Date.now`. */
  readonly clock?: () => number;
}

interface WaitOptions extends EnclaveRetryOptions {
  readonly signal?: AbortSignal | undefined;
  /** Give up after this many ms (rethrowing the last ERR_ACTIVITY_UNAVAILABLE). Default: never. */
  readonly timeoutMs?: number;
  /** Called before each wait, with the failure that caused it. */
  readonly onRetry?: (err: SealedActivityError) => void;
}

export function checkRetryOptions(o: EnclaveRetryOptions): { first: number; max: number } {
  const first = o.retryIntervalMs ?? 100;
  const max = o.maxRetryIntervalMs ?? 2000;
  if (!Number.isInteger(first) || first < 1) throw new TypeError('retryIntervalMs must be a positive integer');
  if (!Number.isInteger(max) || max < first) throw new TypeError('maxRetryIntervalMs must be an integer not below retryIntervalMs');
  return { first, max };
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('the wait for the enclave was aborted', 'AbortError');
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Resolves once `client` holds a connection to the enclave, trying again with backoff while it is
 * unreachable. Nothing is sent to the enclave, so waiting here never runs a step twice.
 */
export async function waitForEnclave(client: SealedActivityClient, options: WaitOptions = {}): Promise<void> {
  const { first, max } = checkRetryOptions(options);
  const clock = options.clock ?? Date.now;
  const deadline = options.timeoutMs === undefined ? Infinity : clock() + options.timeoutMs;
  let interval = first;
  for (;;) {
    if (options.signal?.aborted) throw abortError(options.signal);
    try {
      await client.ready();
      return;
    } catch (err) {
      if (!(err instanceof SealedActivityError) || err.code !== 'ERR_ACTIVITY_UNAVAILABLE') throw err;
      const left = deadline - clock();
      if (left <= 0) throw err;
      options.onRetry?.(err);
      await sleep(Math.min(interval, left), options.signal);
      interval = Math.min(interval * 2, max);
    }
  }
}

/** Options of {@link createEnclaveSlotSupplier}. */
export interface EnclaveSlotSupplierOptions extends EnclaveRetryOptions {
  /** The client the worker's sealed activities use (pass the same one to `createSealedActivities`). */
  readonly client: SealedActivityClient;
  /** Activity tasks this worker runs at once (what `maxConcurrentActivityTaskExecutions` would be). Default 100. */
  readonly maxSlots?: number;
  /** Told when the enclave answers (`true`: first, and again after an outage) and when it stops answering (`false`, with the reason). */
  readonly onAvailabilityChange?: (available: boolean, reason?: Error) => void;
}

/**
 * A Temporal `CustomSlotSupplier` for activity slots (structurally typed here, so this module does not
 * load `@temporalio/worker`): the worker reserves a slot before each activity poll, and this one
 * grants it only while the enclave accepts a connection.
 */
export interface EnclaveSlotSupplier {
  readonly type: 'custom';
  reserveSlot(ctx: unknown, abortSignal: AbortSignal): Promise<Record<string, never>>;
  tryReserveSlot(ctx: unknown): Record<string, never> | null;
  markSlotUsed(ctx: unknown): void;
  releaseSlot(ctx: unknown): void;
  /** Slots handed out and not yet released. */
  readonly inUse: number;
}

/**
 * An activity slot supplier for a parent's Temporal worker that stops the worker taking activity
 * tasks while its enclave is unreachable (stopped, restarting, or crashed), and starts it again
 * when the enclave accepts connections. Without it a worker whose enclave is down keeps polling,
 * takes tasks the healthy replicas could run, and fails each at once, spending the retry budget.
 * With it, tasks wait in Temporal's task queue (no attempt counted) or go to other workers.
 *
 * Use it as the worker tuner's `activityTaskSlotSupplier` (the tuner replaces the
 * `maxConcurrent*` options). Slots already reserved when the enclave goes down can still take a
 * task: `createSealedActivities` waits for the enclave (`waitForEnclaveMs`) before it fails one.
 *
 * @example
 * ```ts
 * import { Worker } from '@temporalio/worker';
 * const client = createSealedActivityClient({ address: { family: 'vsock', cid: 16, port: 5005 } });
 * const worker = await Worker.create({
 *   taskQueue: 'agents',
 *   workflowsPath,
 *   activities: createSealedActivities({ client, names: ['research', 'analysis', 'report'] }),
 *   tuner: {
 *     workflowTaskSlotSupplier: { type: 'fixed-size', numSlots: 100 },
 *     activityTaskSlotSupplier: createEnclaveSlotSupplier({ client }),
 *     localActivityTaskSlotSupplier: { type: 'fixed-size', numSlots: 100 },
 *     nexusTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
 *   },
 * });
 * ```
 */
export function createEnclaveSlotSupplier(options: EnclaveSlotSupplierOptions): EnclaveSlotSupplier {
  if (!options || typeof options !== 'object' || !options.client || typeof options.client.ready !== 'function') throw new TypeError('client must be a SealedActivityClient');
  const maxSlots = options.maxSlots ?? 100;
  if (!Number.isInteger(maxSlots) || maxSlots < 1) throw new TypeError('maxSlots must be a positive integer');
  checkRetryOptions(options);
  const { client } = options;
  let inUse = 0;
  let available: boolean | undefined;
  const waiting: Array<() => void> = [];
  const report = (up: boolean, reason?: Error) => {
    if (available === up) return;
    available = up;
    options.onAvailabilityChange?.(up, reason);
  };
  const freeSlot = (signal: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      if (inUse < maxSlots) return resolve();
      const wake = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = waiting.indexOf(wake);
        if (i >= 0) waiting.splice(i, 1);
        reject(abortError(signal));
      };
      waiting.push(wake);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  return {
    type: 'custom',
    async reserveSlot(_ctx, abortSignal) {
      for (;;) {
        await freeSlot(abortSignal);
        await waitForEnclave(client, { ...options, signal: abortSignal, onRetry: (err) => report(false, err) });
        // Another reservation may have taken the slot while this one waited for the enclave.
        if (inUse < maxSlots) break;
      }
      report(true);
      inUse += 1;
      return {};
    },
    tryReserveSlot() {
      if (inUse >= maxSlots || !client.connected) return null;
      inUse += 1;
      return {};
    },
    markSlotUsed() {},
    releaseSlot() {
      inUse = Math.max(0, inUse - 1);
      waiting.shift()?.();
    },
    get inUse() {
      return inUse;
    },
  };
}
