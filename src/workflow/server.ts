import { createHash } from 'node:crypto';
import { NitroEnclaveError, type NitroEnclaveErrorCode } from '../errors.js';
import type { NsmClient } from '../nsm/client.js';
import { listenSocket, type StreamListener } from '../vsock/listen.js';
import { VMADDR_CID_ANY, type SocketAddress, type VsockSocket } from '../vsock/connect.js';
import { CONNECTION_ID, DEFAULT_MAX_MESSAGE_BYTES, decodeCall, encodeErrorBody, FRAME, FRAME_PIECE_BYTES, FrameBudget, frameHeader, FrameReader, type CallFrame } from './protocol.js';
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

/** Timers of the relay server (partial-frame timeouts, heartbeats). Default: the global ones. */
export interface RelayTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Bounds of {@link serveSealedActivities}. Together they bound what a hostile parent can make the
 * enclave hold: at most `maxBufferedBytes` of received frames that have not started (plus about
 * 16 KiB per connection, see docs/workflow.md), and per connection `maxConcurrent` running calls.
 */
export interface SealedActivityLimits {
  /** Largest frame accepted or sent, in bytes. A header claiming more closes the connection. Default 8 MiB. */
  readonly maxMessageBytes?: number;
  /** Calls running at once per connection, counting cancelled ones until they settle; further frames wait in the socket (backpressure). Default 16. */
  readonly maxConcurrent?: number;
  /** Heartbeat frames while a handler runs. Default 1000 ms. */
  readonly heartbeatIntervalMs?: number;
  /** Connections at once; one more gets ERR_ACTIVITY_OVERLOADED and is closed. Default 64. */
  readonly maxConnections?: number;
  /**
   * Bytes of unfinished frames and of received calls not yet started, across all connections (the
   * server-wide budget). A frame that would exceed it: ERR_ACTIVITY_OVERLOADED, connection closed.
   * At least `maxMessageBytes`. Default 64 MiB.
   */
  readonly maxBufferedBytes?: number;
  /** A frame must be complete this long after its first byte arrived (time spent paused by backpressure does not count); otherwise ERR_ACTIVITY_FRAME_TIMEOUT and the connection closes. Default 30 000 ms. */
  readonly frameTimeoutMs?: number;
}

/**
 * Default {@link SealedActivityLimits}: 8 MiB frames, 16 calls per connection, heartbeats every
 * second, 64 connections, a 64 MiB server-wide budget for frames not yet started, 30 s per frame.
 */
export const DEFAULT_ACTIVITY_LIMITS = {
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  maxConcurrent: 16,
  heartbeatIntervalMs: 1000,
  maxConnections: 64,
  maxBufferedBytes: 64 * 1024 * 1024,
  frameTimeoutMs: 30_000,
} as const;

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
  /** Timers for heartbeats and the partial-frame timeout. Default: the global `setTimeout` / `clearTimeout`. */
  readonly timers?: RelayTimers;
}

/** A running sealed-activity server ({@link serveSealedActivities}). */
export interface SealedActivityServer {
  /** The bound port (vsock or TCP; 0 for AF_UNIX). */
  readonly port: number;
  /** Open connections. */
  readonly connections: number;
  /** Bytes of unfinished frames and calls not yet started, across connections (at most `limits.maxBufferedBytes`). */
  readonly bufferedBytes: number;
  /** Stops accepting, aborts running handlers and closes every connection. */
  close(): Promise<void>;
}

const ERROR_ACTIVITY = '!error';
const HANDLER_CODE = /^[A-Z][A-Z0-9_]{0,63}$/;
const defaultTimers: RelayTimers = { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };

type Limits = { -readonly [K in keyof typeof DEFAULT_ACTIVITY_LIMITS]: number };

function checkOptions(o: ServeSealedActivitiesOptions): Limits {
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
  if (o.timers !== undefined && (typeof o.timers?.setTimeout !== 'function' || typeof o.timers?.clearTimeout !== 'function')) throw new TypeError('timers must have setTimeout and clearTimeout');
  const l: Limits = { ...DEFAULT_ACTIVITY_LIMITS };
  for (const [k, v] of Object.entries(o.limits ?? {})) {
    if (!(k in l)) throw new TypeError(`limits.${k} is not a limit (${Object.keys(l).join(', ')})`);
    if (v !== undefined) l[k as keyof Limits] = v as number;
  }
  if (!Number.isInteger(l.maxMessageBytes) || l.maxMessageBytes < 1024 || l.maxMessageBytes > 0xffffffff) throw new TypeError('limits.maxMessageBytes must be an integer between 1 KiB and 4 GiB');
  for (const k of ['maxConcurrent', 'heartbeatIntervalMs', 'maxConnections', 'frameTimeoutMs'] as const) {
    if (!Number.isInteger(l[k]) || l[k] < 1) throw new TypeError(`limits.${k} must be a positive integer`);
  }
  if (!Number.isSafeInteger(l.maxBufferedBytes) || l.maxBufferedBytes < l.maxMessageBytes) throw new TypeError('limits.maxBufferedBytes must be an integer of at least limits.maxMessageBytes');
  return l;
}

/**
 * The enclave side of a confidential workflow: serves sealed agent steps to the parent's Temporal
 * worker. Per call it opens the sealed input with the key, checks that it belongs to this workflow,
 * this step and an accepted producer, runs the handler on the plaintext, seals the result for the
 * next step (same workflow, `seq + 1`, produced by this activity), and zeroes both plaintexts.
 * A handler's failure goes back as ERR_ACTIVITY_HANDLER_FAILED with its details sealed; bad frames,
 * unknown handlers, wrong keys and reused request ids each get their code, and the connection keeps
 * serving. What a parent could use to make the enclave hold memory closes its connection after a coded
 * ERROR: a header over `maxMessageBytes`, a frame beyond the server-wide `maxBufferedBytes`, a frame
 * not complete within `frameTimeoutMs`, a connection beyond `maxConnections` (see
 * {@link SealedActivityLimits}).
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
  const shared: Shared = { options, limits, budget: new FrameBudget(limits.maxBufferedBytes), timers: options.timers ?? defaultTimers };
  const listener: StreamListener = listenSocket(
    address,
    (socket) => {
      if (connections.size >= limits.maxConnections) {
        socket.on('error', () => {});
        closeWith(socket, shared.timers, CONNECTION_ID, 'ERR_ACTIVITY_OVERLOADED', `this server takes at most ${limits.maxConnections} connections`);
        options.onError?.(new NitroEnclaveError('ERR_ACTIVITY_OVERLOADED', `refused a connection: ${limits.maxConnections} are open`));
        return;
      }
      const c = new Connection(socket, shared, () => connections.delete(c));
      connections.add(c);
    },
    { onError: (err) => options.onError?.(err) },
  );
  return {
    port: listener.port,
    get connections() {
      return connections.size;
    },
    get bufferedBytes() {
      return shared.budget.used;
    },
    async close() {
      listener.close();
      await Promise.all([...connections].map((c) => c.close()));
    },
  };
}

interface Shared {
  readonly options: ServeSealedActivitiesOptions;
  readonly limits: Limits;
  readonly budget: FrameBudget;
  readonly timers: RelayTimers;
}

/** How long a connection the enclave ends keeps being read (and discarded) so its last frame arrives before the close. */
export const LINGER_MS = 1000;

// A coded ERROR for the frame that caused it (when it has an id), one with the connection's id, then
// the end of the connection. What the peer still sends is read and dropped for LINGER_MS: closing a
// socket with unread bytes resets it, and a reset can discard the ERROR frames before the peer reads them.
function closeWith(socket: VsockSocket, timers: RelayTimers, id: number, code: NitroEnclaveErrorCode, message: string): void {
  socket.removeAllListeners('data');
  socket.on('data', () => {});
  socket.resume();
  if (socket.destroyed) return;
  const body = encodeErrorBody({ code, message, handlerCode: '' });
  socket.cork();
  for (const to of id === CONNECTION_ID ? [CONNECTION_ID] : [id, CONNECTION_ID]) {
    socket.write(frameHeader(FRAME.ERROR, to, body.length));
    socket.write(body);
  }
  socket.uncork();
  socket.end();
  const timer = timers.setTimeout(() => socket.destroy(), LINGER_MS);
  socket.once('close', () => timers.clearTimeout(timer));
}

/** A call the enclave runs: identity matters, not the id (an id can be reused once its run settled). */
class Run {
  /** Cancelled by the parent and answered; still running until the handler settles. */
  cancelled = false;
  // Made when first needed (the handler reads its signal, or the call is aborted): most calls are
  // neither, and an AbortController per call was a measurable part of the relay's per-frame work.
  #controller: AbortController | undefined;
  constructor(readonly id: number) {}

  get signal(): AbortSignal {
    return (this.#controller ??= new AbortController()).signal;
  }

  abort(reason: unknown): void {
    (this.#controller ??= new AbortController()).abort(reason);
  }
}

class Connection {
  readonly #reader: FrameReader;
  readonly #shared: Shared;
  readonly #limits: Limits;
  // Every run not yet settled, cancelled or not: they all count against maxConcurrent.
  readonly #runs = new Map<number, Run>();
  #beat: unknown;
  #beating = false;
  #frameTimer: unknown;
  // Calls read while maxConcurrent already run (at most one chunk's worth: reading pauses meanwhile); their bytes stay charged to the budget.
  readonly #queue: Array<{ id: number; body: Buffer; held: number }> = [];
  #paused = false;
  #ending = false;
  #closed: Promise<void>;

  constructor(
    readonly socket: VsockSocket,
    shared: Shared,
    onClose: () => void,
  ) {
    this.#shared = shared;
    this.#limits = shared.limits;
    this.#reader = new FrameReader(shared.limits.maxMessageBytes, { budget: shared.budget });
    this.#closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => this.#flow());
    socket.on('error', (err) => shared.options.onError?.(err));
    socket.once('close', () => {
      this.#stopBeat();
      this.#setFrameTimer(false);
      this.#reader.dispose();
      for (const q of this.#queue.splice(0)) shared.budget.release(q.held);
      for (const r of this.#runs.values()) {
        r.abort(new NitroEnclaveError('ERR_ACTIVITY_UNAVAILABLE', 'the parent connection closed'));
      }
      onClose();
    });
  }

  close(): Promise<void> {
    this.socket.destroy();
    return this.#closed;
  }

  get #running(): number {
    return this.#runs.size;
  }

  // Backpressure: start queued calls and read more only while the parent reads our answers and
  // fewer than maxConcurrent calls run; otherwise pause, so unread calls wait in the socket.
  #flow(): void {
    if (this.#ending) return;
    while (this.#queue.length && this.#running < this.#limits.maxConcurrent && !this.socket.writableNeedDrain && !this.socket.destroyed) {
      const next = this.#queue.shift()!;
      this.#shared.budget.release(next.held);
      this.#call(next.id, next.body);
    }
    const stop = this.socket.writableNeedDrain || this.#running >= this.#limits.maxConcurrent || this.#queue.length > 0;
    if (stop && !this.#paused) this.socket.pause();
    if (!stop && this.#paused) this.socket.resume();
    this.#paused = stop;
    // Time paused by our own backpressure is not the parent's: the partial-frame clock restarts on resume.
    this.#setFrameTimer(!stop && this.#reader.partial);
  }

  #setFrameTimer(on: boolean): void {
    const { timers } = this.#shared;
    if (!on) {
      if (this.#frameTimer !== undefined) timers.clearTimeout(this.#frameTimer);
      this.#frameTimer = undefined;
      return;
    }
    this.#frameTimer ??= timers.setTimeout(() => {
      this.#frameTimer = undefined;
      this.#end(this.#reader.partialId, 'ERR_ACTIVITY_FRAME_TIMEOUT', `a frame was not complete within ${this.#limits.frameTimeoutMs} ms of its first byte`);
    }, this.#limits.frameTimeoutMs);
  }

  /** Answers `id` with a coded ERROR, then closes the connection (running handlers are aborted). */
  #end(id: number, code: NitroEnclaveErrorCode, message: string): void {
    if (this.#ending) return;
    this.#ending = true;
    this.#setFrameTimer(false);
    this.#reader.dispose();
    this.#shared.options.onError?.(new NitroEnclaveError(code, `closing a parent connection: ${message}`));
    closeWith(this.socket, this.#shared.timers, id, code, message);
  }

  #onData(chunk: Buffer): void {
    const frames = this.#reader.push(chunk);
    const completed = frames.length > 0;
    for (const f of frames) {
      if (f.error) {
        this.#end(f.id, f.error.code, f.error.message);
        return;
      }
      if (f.type === FRAME.CALL) {
        if (this.#runs.has(f.id) || this.#queue.some((q) => q.id === f.id)) {
          this.#shared.budget.release(f.held);
          const run = this.#runs.get(f.id);
          this.#error(f.id, 'ERR_ACTIVITY_DUPLICATE_ID', `request id ${f.id} is still in use on this connection${run?.cancelled ? ' (its cancelled run has not settled yet)' : ''}`);
        } else if (this.#running >= this.#limits.maxConcurrent || this.#queue.length || this.socket.writableNeedDrain) {
          // A frame that arrived whole is a view into the socket's chunk: copy it, so a waiting call holds its bytes, not the chunk.
          const body = f.body.buffer.byteLength > f.body.length + FRAME_PIECE_BYTES ? Buffer.from(f.body) : f.body;
          this.#queue.push({ id: f.id, body, held: f.held });
        } else {
          this.#shared.budget.release(f.held);
          this.#call(f.id, f.body);
        }
        continue;
      }
      this.#shared.budget.release(f.held);
      if (f.type === FRAME.CANCEL) {
        const queued = this.#queue.findIndex((q) => q.id === f.id);
        const run = this.#runs.get(f.id);
        if (queued >= 0) {
          this.#shared.budget.release(this.#queue.splice(queued, 1)[0]!.held);
          this.#error(f.id, 'ERR_ACTIVITY_CANCELLED', 'the step was cancelled');
        } else if (run && !run.cancelled) {
          // Answered now; the run keeps its id and its slot until the handler settles.
          run.cancelled = true;
          run.abort(new NitroEnclaveError('ERR_ACTIVITY_CANCELLED', 'cancelled by the parent'));
          this.#error(f.id, 'ERR_ACTIVITY_CANCELLED', 'the step was cancelled');
        }
      } else {
        this.#error(f.id, 'ERR_ACTIVITY_FRAME_MALFORMED', `unknown frame type ${f.type}`);
      }
    }
    // Each frame has its own clock: a completed frame stops it, #flow starts it for the next partial one.
    if (completed || !this.#reader.partial) this.#setFrameTimer(false);
    this.#flow();
  }

  #send(type: number, id: number, parts: Uint8Array[]): void {
    if (this.socket.destroyed || this.#ending) return;
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

  /** Sends the run's one answer, unless it was cancelled (then it was answered already). */
  #answer(run: Run, send: () => void): void {
    if (!run.cancelled && this.#runs.get(run.id) === run && !this.socket.destroyed) send();
  }

  // One heartbeat timer per connection (not one per call), running while any call does.
  #startBeat(): void {
    if (this.#beating) return;
    this.#beating = true;
    const tick = () => {
      const live = [...this.#runs.values()].filter((r) => !r.cancelled);
      if (live.length === 0) {
        this.#beating = false;
        this.#beat = undefined;
        return;
      }
      for (const r of live) this.#send(FRAME.HEARTBEAT, r.id, []);
      this.#beat = this.#shared.timers.setTimeout(tick, this.#limits.heartbeatIntervalMs);
    };
    this.#beat = this.#shared.timers.setTimeout(tick, this.#limits.heartbeatIntervalMs);
  }

  #stopBeat(): void {
    if (this.#beat !== undefined) this.#shared.timers.clearTimeout(this.#beat);
    this.#beat = undefined;
    this.#beating = false;
  }

  #call(id: number, body: Buffer): void {
    let call: CallFrame;
    try {
      call = decodeCall(body);
    } catch (err) {
      this.#error(id, 'ERR_ACTIVITY_FRAME_MALFORMED', (err as Error).message);
      return;
    }
    const run = new Run(id);
    this.#runs.set(id, run);
    this.#startBeat();
    void this.#run(run, call).finally(() => {
      if (this.#runs.get(id) === run) this.#runs.delete(id);
      this.#flow();
    });
  }

  async #run(run: Run, call: CallFrame): Promise<void> {
    const { id } = run;
    const { options } = this.#shared;
    const handler = Object.hasOwn(options.handlers, call.activity) ? options.handlers[call.activity] : undefined;
    if (!handler) {
      this.#answer(run, () => this.#error(id, 'ERR_ACTIVITY_UNKNOWN_HANDLER', `no handler for activity ${JSON.stringify(call.activity)}`));
      return;
    }
    let input: Uint8Array;
    let producer: string;
    let chainId: string;
    try {
      // Mid-chain: any chain (null); its id is copied to the output, and the chain's last opener checks it.
      const opened = openState(options.key, call.state, { workflowId: call.workflowId, chainId: null, activity: call.activity, seq: call.seq, producer: handler.from });
      input = opened.plaintext;
      producer = opened.binding.producer;
      chainId = opened.binding.chainId;
    } catch (err) {
      // A TypeError is the call's own fields (e.g. an empty workflow id), not the state's authenticity.
      const code = err instanceof NitroEnclaveError ? err.code : err instanceof TypeError ? 'ERR_ACTIVITY_FRAME_MALFORMED' : 'ERR_SEALED_DECRYPT_FAILED';
      this.#answer(run, () => this.#error(id, code, err instanceof NitroEnclaveError || err instanceof TypeError ? err.message : 'the sealed input could not be opened'));
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
        get signal() {
          return run.signal;
        },
        heartbeat: () => this.#answer(run, () => this.#send(FRAME.HEARTBEAT, id, [])),
      };
      const result = await handler.run(input, context);
      const r = result instanceof Uint8Array ? { state: result, next: undefined } : result;
      if (!r || !(r.state instanceof Uint8Array)) throw new TypeError(`handler ${call.activity} must return a Uint8Array or { state: Uint8Array, next? }`);
      output = r.state;
      next = r.next ?? handler.next;
      if (!next) throw new TypeError(`handler ${call.activity} has no next step: set handlers.${call.activity}.next or return { state, next }`);
      if (run.cancelled || this.socket.destroyed) return; // cancelled or disconnected meanwhile: the answer was already given
      const sealed = sealState(options.key, output, { workflowId: call.workflowId, chainId, activity: next, seq: call.seq + 1, producer: call.activity });
      let attestation: Uint8Array = new Uint8Array(0);
      if (call.attest) {
        if (!options.nsm) {
          this.#answer(run, () => this.#error(id, 'ERR_ACTIVITY_ATTESTATION', 'this server has no NSM to attest with'));
          return;
        }
        try {
          attestation = await options.nsm.attestation({ nonce: call.nonce, userData: createHash('sha256').update(sealed).digest() });
        } catch (err) {
          this.#answer(run, () => this.#error(id, 'ERR_ACTIVITY_ATTESTATION', `the NSM could not attest: ${(err as { code?: string }).code ?? 'error'}`));
          return;
        }
      }
      if (5 + 4 + 4 + attestation.length + sealed.length > this.#limits.maxMessageBytes) {
        this.#answer(run, () => this.#error(id, 'ERR_ACTIVITY_TOO_LARGE', `the sealed result (${sealed.length} bytes) is over the ${this.#limits.maxMessageBytes}-byte limit`));
        return;
      }
      const n = Buffer.allocUnsafe(4);
      n.writeUInt32BE(attestation.length);
      this.#answer(run, () => this.#send(FRAME.RESULT, id, [n, attestation, sealed]));
    } catch (err) {
      if (run.cancelled || this.socket.destroyed) return;
      // The handler's message and stack may hold plaintext: they leave only sealed, for this step's
      // workflow, readable by an enclave with the key (openHandlerError). Its code, if it is a
      // plain identifier, travels in clear so the workflow can switch on it.
      const e = err as { name?: unknown; message?: unknown; stack?: unknown; code?: unknown };
      const handlerCode = typeof e?.code === 'string' && HANDLER_CODE.test(e.code) ? e.code : '';
      const detail = new TextEncoder().encode(JSON.stringify({ name: String(e?.name ?? 'Error'), message: String(e?.message ?? err), stack: String(e?.stack ?? ''), code: handlerCode || undefined }));
      const details = sealState(options.key, detail, { workflowId: call.workflowId, chainId, activity: ERROR_ACTIVITY, seq: call.seq, producer: call.activity });
      detail.fill(0);
      this.#answer(run, () => this.#error(id, 'ERR_ACTIVITY_HANDLER_FAILED', `handler ${JSON.stringify(call.activity)} failed${handlerCode ? ` (${handlerCode})` : ''}; details are sealed`, handlerCode, details));
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
