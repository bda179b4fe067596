import { createHash } from 'node:crypto';
import { NitroEnclaveError, type NitroEnclaveErrorCode } from '../errors.js';
import type { NsmClient } from '../nsm/client.js';
import { listenSocket, type StreamListener } from '../vsock/listen.js';
import { VMADDR_CID_ANY, type SocketAddress, type VsockSocket } from '../vsock/connect.js';
import { DEFAULT_MAX_MESSAGE_BYTES, decodeCall, encodeErrorBody, FRAME, frameHeader, FrameReader, type CallFrame } from './protocol.js';
import { checkSealingKeys, openState, sealState, type SealingKeys } from './sealed-state.js';

/** What a handler sees besides the plaintext. */
export interface SealedActivityContext {
  /** Authenticated: from the input state's binding. */
  readonly workflowId: string;
  /** Authenticated: the chain (run) of the input state, copied to the output. */
  readonly chainId: string;
  readonly activity: string;
  readonly seq: number;
  /** The agent that produced the input (authenticated). */
  readonly producer: string;
  /** Aborted when the parent cancels the activity or the connection drops. */
  readonly signal: AbortSignal;
  /** Tells the parent the step is alive now (heartbeats are also sent every `heartbeatIntervalMs`). */
  heartbeat(): void;
}

/** A handler's result: the next state's plaintext (ownership passes: it is zeroed after sealing). */
export type SealedActivityResult = Uint8Array | { readonly state: Uint8Array; readonly next?: string };

/** One agent step inside the enclave. */
export interface SealedActivityHandler {
  /** The producer(s) whose state this step accepts: part of the image, so the host cannot choose it. */
  readonly from: string | readonly string[];
  /** The activity the result is sealed for (can be overridden per call by returning `{ state, next }`). */
  readonly next?: string;
  run(input: Uint8Array, context: SealedActivityContext): SealedActivityResult | Promise<SealedActivityResult>;
}

/** Bounds of {@link serveSealedActivities}: frame size, concurrency per connection and heartbeat interval. */
export interface SealedActivityLimits {
  /** Largest frame accepted or sent, in bytes. Default 8 MiB. */
  readonly maxMessageBytes?: number;
  /** Calls run at once per connection; further frames wait in the socket (backpressure). Default 16. */
  readonly maxConcurrent?: number;
  /** Heartbeat frames while a handler runs. Default 1000 ms. */
  readonly heartbeatIntervalMs?: number;
}

/** Options of {@link serveSealedActivities}: where to listen, the sealing key (or key ring), the agent handlers and limits. */
export interface ServeSealedActivitiesOptions {
  /** Where to listen: a vsock port (in the enclave), or any address the native relay takes (AF_UNIX / loopback TCP in tests). */
  readonly listen: { readonly port: number; readonly cid?: number } | SocketAddress;
  readonly key: SealingKeys;
  readonly handlers: Readonly<Record<string, SealedActivityHandler>>;
  readonly limits?: SealedActivityLimits;
  /** When set, a call that asks for it gets an attestation document with its nonce and `user_data = SHA-256(sealed output)`. */
  readonly nsm?: Pick<NsmClient, 'attestation'>;
  /** Notified of connection-level problems (never with plaintext). */
  readonly onError?: (err: Error) => void;
}

/** A running sealed-activity server ({@link serveSealedActivities}). */
export interface SealedActivityServer {
  /** The bound port (vsock or TCP; 0 for AF_UNIX). */
  readonly port: number;
  /** Stops accepting, aborts running handlers and closes every connection. */
  close(): Promise<void>;
}

const ERROR_ACTIVITY = '!error';
const HANDLER_CODE = /^[A-Z][A-Z0-9_]{0,63}$/;

function checkOptions(o: ServeSealedActivitiesOptions): Required<SealedActivityLimits> {
  if (!o || typeof o !== 'object') throw new TypeError('options must be an object');
  checkSealingKeys(o.key);
  if (!o.handlers || typeof o.handlers !== 'object' || Object.keys(o.handlers).length === 0) throw new TypeError('handlers must name at least one handler');
  for (const [name, h] of Object.entries(o.handlers)) {
    if (name.startsWith('!')) throw new TypeError(`handler name ${JSON.stringify(name)} is reserved`);
    if (!h || typeof h.run !== 'function') throw new TypeError(`handlers.${name}.run must be a function`);
    const from = typeof h.from === 'string' ? [h.from] : h.from;
    if (!Array.isArray(from) || from.length === 0 || from.some((p) => typeof p !== 'string' || !p)) throw new TypeError(`handlers.${name}.from must name the producer(s) it accepts`);
    if (h.next !== undefined && (typeof h.next !== 'string' || !h.next)) throw new TypeError(`handlers.${name}.next must be a non-empty string`);
  }
  const l = o.limits ?? {};
  const maxMessageBytes = l.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const maxConcurrent = l.maxConcurrent ?? 16;
  const heartbeatIntervalMs = l.heartbeatIntervalMs ?? 1000;
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 1024 || maxMessageBytes > 0xffffffff) throw new TypeError('limits.maxMessageBytes must be an integer between 1 KiB and 4 GiB');
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) throw new TypeError('limits.maxConcurrent must be a positive integer');
  if (!Number.isInteger(heartbeatIntervalMs) || heartbeatIntervalMs < 1) throw new TypeError('limits.heartbeatIntervalMs must be a positive integer');
  return { maxMessageBytes, maxConcurrent, heartbeatIntervalMs };
}

/**
 * The enclave side of a confidential workflow: serves sealed agent steps to the parent's Temporal
 * worker. Per call it opens the sealed input with the key, checks that it belongs to this workflow,
 * this step and an accepted producer, runs the handler on the plaintext, seals the result for the
 * next step (same workflow, `seq + 1`, produced by this activity), and zeroes both plaintexts.
 * A handler's failure goes back as ERR_ACTIVITY_HANDLER_FAILED with its details sealed; bad frames,
 * oversized messages, unknown handlers and wrong keys each get their code, and the server keeps serving.
 *
 * @example
 * ```ts
 * const tsk = await getTrustedSessionKey({ ciphertextBlobPath: '/app/tsk.bin', keyId: TSK_KEY_ARN, region: 'us-east-1' });
 * const server = serveSealedActivities({
 *   listen: { port: 5005 }, // vsock, any CID
 *   key: tsk,
 *   handlers: {
 *     research: { from: 'client', next: 'analysis', run: async (input) => research(input) },
 *     analysis: { from: 'research', next: 'report', run: async (input) => analyse(input) },
 *   },
 * });
 * ```
 */
export function serveSealedActivities(options: ServeSealedActivitiesOptions): SealedActivityServer {
  const limits = checkOptions(options);
  const address: SocketAddress = 'family' in options.listen ? options.listen : { family: 'vsock', cid: options.listen.cid ?? VMADDR_CID_ANY, port: options.listen.port };
  const connections = new Set<Connection>();
  const listener: StreamListener = listenSocket(
    address,
    (socket) => {
      const c = new Connection(socket, options, limits, () => connections.delete(c));
      connections.add(c);
    },
    { onError: (err) => options.onError?.(err) },
  );
  return {
    port: listener.port,
    async close() {
      listener.close();
      await Promise.all([...connections].map((c) => c.close()));
    },
  };
}

class Connection {
  readonly #reader: FrameReader;
  readonly #inflight = new Map<number, { abort: AbortController }>();
  // One heartbeat timer per connection (not one per call), running while any call does.
  #beat: NodeJS.Timeout | undefined;
  // Calls read while maxConcurrent already run (at most one chunk's worth: reading pauses meanwhile).
  readonly #queue: Array<{ id: number; body: Buffer }> = [];
  #paused = false;
  #closed: Promise<void>;

  constructor(
    readonly socket: VsockSocket,
    readonly options: ServeSealedActivitiesOptions,
    readonly limits: Required<SealedActivityLimits>,
    onClose: () => void,
  ) {
    this.#reader = new FrameReader(limits.maxMessageBytes);
    this.#closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => this.#flow());
    socket.on('error', (err) => options.onError?.(err));
    socket.once('close', () => {
      clearInterval(this.#beat);
      for (const r of this.#inflight.values()) {
        r.abort.abort(new NitroEnclaveError('ERR_ACTIVITY_UNAVAILABLE', 'the parent connection closed'));
      }
      this.#inflight.clear();
      onClose();
    });
  }

  close(): Promise<void> {
    this.socket.destroy();
    return this.#closed;
  }

  // Backpressure: start queued calls and read more only while the parent reads our answers and
  // fewer than maxConcurrent calls run; otherwise pause, so unread calls wait in the socket.
  #flow(): void {
    while (this.#queue.length && this.#inflight.size < this.limits.maxConcurrent && !this.socket.writableNeedDrain && !this.socket.destroyed) {
      const next = this.#queue.shift()!;
      this.#call(next.id, next.body);
    }
    const stop = this.socket.writableNeedDrain || this.#inflight.size >= this.limits.maxConcurrent || this.#queue.length > 0;
    if (stop && !this.#paused) this.socket.pause();
    if (!stop && this.#paused) this.socket.resume();
    this.#paused = stop;
  }

  #onData(chunk: Buffer): void {
    for (const f of this.#reader.push(chunk)) {
      if (f.oversized !== undefined) {
        this.#error(f.id, 'ERR_ACTIVITY_TOO_LARGE', `frame of ${f.oversized} bytes is over the ${this.limits.maxMessageBytes}-byte limit`);
      } else if (f.type === FRAME.CALL) {
        if (this.#inflight.size >= this.limits.maxConcurrent || this.#queue.length || this.socket.writableNeedDrain) this.#queue.push({ id: f.id, body: f.body });
        else this.#call(f.id, f.body);
      } else if (f.type === FRAME.CANCEL) {
        const r = this.#inflight.get(f.id);
        const queued = this.#queue.findIndex((q) => q.id === f.id);
        if (queued >= 0) {
          this.#queue.splice(queued, 1);
          this.#error(f.id, 'ERR_ACTIVITY_CANCELLED', 'the step was cancelled');
        } else if (r) {
          this.#finish(f.id);
          r.abort.abort(new NitroEnclaveError('ERR_ACTIVITY_CANCELLED', 'cancelled by the parent'));
          this.#error(f.id, 'ERR_ACTIVITY_CANCELLED', 'the step was cancelled');
        }
      } else {
        this.#error(f.id, 'ERR_ACTIVITY_FRAME_MALFORMED', `unknown frame type ${f.type}`);
      }
    }
    this.#flow();
  }

  #send(type: number, id: number, parts: Uint8Array[]): void {
    if (this.socket.destroyed) return;
    const length = parts.reduce((n, p) => n + p.length, 0);
    // cork + separate writes: a 16 MiB state goes out without being copied into one frame buffer.
    this.socket.cork();
    this.socket.write(frameHeader(type, id, length));
    for (const p of parts) if (p.length) this.socket.write(p);
    this.socket.uncork();
  }

  #error(id: number, code: NitroEnclaveErrorCode, message: string, handlerCode = '', details: Uint8Array = new Uint8Array(0)): void {
    this.#send(FRAME.ERROR, id, [encodeErrorBody({ code, message, handlerCode }), details]);
  }

  #finish(id: number): boolean {
    return this.#inflight.delete(id);
  }

  #call(id: number, body: Buffer): void {
    let call: CallFrame;
    try {
      call = decodeCall(body);
    } catch (err) {
      this.#error(id, 'ERR_ACTIVITY_FRAME_MALFORMED', (err as Error).message);
      return;
    }
    if (this.#inflight.has(id) || this.#queue.some((q) => q.id === id)) {
      this.#error(id, 'ERR_ACTIVITY_FRAME_MALFORMED', `request id ${id} is already in flight on this connection`);
      return;
    }
    const abort = new AbortController();
    this.#inflight.set(id, { abort });
    // Stops itself on a tick with nothing running, so back-to-back calls do not re-arm a timer each.
    this.#beat ??= setInterval(() => {
      if (this.#inflight.size === 0) {
        clearInterval(this.#beat);
        this.#beat = undefined;
      }
      for (const running of this.#inflight.keys()) this.#send(FRAME.HEARTBEAT, running, []);
    }, this.limits.heartbeatIntervalMs);
    void this.#run(id, call, abort.signal).finally(() => {
      this.#finish(id);
      this.#flow();
    });
  }

  async #run(id: number, call: CallFrame, signal: AbortSignal): Promise<void> {
    const handler = Object.hasOwn(this.options.handlers, call.activity) ? this.options.handlers[call.activity] : undefined;
    if (!handler) {
      this.#finish(id);
      this.#error(id, 'ERR_ACTIVITY_UNKNOWN_HANDLER', `no handler for activity ${JSON.stringify(call.activity)}`);
      return;
    }
    let input: Uint8Array;
    let producer: string;
    let chainId: string;
    try {
      // Mid-chain: any chain (null); its id is copied to the output, and the chain's last opener checks it.
      const opened = openState(this.options.key, call.state, { workflowId: call.workflowId, chainId: null, activity: call.activity, seq: call.seq, producer: handler.from });
      input = opened.plaintext;
      producer = opened.binding.producer;
      chainId = opened.binding.chainId;
    } catch (err) {
      this.#finish(id);
      // A TypeError is the call's own fields (e.g. an empty workflow id), not the state's authenticity.
      const code = err instanceof NitroEnclaveError ? err.code : err instanceof TypeError ? 'ERR_ACTIVITY_FRAME_MALFORMED' : 'ERR_SEALED_DECRYPT_FAILED';
      this.#error(id, code, err instanceof NitroEnclaveError || err instanceof TypeError ? err.message : 'the sealed input could not be opened');
      return;
    }
    let output: Uint8Array | undefined;
    let next: string | undefined;
    try {
      const context: SealedActivityContext = {
        workflowId: call.workflowId,
        chainId,
        activity: call.activity,
        seq: call.seq,
        producer,
        signal,
        heartbeat: () => {
          if (this.#inflight.has(id)) this.#send(FRAME.HEARTBEAT, id, []);
        },
      };
      const result = await handler.run(input, context);
      const r = result instanceof Uint8Array ? { state: result, next: undefined } : result;
      if (!r || !(r.state instanceof Uint8Array)) throw new TypeError(`handler ${call.activity} must return a Uint8Array or { state: Uint8Array, next? }`);
      output = r.state;
      next = r.next ?? handler.next;
      if (!next) throw new TypeError(`handler ${call.activity} has no next step: set handlers.${call.activity}.next or return { state, next }`);
      if (!this.#inflight.has(id)) return; // cancelled or disconnected meanwhile: the answer was already given
      const sealed = sealState(this.options.key, output, { workflowId: call.workflowId, chainId, activity: next, seq: call.seq + 1, producer: call.activity });
      let attestation: Uint8Array = new Uint8Array(0);
      if (call.attest) {
        if (!this.options.nsm) {
          this.#finish(id);
          this.#error(id, 'ERR_ACTIVITY_ATTESTATION', 'this server has no NSM to attest with');
          return;
        }
        try {
          attestation = await this.options.nsm.attestation({ nonce: call.nonce, userData: createHash('sha256').update(sealed).digest() });
        } catch (err) {
          this.#finish(id);
          this.#error(id, 'ERR_ACTIVITY_ATTESTATION', `the NSM could not attest: ${(err as { code?: string }).code ?? 'error'}`);
          return;
        }
      }
      if (5 + 4 + 4 + attestation.length + sealed.length > this.limits.maxMessageBytes) {
        this.#finish(id);
        this.#error(id, 'ERR_ACTIVITY_TOO_LARGE', `the sealed result (${sealed.length} bytes) is over the ${this.limits.maxMessageBytes}-byte limit`);
        return;
      }
      if (!this.#finish(id)) return;
      const n = Buffer.allocUnsafe(4);
      n.writeUInt32BE(attestation.length);
      this.#send(FRAME.RESULT, id, [n, attestation, sealed]);
    } catch (err) {
      if (!this.#finish(id)) return;
      // The handler's message and stack may hold plaintext: they leave only sealed, for this step's
      // workflow, readable by an enclave with the key (openHandlerError). Its code, if it is a
      // plain identifier, travels in clear so the workflow can switch on it.
      const e = err as { name?: unknown; message?: unknown; stack?: unknown; code?: unknown };
      const handlerCode = typeof e?.code === 'string' && HANDLER_CODE.test(e.code) ? e.code : '';
      const detail = new TextEncoder().encode(JSON.stringify({ name: String(e?.name ?? 'Error'), message: String(e?.message ?? err), stack: String(e?.stack ?? ''), code: handlerCode || undefined }));
      const details = sealState(this.options.key, detail, { workflowId: call.workflowId, chainId, activity: ERROR_ACTIVITY, seq: call.seq, producer: call.activity });
      detail.fill(0);
      this.#error(id, 'ERR_ACTIVITY_HANDLER_FAILED', `handler ${JSON.stringify(call.activity)} failed${handlerCode ? ` (${handlerCode})` : ''}; details are sealed`, handlerCode, details);
    } finally {
      input.fill(0);
      output?.fill(0);
    }
  }
}

/** A handler failure's sealed details, opened inside an enclave that holds the key. */
export interface HandlerErrorDetails {
  readonly name: string;
  readonly message: string;
  readonly stack: string;
  readonly code?: string;
}

/**
 * Opens the sealed details of an ERR_ACTIVITY_HANDLER_FAILED (inside an enclave: they may hold plaintext).
 *
 * @example
 * ```ts
 * const details = openHandlerError(tsk, failure.details[0], { workflowId, chainId, activity: 'analysis', seq: 1 });
 * console.error(details.message);
 * ```
 */
export function openHandlerError(key: SealingKeys, sealed: Uint8Array, at: { workflowId: string; chainId: string | null; activity: string; seq: number }): HandlerErrorDetails {
  const { plaintext } = openState(key, sealed, { workflowId: at.workflowId, chainId: at.chainId, activity: ERROR_ACTIVITY, seq: at.seq, producer: at.activity });
  try {
    return JSON.parse(new TextDecoder().decode(plaintext)) as HandlerErrorDetails;
  } finally {
    plaintext.fill(0);
  }
}
