import { NitroEnclaveError } from '../errors.js';

/**
 * The sealed-activity relay protocol between the parent's Temporal worker and the enclave.
 * Hand-written (not gRPC/HTTP2) because the enclave side should stay dependency-free and the
 * payloads are opaque sealed bytes: a length-prefixed frame costs one header, no re-encoding.
 *
 * Every frame:  u32 length (of what follows) ‖ u8 type ‖ u32 request id ‖ body   (big-endian)
 *
 *   CALL      0x01  parent → enclave  u8 flags (bit 0: attest) ‖ u16 n ‖ activity ‖ u16 n ‖ workflowId ‖
 *                                      u64 seq ‖ u16 n ‖ nonce ‖ sealed input (rest)
 *   CANCEL    0x02  parent → enclave  (empty)
 *   RESULT    0x81  enclave → parent  u32 n ‖ attestation document (n = 0: none) ‖ sealed output (rest)
 *   ERROR     0x82  enclave → parent  u8 n ‖ code ‖ u16 n ‖ message ‖ u8 n ‖ handler code ‖ sealed details (rest)
 *   HEARTBEAT 0x83  enclave → parent  (empty): the step is still running
 *
 * Request ids are chosen by the parent and unique among its in-flight calls on one connection, so
 * calls run concurrently and answers arrive in any order. Nothing in a frame is secret: states and
 * error details are sealed by the enclave, the rest is routing metadata Temporal already holds.
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

/** What a FrameReader hands out. `oversized` frames are skipped; only their header is known. */
export type FrameEvent = { type: number; id: number; body: Buffer; oversized?: undefined } | { type: number; id: number; body?: undefined; oversized: number };

/**
 * Incremental frame parser. Chunks are kept as received and joined once per frame (one copy of a
 * 16 MiB state, not one per chunk). A frame over `maxMessageBytes` is reported by its header and
 * its body skipped as it streams by, so the connection stays in step and keeps serving.
 */
export class FrameReader {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #skip = 0;
  constructor(readonly maxMessageBytes: number) {}

  /** Feeds bytes; returns the frames completed by them. */
  push(chunk: Buffer): FrameEvent[] {
    const out: FrameEvent[] = [];
    if (this.#skip > 0) {
      const n = Math.min(this.#skip, chunk.length);
      this.#skip -= n;
      chunk = chunk.subarray(n);
    }
    if (chunk.length) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    for (;;) {
      if (this.#buffered < FRAME_HEADER_BYTES) break;
      const head = this.#peek(FRAME_HEADER_BYTES);
      const length = head.readUInt32BE(0);
      const type = head[4]!;
      const id = head.readUInt32BE(5);
      if (length < 5) {
        // A length that does not even cover type and id: take the 4 length bytes and what it claims.
        this.#consume(Math.min(this.#buffered, 4 + length));
        out.push({ type: 0, id, body: Buffer.alloc(0) });
        continue;
      }
      if (4 + length > this.maxMessageBytes) {
        const available = Math.min(this.#buffered, 4 + length);
        this.#consume(available);
        this.#skip = 4 + length - available;
        out.push({ type, id, oversized: 4 + length });
        if (this.#skip > 0) break;
        continue;
      }
      if (this.#buffered < 4 + length) break;
      const frame = this.#consume(4 + length);
      out.push({ type, id, body: frame.subarray(FRAME_HEADER_BYTES) });
    }
    return out;
  }

  /** Bytes held for an incomplete frame (for backpressure accounting and truncation checks). */
  get buffered(): number {
    return this.#buffered;
  }

  #peek(n: number): Buffer {
    if (this.#chunks[0]!.length >= n) return this.#chunks[0]!;
    const joined = Buffer.concat(this.#chunks);
    this.#chunks = [joined];
    return joined;
  }

  #consume(n: number): Buffer {
    let first = this.#chunks[0]!;
    if (first.length < n) {
      first = Buffer.concat(this.#chunks, this.#buffered);
      this.#chunks = [first];
    }
    const frame = first.subarray(0, n);
    if (first.length === n) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(n);
    this.#buffered -= n;
    return frame;
  }
}
