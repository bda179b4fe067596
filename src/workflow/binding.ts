import { NitroEnclaveError } from '../errors.js';

/**
 * Where a sealed state belongs: the workflow, the step that will consume it, and the agent that
 * produced it. Sealed as associated data with the state, and readable (not secret) in its header.
 *
 * @example
 * ```ts
 * const binding: StateBinding = { workflowId: 'research-42', activity: 'analysis', seq: 1, producer: 'research' };
 * ```
 */
export interface StateBinding {
  /** The Temporal workflow id. */
  readonly workflowId: string;
  /** The consuming step's activity name: the agent this state is meant for. */
  readonly activity: string;
  /** The consuming step's sequence number, chosen by the workflow (a non-negative safe integer). */
  readonly seq: number;
  /** The agent (handler name, or e.g. `"client"` for the workflow's input) that produced the state. */
  readonly producer: string;
}

/**
 * Longest workflow id, activity or producer name, in UTF-8 bytes.
 *
 * @example
 * ```ts
 * if (Buffer.byteLength(workflowId) > MAX_BINDING_FIELD_BYTES) throw new Error('workflow id too long to bind');
 * ```
 */
export const MAX_BINDING_FIELD_BYTES = 1024;

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// With the u flag a surrogate pair is one code point, so this matches only lone surrogates.
const LONE_SURROGATE = /\p{Surrogate}/u;

function field(name: string, value: unknown): Uint8Array {
  if (typeof value !== 'string' || value.length === 0) throw new TypeError(`binding.${name} must be a non-empty string`);
  if (LONE_SURROGATE.test(value)) throw new TypeError(`binding.${name} is not well-formed Unicode (lone surrogate)`);
  const bytes = utf8.encode(value);
  if (bytes.length > MAX_BINDING_FIELD_BYTES) throw new TypeError(`binding.${name} is ${bytes.length} bytes of UTF-8, over ${MAX_BINDING_FIELD_BYTES}`);
  return bytes;
}

/** Checks a binding given as an option (a programming error is a TypeError). */
export function checkBinding(binding: StateBinding, what = 'binding'): void {
  if (!binding || typeof binding !== 'object') throw new TypeError(`${what} must be an object`);
  if (!Number.isSafeInteger(binding.seq) || binding.seq < 0) throw new TypeError(`${what}.seq must be a non-negative safe integer`);
  field('workflowId', binding.workflowId);
  field('activity', binding.activity);
  field('producer', binding.producer);
}

/**
 * Canonical encoding (after `reserve` zero bytes left for the caller's header): u16 length ‖ UTF-8 for workflowId, activity and producer, and seq as a u64,
 * all big-endian, in the order workflowId, activity, seq, producer. Unambiguous (lengths, strict
 * UTF-8), so one binding has exactly one encoding.
 */
export function encodeBinding(binding: StateBinding, reserve = 0): Uint8Array {
  if (!binding || typeof binding !== 'object') throw new TypeError('binding must be an object');
  if (!Number.isSafeInteger(binding.seq) || binding.seq < 0) throw new TypeError('binding.seq must be a non-negative safe integer');
  const w = field('workflowId', binding.workflowId);
  const a = field('activity', binding.activity);
  const p = field('producer', binding.producer);
  const out = new Uint8Array(reserve + 2 + w.length + 2 + a.length + 8 + 2 + p.length);
  const view = new DataView(out.buffer);
  let o = reserve;
  for (const [i, bytes] of [w, a, null, p].entries()) {
    if (i === 2) {
      view.setBigUint64(o, BigInt(binding.seq));
      o += 8;
      continue;
    }
    view.setUint16(o, bytes!.length);
    out.set(bytes!, o + 2);
    o += 2 + bytes!.length;
  }
  return out;
}

/** Decodes {@link encodeBinding}'s output exactly (no trailing bytes); ERR_SEALED_MALFORMED otherwise. */
export function decodeBinding(bytes: Uint8Array): StateBinding {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  const malformed = (what: string) => new NitroEnclaveError('ERR_SEALED_MALFORMED', `sealed state binding: ${what}`);
  const str = (name: string): string => {
    if (o + 2 > bytes.length) throw malformed(`${name} length is truncated`);
    const n = view.getUint16(o);
    if (n === 0 || n > MAX_BINDING_FIELD_BYTES || o + 2 + n > bytes.length) throw malformed(`${name} has a bad length (${n})`);
    try {
      return strictUtf8.decode(bytes.subarray(o + 2, o + 2 + n));
    } catch {
      throw malformed(`${name} is not UTF-8`);
    } finally {
      o += 2 + n;
    }
  };
  const workflowId = str('workflowId');
  const activity = str('activity');
  if (o + 8 > bytes.length) throw malformed('seq is truncated');
  const seq = view.getBigUint64(o);
  o += 8;
  if (seq > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed('seq is not a safe integer');
  const producer = str('producer');
  if (o !== bytes.length) throw malformed(`${bytes.length - o} trailing bytes`);
  return Object.freeze({ workflowId, activity, seq: Number(seq), producer });
}
