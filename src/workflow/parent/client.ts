import type { Duplex } from 'node:stream';
import { NitroEnclaveError, type NitroEnclaveErrorCode } from '../../errors.js';
import { connectSocket, type SocketAddress } from '../../vsock/connect.js';
import { CONNECTION_ID, DEFAULT_MAX_MESSAGE_BYTES, decodeError, decodeResult, encodeCallPrefix, FRAME, frameHeader, FrameReader } from '../protocol.js';

/** An answer from the enclave. */
export interface SealedCallResult {
  /** The next state, sealed by the enclave: opaque here. */
  readonly state: Uint8Array;
  /** The enclave's attestation document, when asked for (nonce = the call's, user_data = SHA-256 of `state`). */
  readonly attestation?: Uint8Array;
}

/**
 * A failure the enclave reported, or a transport failure. `details` are sealed (handler failures).
 *
 * @example
 * ```ts
 * try {
 *   await client.call({ activity: 'analysis', workflowId, seq: 1, state });
 * } catch (err) {
 *   if (err instanceof SealedActivityError && err.retryable) scheduleRetry();
 *   else throw err;
 * }
 * ```
 */
export class SealedActivityError extends NitroEnclaveError {
  /** Worth retrying: the enclave was unreachable, restarted, overloaded, or did not answer (or receive) in time. */
  readonly retryable: boolean;
  /** The handler's own error code, when it threw one that is a plain identifier. */
  readonly handlerCode: string | undefined;
  /** Sealed error details (ERR_ACTIVITY_HANDLER_FAILED), readable only inside an enclave. */
  readonly details: Uint8Array | undefined;

  constructor(code: NitroEnclaveErrorCode, message: string, extra: { handlerCode?: string; details?: Uint8Array; cause?: unknown } = {}) {
    super(code, message, { cause: extra.cause });
    this.name = 'SealedActivityError';
    this.retryable = code === 'ERR_ACTIVITY_UNAVAILABLE' || code === 'ERR_ACTIVITY_TIMEOUT' || code === 'ERR_ACTIVITY_OVERLOADED' || code === 'ERR_ACTIVITY_FRAME_TIMEOUT';
    this.handlerCode = extra.handlerCode || undefined;
    this.details = extra.details?.length ? extra.details : undefined;
  }
}

/** Options of the parent's sealed-activity client: the enclave's address, connect timeout and frame limit. */
export interface SealedActivityClientOptions {
  /** The enclave's sealed-activity server: vsock `{ family: 'vsock', cid, port }` in production. */
  readonly address: SocketAddress;
  /** Default 5000. */
  readonly connectTimeoutMs?: number;
  /** Largest frame sent to or accepted from the enclave. Default 8 MiB (match the server's limit: a larger CALL is refused here, before it is sent). */
  readonly maxMessageBytes?: number;
  /** Replaces the native connect (tests, or a custom transport). */
  readonly connect?: (address: SocketAddress, options: { timeoutMs: number }) => Promise<Duplex>;
}

/** One sealed step sent to the enclave: the activity, the workflow id and step number it is bound to, and the sealed state. */
export interface SealedCall {
  readonly activity: string;
  readonly workflowId: string;
  readonly seq: number;
  readonly state: Uint8Array;
  /** Ask for an attestation document bound to this nonce and the result. */
  readonly attestationNonce?: Uint8Array;
}

/** Per-call options of the sealed-activity client: cancellation, timeout and heartbeat callback. */
export interface SealedCallOptions {
  readonly signal?: AbortSignal;
  /** No answer within this many ms: the enclave is told to cancel and the call fails ERR_ACTIVITY_TIMEOUT. 0 = none. */
  readonly timeoutMs?: number;
  /** Called for each heartbeat frame from the enclave. */
  readonly onHeartbeat?: () => void;
}

interface Pending {
  resolve(r: SealedCallResult): void;
  reject(e: Error): void;
  onHeartbeat?: (() => void) | undefined;
}

/**
 * The parent's end of the sealed-activity relay: one multiplexed connection to the enclave
 * (reconnected on demand after a drop), any number of concurrent calls. It never sees a key or a
 * plaintext: calls carry sealed bytes both ways.
 *
 * @example
 * ```ts
 * const client = createSealedActivityClient({ address: { family: 'vsock', cid: 16, port: 5005 } });
 * const { state } = await client.call({ activity: 'analysis', workflowId, seq: 1, state: sealed });
 * ```
 */
export function createSealedActivityClient(options: SealedActivityClientOptions): SealedActivityClient {
  return new SealedActivityClient(options);
}

/**
 * See {@link createSealedActivityClient}.
 *
 * @example
 * ```ts
 * const client = new SealedActivityClient({ address: { family: 'vsock', cid: 16, port: 5005 } });
 * await client.close();
 * ```
 */
export class SealedActivityClient {
  readonly #options: SealedActivityClientOptions;
  #socket: Promise<Duplex> | undefined;
  // The connected socket, once #socket resolved: lets a call skip an await on the hot path.
  #live: Duplex | undefined;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;

  constructor(options: SealedActivityClientOptions) {
    if (!options || typeof options !== 'object' || !options.address) throw new TypeError('address is required');
    const t = options.connectTimeoutMs ?? 5000;
    if (!Number.isInteger(t) || t < 0) throw new TypeError('connectTimeoutMs must be a non-negative integer');
    const m = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (!Number.isInteger(m) || m < 1024 || m > 0xffffffff) throw new TypeError('maxMessageBytes must be an integer between 1 KiB and 4 GiB');
    this.#options = options;
  }

  /** Calls in flight. */
  get pending(): number {
    return this.#pending.size;
  }

  #connect(): Promise<Duplex> {
    if (this.#socket) return this.#socket;
    const timeoutMs = this.#options.connectTimeoutMs ?? 5000;
    const connect = this.#options.connect ?? ((address: SocketAddress, o: { timeoutMs: number }) => connectSocket(address, o));
    const attempt = connect(this.#options.address, { timeoutMs }).then(
      (socket) => {
        const reader = new FrameReader(this.#options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
        // Why the enclave is closing this connection (an ERROR with the connection's id): the calls still pending fail with it.
        let closing: SealedActivityError | undefined;
        socket.on('data', (chunk: Buffer) => {
          for (const f of reader.push(chunk)) {
            if (f.error) {
              // An answer over this side's limit: its call fails; the rest of the stream cannot be read in step.
              this.#onFrame(f.type, f.id, undefined, f.error.message);
              socket.destroy();
              return;
            }
            if (f.id === CONNECTION_ID && f.type === FRAME.ERROR) {
              // The enclave is closing this connection: new calls go to a new one; the calls still
              // pending fail with the reason when it is retryable, else as ERR_ACTIVITY_UNAVAILABLE.
              if (this.#socket === attempt) this.#socket = undefined;
              if (this.#live === socket) this.#live = undefined;
              closing = new SealedActivityError('ERR_ACTIVITY_UNAVAILABLE', 'the enclave closed the connection');
              try {
                const e = decodeError(f.body);
                const reason = new SealedActivityError(e.code as NitroEnclaveErrorCode, `the enclave closed the connection: ${e.message}`);
                closing = reason.retryable ? reason : new SealedActivityError('ERR_ACTIVITY_UNAVAILABLE', `the enclave closed the connection (${e.code}: ${e.message})`);
              } catch {
                // a malformed connection error still ends in the close below
              }
              continue;
            }
            this.#onFrame(f.type, f.id, f.body, undefined);
          }
          if (closing) socket.destroy();
        });
        const lost = (err?: Error) => {
          if (this.#socket === attempt) this.#socket = undefined;
          if (this.#live === socket) this.#live = undefined;
          reader.dispose();
          this.#failAll(closing ?? new SealedActivityError('ERR_ACTIVITY_UNAVAILABLE', `the enclave connection was lost${err ? `: ${(err as { code?: string }).code ?? err.message}` : ''}`, { cause: err }));
        };
        socket.on('error', lost);
        socket.on('close', () => lost());
        this.#ref(socket);
        if (this.#socket === attempt && !socket.destroyed) this.#live = socket;
        return socket;
      },
      (err: unknown) => {
        if (this.#socket === attempt) this.#socket = undefined;
        throw new SealedActivityError('ERR_ACTIVITY_UNAVAILABLE', `cannot reach the enclave: ${(err as { code?: string }).code ?? (err as Error).message}`, { cause: err });
      },
    );
    this.#socket = attempt;
    return attempt;
  }

  // Keep the process alive only while calls are in flight.
  #ref(socket: Duplex): void {
    const s = socket as Duplex & { ref?: () => void; unref?: () => void };
    if (this.#pending.size > 0) s.ref?.();
    else s.unref?.();
  }

  #failAll(err: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(err);
  }

  #onFrame(type: number, id: number, body: Buffer | undefined, tooLarge: string | undefined): void {
    const p = this.#pending.get(id);
    if (!p) return; // late answer to a call already cancelled or timed out
    if (tooLarge !== undefined || !body) {
      this.#pending.delete(id);
      p.reject(new SealedActivityError('ERR_ACTIVITY_TOO_LARGE', `the enclave's answer: ${tooLarge}`));
      return;
    }
    try {
      if (type === FRAME.HEARTBEAT) {
        p.onHeartbeat?.();
        return;
      }
      this.#pending.delete(id);
      if (type === FRAME.RESULT) {
        const r = decodeResult(body);
        p.resolve(r.attestation ? { state: r.state, attestation: r.attestation } : { state: r.state });
      } else if (type === FRAME.ERROR) {
        const e = decodeError(body);
        p.reject(new SealedActivityError(e.code as NitroEnclaveErrorCode, e.message, { handlerCode: e.handlerCode, details: e.details }));
      } else {
        p.reject(new SealedActivityError('ERR_ACTIVITY_FRAME_MALFORMED', `unexpected frame type ${type} from the enclave`));
      }
    } catch (err) {
      this.#pending.delete(id);
      p.reject(err as Error);
    }
  }

  /** Sends one sealed step to the enclave and waits for its sealed answer. */
  async call(call: SealedCall, options: SealedCallOptions = {}): Promise<SealedCallResult> {
    if (this.#closed) throw new SealedActivityError('ERR_ACTIVITY_UNAVAILABLE', 'this client was closed');
    if (!(call.state instanceof Uint8Array)) throw new TypeError('state must be a Uint8Array');
    if (!Number.isSafeInteger(call.seq) || call.seq < 0) throw new TypeError('seq must be a non-negative safe integer');
    if (typeof call.activity !== 'string' || !call.activity || typeof call.workflowId !== 'string' || !call.workflowId) throw new TypeError('activity and workflowId must be non-empty strings');
    const timeoutMs = options.timeoutMs ?? 0;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0) throw new TypeError('timeoutMs must be a non-negative integer');
    const { signal } = options;
    if (signal?.aborted) throw new SealedActivityError('ERR_ACTIVITY_CANCELLED', 'cancelled before it was sent', { cause: signal.reason });
    const maxMessageBytes = this.#options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const nonce = call.attestationNonce ?? new Uint8Array(0);
    // Not sent: the enclave would close the connection (and every call on it) on such a header.
    const frameBytes = encodeCallPrefix(0, { activity: call.activity, workflowId: call.workflowId, seq: call.seq, attest: false, nonce }, 0).length + call.state.length;
    if (frameBytes > maxMessageBytes) throw new SealedActivityError('ERR_ACTIVITY_TOO_LARGE', `frame of ${frameBytes} bytes is over the ${maxMessageBytes}-byte limit (maxMessageBytes; match the enclave's)`);
    const socket = this.#live ?? (await this.#connect());
    if (socket.destroyed) throw new SealedActivityError('ERR_ACTIVITY_UNAVAILABLE', 'the enclave connection closed as it opened');
    let id = this.#nextId;
    while (this.#pending.has(id)) id = id >= 0xffffffff ? 1 : id + 1;
    this.#nextId = id >= 0xffffffff ? 1 : id + 1;
    const prefix = encodeCallPrefix(id, { activity: call.activity, workflowId: call.workflowId, seq: call.seq, attest: call.attestationNonce !== undefined, nonce }, call.state.length);
    return new Promise<SealedCallResult>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cancel = () => {
        if (!this.#pending.delete(id)) return;
        cleanup();
        // Tell the enclave; its CANCELLED answer finds no pending call and is dropped.
        if (!socket.destroyed) socket.write(frameHeader(FRAME.CANCEL, id, 0));
        this.#ref(socket);
      };
      const onAbort = () => {
        cancel();
        reject(new SealedActivityError('ERR_ACTIVITY_CANCELLED', 'the call was cancelled', { cause: signal?.reason }));
      };
      const cleanup = () => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      this.#pending.set(id, {
        resolve: (r) => {
          cleanup();
          this.#ref(socket);
          resolve(r);
        },
        reject: (e) => {
          cleanup();
          this.#ref(socket);
          reject(e);
        },
        onHeartbeat: options.onHeartbeat,
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          cancel();
          reject(new SealedActivityError('ERR_ACTIVITY_TIMEOUT', `no answer from the enclave within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.#ref(socket);
      socket.cork();
      socket.write(prefix);
      if (call.state.length) socket.write(call.state);
      socket.uncork();
    });
  }

  /** Fails calls in flight with ERR_ACTIVITY_UNAVAILABLE and closes the connection. */
  async close(): Promise<void> {
    this.#closed = true;
    const s = this.#socket;
    this.#socket = undefined;
    this.#live = undefined;
    this.#failAll(new SealedActivityError('ERR_ACTIVITY_UNAVAILABLE', 'the client was closed'));
    if (s) (await s.catch(() => undefined))?.destroy();
  }
}
