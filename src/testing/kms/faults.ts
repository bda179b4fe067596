/** One queued misbehaviour of the simulator's HTTP layer. */
export type Fault =
  | { kind: 'throttle' }
  | { kind: 'internal-error'; status: number }
  | { kind: 'reset' }
  | { kind: 'truncate' };

interface Queued {
  fault: Fault;
  remaining: number;
  operation: string | undefined;
}

/**
 * Fault injection for reliability tests. Each call queues a fault for the
 * next `count` matching requests (optionally one operation only); latency
 * applies to every response until cleared.
 *
 * @example
 * ```ts
 * kms.faults.throttle(2, 'Decrypt').latency(50);
 * // … then kms.faults.clear();
 * ```
 */
export class FaultInjector {
  private queue: Queued[] = [];
  private hooks: Array<{ operation: string; run: () => Promise<void> | void }> = [];
  /** Milliseconds added before every response. */
  latencyMs = 0;

  /**
   * Runs `run` (awaited) before the simulator handles the next request of
   * `operation`, e.g. another client's call that lands between a read and a
   * write: a race, made deterministic.
   */
  before(operation: string, run: () => Promise<void> | void): this {
    this.hooks.push({ operation, run });
    return this;
  }

  /** Takes the hook for this request, if any. */
  takeHook(operation: string): (() => Promise<void> | void) | undefined {
    const i = this.hooks.findIndex((h) => h.operation === operation);
    return i < 0 ? undefined : this.hooks.splice(i, 1)[0]!.run;
  }

  /** The next `count` requests get `ThrottlingException` (HTTP 400). */
  throttle(count = 1, operation?: string): this {
    return this.push({ kind: 'throttle' }, count, operation);
  }

  /** The next `count` requests get `KMSInternalException` with this HTTP status (default 500). */
  internalError(count = 1, status = 500, operation?: string): this {
    return this.push({ kind: 'internal-error', status }, count, operation);
  }

  /** The next `count` responses are cut off by a connection reset after the headers. */
  resetConnection(count = 1, operation?: string): this {
    return this.push({ kind: 'reset' }, count, operation);
  }

  /** The next `count` responses announce a longer body than they send. */
  truncateBody(count = 1, operation?: string): this {
    return this.push({ kind: 'truncate' }, count, operation);
  }

  latency(ms: number): this {
    if (!Number.isFinite(ms) || ms < 0) throw new TypeError('latency must be a non-negative number of milliseconds');
    this.latencyMs = ms;
    return this;
  }

  clear(): void {
    this.queue = [];
    this.hooks = [];
    this.latencyMs = 0;
  }

  /** Takes the fault for this request, if any. */
  take(operation: string): Fault | undefined {
    const entry = this.queue.find((q) => q.operation === undefined || q.operation === operation);
    if (!entry) return undefined;
    if (--entry.remaining === 0) this.queue.splice(this.queue.indexOf(entry), 1);
    return entry.fault;
  }

  private push(fault: Fault, count: number, operation: string | undefined): this {
    if (!Number.isInteger(count) || count < 1) throw new TypeError('count must be a positive integer');
    this.queue.push({ fault, remaining: count, operation });
    return this;
  }
}
