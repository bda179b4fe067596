import { NitroEnclaveError } from '../errors.js';
import { isRetryable, mapKmsError } from './kms-errors.js';

/** How attested KMS calls retry throttling, 5xx and transport resets: full-jitter exponential backoff within the deadline. */
export interface RetryPolicy {
  /** Upper bound on attempts. Default 8. */
  maxAttempts?: number;
  /** First backoff ceiling in ms (full jitter, doubling). Default 100. */
  baseDelayMs?: number;
  /** Largest backoff ceiling in ms. Default 2000. */
  maxDelayMs?: number;
}

export interface RetryContext {
  operation: string;
  /** Absolute deadline (ms since epoch). */
  deadline: number;
  signal?: AbortSignal;
  random?: () => number;
  /** The caller's time source (the same clock as the deadline). Default `() => new Date()`. */
  clock?: () => Date;
  /** Sees every failed attempt's error. */
  onAttemptError?: (err: unknown) => void;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** `CODE: message` of a failed attempt, for the error that reports it (KMS never echoes key material). */
export function describeError(err: unknown): string {
  return err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err);
}

/**
 * Runs `fn` until it succeeds, a non-retryable error occurs, attempts run out,
 * or the deadline passes. Retries throttling, 5xx and transport failures with
 * full-jitter exponential backoff; never retries what KMS decided (AccessDenied…).
 */
export async function withRetry<T>(fn: (signal: AbortSignal, attempt: number) => Promise<T>, policy: RetryPolicy, ctx: RetryContext): Promise<T> {
  const maxAttempts = policy.maxAttempts ?? 8;
  const base = policy.baseDelayMs ?? 100;
  const cap = policy.maxDelayMs ?? 2000;
  const clock = ctx.clock;
  const now = clock ? () => clock().getTime() : Date.now;
  const random = ctx.random ?? Math.random;
  const remaining = Math.max(0, ctx.deadline - now());
  const deadline = AbortSignal.timeout(remaining);
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, deadline]) : deadline;
  let last: unknown;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    try {
      return await fn(signal, attempt);
    } catch (err) {
      ctx.onAttemptError?.(err);
      if (ctx.signal?.aborted) throw new NitroEnclaveError('ERR_KMS_ABORTED', `KMS ${ctx.operation} was aborted`, { cause: ctx.signal.reason });
      // An attempt cut short by our own deadline says nothing new: report the failure before it.
      if (deadline.aborted) {
        last ??= err;
        break;
      }
      last = err;
      if (!isRetryable(err)) throw mapKmsError(err, ctx.operation);
      if (attempt === maxAttempts) break;
      // The deadline is read on the caller's clock, so an injected clock bounds retries as it bounds the rest.
      if (now() >= ctx.deadline) break;
      const delay = Math.min(cap, base * 2 ** (attempt - 1)) * random();
      try {
        await sleep(Math.min(delay, Math.max(0, ctx.deadline - now())), signal);
      } catch {
        if (ctx.signal?.aborted) throw new NitroEnclaveError('ERR_KMS_ABORTED', `KMS ${ctx.operation} was aborted`, { cause: ctx.signal.reason });
        break;
      }
    }
  }
  // An unreachable proxy keeps its own code (and hint) after the retries.
  if (last instanceof NitroEnclaveError && last.code.startsWith('ERR_VSOCK_')) throw last;
  const lastText = describeError(last);
  if (deadline.aborted || now() >= ctx.deadline) {
    throw new NitroEnclaveError('ERR_KMS_TIMEOUT', `KMS ${ctx.operation} did not succeed before the deadline (last error: ${lastText})`, { cause: last });
  }
  throw new NitroEnclaveError('ERR_KMS_UNAVAILABLE', `KMS ${ctx.operation} failed after ${maxAttempts} attempts (last error: ${lastText})`, { cause: last });
}
