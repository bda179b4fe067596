import { describe, expect, it } from 'vitest';
import { NitroEnclaveError } from '../../src/errors.js';
import { withRetry } from '../../src/kms/retry.js';

const throttled = () => Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $fault: 'client' });
const denied = () => Object.assign(new Error('not authorized'), { name: 'AccessDeniedException', $fault: 'client' });
const reset = () => new NitroEnclaveError('ERR_VSOCK_RESET', 'the remote side reset the stream');
const refused = () => new NitroEnclaveError('ERR_VSOCK_CONNECT', 'connection refused (ECONNREFUSED)');

/** No waiting between attempts: jitter of 0. */
const instant = { random: () => 0 };
const far = () => Date.now() + 60_000;

async function codeOf(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(NitroEnclaveError);
  return (err as NitroEnclaveError).code;
}

describe('withRetry', () => {
  it('retries throttling and 5xx until an attempt succeeds', async () => {
    const seen: number[] = [];
    const serverError = Object.assign(new Error('boom'), { name: 'KMSInternalException', $metadata: { httpStatusCode: 500 } });
    const result = await withRetry(
      async (_signal, attempt) => {
        seen.push(attempt);
        if (attempt === 1) throw throttled();
        if (attempt === 2) throw serverError;
        return 'ok';
      },
      {},
      { operation: 'Decrypt', deadline: far(), ...instant },
    );
    expect(result).toBe('ok');
    expect(seen).toEqual([1, 2, 3]);
  });

  it('never retries what KMS decided: AccessDenied is mapped on the first attempt', async () => {
    let attempts = 0;
    const p = withRetry(
      async () => {
        attempts++;
        throw denied();
      },
      {},
      { operation: 'Decrypt', deadline: far(), ...instant },
    );
    expect(await codeOf(p)).toBe('ERR_KMS_ACCESS_DENIED');
    expect(attempts).toBe(1);
  });

  it('gives up after maxAttempts with ERR_KMS_UNAVAILABLE naming the last error', async () => {
    let attempts = 0;
    const err = await withRetry(
      async () => {
        attempts++;
        throw throttled();
      },
      { maxAttempts: 3 },
      { operation: 'Decrypt', deadline: far(), ...instant },
    ).catch((e: NitroEnclaveError) => e);
    expect(attempts).toBe(3);
    expect(err.code).toBe('ERR_KMS_UNAVAILABLE');
    expect(err.message).toBe('KMS Decrypt failed after 3 attempts (last error: ThrottlingException: Rate exceeded)');
  });

  it('a proxy that stays unreachable keeps its vsock code and hint after the retries', async () => {
    const p = withRetry(async () => Promise.reject(refused()), { maxAttempts: 2 }, { operation: 'Decrypt', deadline: far(), ...instant });
    expect(await codeOf(p)).toBe('ERR_VSOCK_CONNECT');
  });

  it('backs off with full jitter, doubling from baseDelayMs up to maxDelayMs', async () => {
    const delays: number[] = [];
    const start = Date.now();
    let last = start;
    await withRetry(
      async (_signal, attempt) => {
        const t = Date.now();
        if (attempt > 1) delays.push(t - last);
        last = t;
        if (attempt < 4) throw reset();
        return 'ok';
      },
      { baseDelayMs: 40, maxDelayMs: 80 },
      // random() = 1: the full ceiling each time, so the delays are 40, 80, 80 ms.
      { operation: 'Decrypt', deadline: far(), random: () => 1 },
    );
    expect(delays).toHaveLength(3);
    expect(delays[0]).toBeGreaterThanOrEqual(35);
    expect(delays[1]).toBeGreaterThanOrEqual(75);
    expect(delays[2]).toBeGreaterThanOrEqual(75);
    expect(delays[2]).toBeLessThan(delays[1]! + 200);
  });

  it('stops at the deadline with ERR_KMS_TIMEOUT, cancelling the attempt in flight', async () => {
    let attemptSignal: AbortSignal | undefined;
    const err = await withRetry<never>(
      (signal) => {
        attemptSignal = signal;
        return new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(Object.assign(new Error('aborted'), { name: 'AbortError' }))));
      },
      {},
      { operation: 'Decrypt', deadline: Date.now() + 50, ...instant },
    ).catch((e: NitroEnclaveError) => e);
    expect(err.code).toBe('ERR_KMS_TIMEOUT');
    expect(err.message).toMatch(/^KMS Decrypt did not succeed before the deadline \(last error: AbortError: aborted\)$/);
    expect(attemptSignal?.aborted).toBe(true);
  });

  it("the caller's signal ends it with ERR_KMS_ABORTED, during an attempt or a backoff", async () => {
    const during = new AbortController();
    const p1 = withRetry(
      (signal) => {
        setTimeout(() => during.abort(new Error('caller gave up')), 10);
        return new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
      },
      {},
      { operation: 'Decrypt', deadline: far(), signal: during.signal, ...instant },
    );
    expect(await codeOf(p1)).toBe('ERR_KMS_ABORTED');

    const backoff = new AbortController();
    let attempts = 0;
    const p2 = withRetry(
      async () => {
        attempts++;
        setTimeout(() => backoff.abort(), 10);
        throw reset();
      },
      { baseDelayMs: 10_000, maxDelayMs: 10_000 },
      { operation: 'Decrypt', deadline: far(), signal: backoff.signal, random: () => 1 },
    );
    expect(await codeOf(p2)).toBe('ERR_KMS_ABORTED');
    expect(attempts).toBe(1);
  });

  it('an already-passed deadline makes no second attempt', async () => {
    let attempts = 0;
    const p = withRetry(
      async () => {
        attempts++;
        throw throttled();
      },
      {},
      { operation: 'Decrypt', deadline: Date.now() - 1, ...instant },
    );
    expect(await codeOf(p)).toBe('ERR_KMS_TIMEOUT');
    expect(attempts).toBe(1);
  });
});
