import { NitroEnclaveError } from '../errors.js';

/**
 * The sealed-activity relay protocol between the parent's Temporal worker and the enclave.
 * Hand-written (not gRPC/HTTP2) because the enclave side should stay dependency-free and the
 * payloads are opaque sealed bytes: a length-prefixed frame costs one header, no re-encoding.
 *
 * Every frame:  u32 length (of what follows) ‖ u8 type ‖ u32 request id ‖ body   (big-endian)
 * A length under 5 is a malformed frame (answered as type 0, id 0); 4 + length over the receiver's
 * maxMessageBytes closes the connection after an ERR_ACTIVITY_TOO_LARGE ERROR with the frame's id.
 *
 *   CALL      0x01  parent → enclave  u8 flags (bit 0: attest) ‖ u16 n ‖ activity ‖ u16 n ‖ workflowId ‖
 *                                      u64 seq ‖ u16 n ‖ nonce ‖ sealed input (rest)
 *   CANCEL    0x02  parent → enclave  (empty)
 *   RESULT    0x81  enclave → parent  u32 n ‖ attestation document (n = 0: none) ‖ sealed output (rest)
 *   ERROR     0x82  enclave → parent  u8 n ‖ code ‖ u16 n ‖ message ‖ u8 n ‖ handler code ‖ sealed details (rest)
 *   HEARTBEAT 0x83  enclave → parent  (empty): the step is still running
 *
 * Request ids are chosen by the parent and unique among its in-flight calls on one connection, so
 * calls run concurrently and answers arrive in any order. Each CALL gets exactly one RESULT or ERROR
 * with its id. An id stays in use until the enclave's run of it has settled, even after a CANCEL (whose
 * ERROR answer comes at once): a CALL reusing it meanwhile gets ERR_ACTIVITY_DUPLICATE_ID. Id 0 is the
 * connection's: before the enclave closes a connection it sends the coded ERROR to the frame that
 * caused it (if its header was complete) and again with id 0. Nothing in a
 * frame is secret: states and error details are sealed by the enclave, the rest is routing metadata
 * Temporal already holds.
 */
export const FRAME = { CALL: 0x01, CANCEL: 0x02, RESULT: 0x81, ERROR: 0x82, HEARTBEAT: 0x83 } as const;
export const FRAME_HEADER_BYTES = 9;
/**
 * Default largest frame either side accepts (8 MiB).
 *
 * @example
 * ```ts
 * serveSealedActivities({ listen, key, handlers, limits: { maxMessageBytes: 2 * DEFAULT_MAX_MESSAGE_BYTES } });
 * ```
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
/** The request id of connection-level ERROR frames (the connection closes after one). */
export const CONNECTION_ID = 0;

export interface CallFrame {
  readonly activity: string;
  readonly workflowId: string;
  readonly seq: number;
  readonly attest: boolean;
  readonly nonce: Uint8Array;
  readonly state: Uint8Array;
}

export interface ErrorFrame {
  readonly code: string;
  readonly message: string;
  readonly handlerCode: string;
  readonly details: Uint8Array;
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The 9-byte frame header for a body of `bodyLength` bytes. */
export function frameHeader(type: number, id: number, bodyLength: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  h.writeUInt32BE(5 + bodyLength, 0);
  h[4] = type;
  h.writeUInt32BE(id, 5);
  return h;
}

/** The header and fields of a CALL, up to (not including) the sealed input. */
export function encodeCallPrefix(id: number, call: Omit<CallFrame, 'state'>, stateLength: number): Buffer {
  const a = utf8.encode(call.activity);
  const w = utf8.encode(call.workflowId);
  if (a.length > 0xffff || w.length > 0xffff || call.nonce.length > 0xffff) throw new TypeError('activity, workflowId and nonce must each be under 64 KiB');
  const fieldsLength = 1 + 2 + a.length + 2 + w.length + 8 + 2 + call.nonce.length;
  const fields = Buffer.allocUnsafe(FRAME_HEADER_BYTES + fieldsLength);
  fields.writeUInt32BE(5 + fieldsLength + stateLength, 0);
  fields[4] = FRAME.CALL;
  fields.writeUInt32BE(id, 5);
  let o = FRAME_HEADER_BYTES;
  fields[o++] = call.attest ? 1 : 0;
  o = fields.writeUInt16BE(a.length, o);
  fields.set(a, o);
  o += a.length;
  o = fields.writeUInt16BE(w.length, o);
  fields.set(w, o);
  o += w.length;
  o = fields.writeBigUInt64BE(BigInt(call.seq), o);
  o = fields.writeUInt16BE(call.nonce.length, o);
  fields.set(call.nonce, o);
  return fields;
}

class Cursor {
  o = 0;
  constructor(readonly b: Buffer) {}
  need(n: number, what: string): void {
    if (this.o + n > this.b.length) throw new NitroEnclaveError('ERR_ACTIVITY_FRAME_MALFORMED', `frame ends inside ${what}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.b[this.o++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.b.readUInt16BE(this.o);
    this.o += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.b.readUInt32BE(this.o);
    this.o += 4;
    return v;
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const v = this.b.subarray(this.o, this.o + n);
    this.o += n;
    return v;
  }
  text(n: number, what: string): string {
    try {
      return strictUtf8.decode(this.bytes(n, what));
    } catch (err) {
      if (err instanceof NitroEnclaveError) throw err;
      throw new NitroEnclaveError('ERR_ACTIVITY_FRAME_MALFORMED', `${what} is not UTF-8`);
    }
  }
  rest(): Buffer {
    return this.b.subarray(this.o);
  }
}

export function decodeCall(body: Buffer): CallFrame {
  const c = new Cursor(body);
  const flags = c.u8('flags');
  if (flags & ~1) throw new NitroEnclaveError('ERR_ACTIVITY_FRAME_MALFORMED', `unknown flags ${flags}`);
  const activity = c.text(c.u16('activity length'), 'activity');
  const workflowId = c.text(c.u16('workflowId length'), 'workflowId');
  c.need(8, 'seq');
  const seq = c.b.readBigUInt64BE(c.o);
  c.o += 8;
  if (seq > BigInt(Number.MAX_SAFE_INTEGER)) throw new NitroEnclaveError('ERR_ACTIVITY_FRAME_MALFORMED', 'seq is not a safe integer');
  const nonce = c.bytes(c.u16('nonce length'), 'nonce');
  return { activity, workflowId, seq: Number(seq), attest: (flags & 1) === 1, nonce, state: c.rest() };
}

export function encodeErrorBody(e: Omit<ErrorFrame, 'details'>): Buffer {
  const code = utf8.encode(e.code);
  const message = utf8.encode(e.message.slice(0, 4000));
  const handlerCode = utf8.encode(e.handlerCode);
  const b = Buffer.allocUnsafe(1 + code.length + 2 + message.length + 1 + handlerCode.length);
  let o = 0;
  b[o++] = code.length;
  b.set(code, o);
  o += code.length;
  o = b.writeUInt16BE(message.length, o);
  b.set(message, o);
  o += message.length;
  b[o++] = handlerCode.length;
  b.set(handlerCode, o);
  return b;
}

export function decodeError(body: Buffer): ErrorFrame {
  const c = new Cursor(body);
  const code = c.text(c.u8('code length'), 'code');
  const message = c.text(c.u16('message length'), 'message');
  const handlerCode = c.text(c.u8('handler code length'), 'handler code');
  return { code, message, handlerCode, details: c.rest() };
}

export function decodeResult(body: Buffer): { attestation: Uint8Array | undefined; state: Buffer } {
  const c = new Cursor(body);
  const n = c.u32('attestation length');
  const doc = c.bytes(n, 'attestation');
  return { attestation: n ? doc : undefined, state: c.rest() };
}

/**
 * Bytes of unfinished and not-yet-started frames, across every connection of one server. Frames are
 * charged as their bytes arrive (never by what a header claims) and released when a call starts or is
 * dropped, so a parent that opens many connections and drips bytes into each cannot make the enclave
 * hold more than `limitBytes`.
 *
 * @example
 * ```ts
 * const budget = new FrameBudget(64 * 1024 * 1024);
 * const reader = new FrameReader(8 * 1024 * 1024, { budget });
 * ```
 */
export class FrameBudget {
  #used = 0;
  constructor(readonly limitBytes: number) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes < 0) throw new TypeError('limitBytes must be a non-negative integer');
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** Takes `n` bytes if they fit; `false` (and nothing taken) if not. */
  reserve(n: number): boolean {
    if (this.#used + n > this.limitBytes) return false;
    this.#used += n;
    return true;
  }

  release(n: number): void {
    this.#used = Math.max(0, this.#used - n);
  }
}

/**
 * Bytes a frame body is stored in while it arrives: each piece holds this much (or the rest of the
 * frame, if less), so an unfinished frame costs its bytes plus at most one partly filled piece and the
 * piece list, whatever sizes the peer writes in.
 */
export const FRAME_PIECE_BYTES = 16 * 1024;

/**
 * What a FrameReader hands out: a frame, or (last of all) the reason it stopped reading: a header
 * claiming more than `maxMessageBytes` (ERR_ACTIVITY_TOO_LARGE) or a frame that no longer fits the
 * budget (ERR_ACTIVITY_OVERLOADED). `held` is what the frame still charges to the budget: the owner
 * releases it when it is done with `body`.
 */
export type FrameEvent =
  | { readonly type: number; readonly id: number; readonly body: Buffer; readonly held: number; readonly error?: undefined }
  | { readonly type: number; readonly id: number; readonly body?: undefined; readonly held?: undefined; readonly error: NitroEnclaveError };

/** Options of {@link FrameReader}: the budget its unfinished frames are charged to. */
export interface FrameReaderOptions {
  readonly budget?: FrameBudget;
}

/**
 * Incremental frame parser with a memory bound. The 9-byte header is read into a fixed buffer; a body
 * is copied into pieces of {@link FRAME_PIECE_BYTES} as it arrives (one-byte writes cost one byte
 * each, not one Buffer each) and joined once when complete; a frame that arrives whole in one chunk is
 * handed out without a copy. A header claiming more than `maxMessageBytes` stops the reader at once
 * (nothing of it is read or skipped: the owner closes the connection). After a stopping event, `push`
 * returns nothing and everything held is released.
 */
export class FrameReader {
  readonly #budget: FrameBudget | undefined;
  readonly #head = Buffer.alloc(FRAME_HEADER_BYTES);
  #headFill = 0;
  // Body of the frame being read: its length once the header is known, pieces filled so far.
  #bodyLength = -1;
  #bodyFill = 0;
  #pieces: Buffer[] = [];
  #pieceFill = 0;
  #held = 0;
  // Bytes of a frame whose length did not even cover type and id, still to be dropped.
  #skip = 0;
  #stopped = false;

  constructor(
    readonly maxMessageBytes: number,
    options: FrameReaderOptions = {},
  ) {
    this.#budget = options.budget;
  }

  /** Feeds bytes; returns the frames completed by them. */
  push(chunk: Buffer): FrameEvent[] {
    const out: FrameEvent[] = [];
    let o = 0;
    while (!this.#stopped && o < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - o);
        this.#skip -= n;
        o += n;
        continue;
      }
      if (this.#bodyLength < 0) {
        // Fast path: a whole frame in what is left of the chunk, nothing pending.
        if (this.#headFill === 0 && chunk.length - o >= FRAME_HEADER_BYTES) {
          const length = chunk.readUInt32BE(o);
          if (length >= 5 && 4 + length <= this.maxMessageBytes && chunk.length - o >= 4 + length) {
            const body = chunk.subarray(o + FRAME_HEADER_BYTES, o + 4 + length);
            if (!this.#charge(body.length)) {
              out.push(this.#stop(chunk[o + 4]!, chunk.readUInt32BE(o + 5), this.#overBudget()));
              break;
            }
            out.push({ type: chunk[o + 4]!, id: chunk.readUInt32BE(o + 5), body, held: this.#takeHeld() });
            o += 4 + length;
            continue;
          }
        }
        const want = this.#headFill < 4 ? 4 - this.#headFill : FRAME_HEADER_BYTES - this.#headFill;
        const n = Math.min(want, chunk.length - o);
        chunk.copy(this.#head, this.#headFill, o, o + n);
        this.#headFill += n;
        o += n;
        if (this.#headFill === 4) {
          const length = this.#head.readUInt32BE(0);
          if (length < 5) {
            // Too short to hold type and id: drop it, report it as type 0 so the owner answers MALFORMED.
            this.#headFill = 0;
            this.#skip = length;
            out.push({ type: 0, id: 0, body: Buffer.alloc(0), held: 0 });
          }
          continue;
        }
        if (this.#headFill < FRAME_HEADER_BYTES) continue;
        const length = this.#head.readUInt32BE(0);
        const type = this.#head[4]!;
        const id = this.#head.readUInt32BE(5);
        if (4 + length > this.maxMessageBytes) {
          out.push(this.#stop(type, id, new NitroEnclaveError('ERR_ACTIVITY_TOO_LARGE', `frame of ${4 + length} bytes is over the ${this.maxMessageBytes}-byte limit`)));
          break;
        }
        this.#bodyLength = length - 5;
        this.#bodyFill = 0;
      } else {
        let piece = this.#pieces[this.#pieces.length - 1];
        if (!piece || this.#pieceFill === piece.length) {
          const size = Math.min(FRAME_PIECE_BYTES, this.#bodyLength - this.#bodyFill);
          if (!this.#charge(size)) {
            out.push(this.#stop(this.#head[4]!, this.#head.readUInt32BE(5), this.#overBudget()));
            break;
          }
          piece = Buffer.allocUnsafe(size);
          this.#pieces.push(piece);
          this.#pieceFill = 0;
        }
        const n = Math.min(piece.length - this.#pieceFill, chunk.length - o);
        chunk.copy(piece, this.#pieceFill, o, o + n);
        this.#pieceFill += n;
        this.#bodyFill += n;
        o += n;
      }
      if (this.#bodyLength >= 0 && this.#bodyFill === this.#bodyLength) out.push(this.#complete());
    }
    return out;
  }

  /** Bytes held for an unfinished frame (header and body so far). */
  get buffered(): number {
    return this.#headFill + (this.#bodyLength >= 0 ? this.#bodyFill : 0);
  }

  /** Whether a frame has begun and not ended (for the partial-frame timeout). */
  get partial(): boolean {
    return this.#headFill > 0 || this.#skip > 0;
  }

  /** The request id of the unfinished frame, if its header is complete (0 otherwise). */
  get partialId(): number {
    return this.#headFill === FRAME_HEADER_BYTES ? this.#head.readUInt32BE(5) : 0;
  }

  /** Stops reading and gives back everything charged to the budget. */
  dispose(): void {
    this.#stopped = true;
    this.#pieces = [];
    this.#budget?.release(this.#held);
    this.#held = 0;
  }

  #complete(): FrameEvent {
    const type = this.#head[4]!;
    const id = this.#head.readUInt32BE(5);
    const body = this.#pieces.length === 1 ? this.#pieces[0]! : Buffer.concat(this.#pieces, this.#bodyLength);
    this.#pieces = [];
    this.#headFill = 0;
    this.#bodyLength = -1;
    this.#bodyFill = 0;
    return { type, id, body, held: this.#takeHeld() };
  }

  #charge(n: number): boolean {
    if (n === 0) return true;
    if (this.#budget && !this.#budget.reserve(n)) return false;
    if (this.#budget) this.#held += n;
    return true;
  }

  #takeHeld(): number {
    const held = this.#held;
    this.#held = 0;
    return held;
  }

  #overBudget(): NitroEnclaveError {
    return new NitroEnclaveError('ERR_ACTIVITY_OVERLOADED', `unfinished frames would exceed the server's ${this.#budget!.limitBytes}-byte budget`);
  }

  #stop(type: number, id: number, error: NitroEnclaveError): FrameEvent {
    this.dispose();
    return { type, id, error };
  }
}
