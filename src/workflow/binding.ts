import { randomBytes } from 'node:crypto';
import { NitroEnclaveError } from '../errors.js';

/**
 * Where a sealed state belongs: the workflow and the run of it (chain), the step that will consume
 * it, and the agent that produced it. Sealed as associated data with the state, and readable (not
 * secret) in its header.
 *
 * @example
 * ```ts
 * const binding: StateBinding = { workflowId: 'research-42', chainId: newChainId(), activity: 'analysis', seq: 1, producer: 'research' };
 * ```
 */
export interface StateBinding {
  /** The Temporal workflow id. */
  readonly workflowId: string;
  /**
   * The chain (one run of the workflow) this state belongs to: {@link CHAIN_ID_BYTES} random bytes
   * as lowercase hex, chosen by whoever seals the chain's first state ({@link newChainId}), copied
   * forward by the enclave to every later state, and checked by whoever opens the final one. Temporal
   * reuses workflow ids (a new run after one closes, cron, continue-as-new); chain ids are never reused.
   */
  readonly chainId: string;
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

/**
 * Length of a chain id in bytes (its text form is twice as many lowercase hex characters).
 *
 * @example
 * ```ts
 * newChainId().length === 2 * CHAIN_ID_BYTES; // true
 * ```
 */
export const CHAIN_ID_BYTES = 16;
const CHAIN_ID = /^[0-9a-f]{32}$/;

/**
 * A fresh random chain id, for the first state of a chain (one run of a workflow). Keep it to check
 * the chain's final state (`openState(..., { chainId })`).
 *
 * @example
 * ```ts
 * const chainId = newChainId();
 * const first = sealState(tsk, input, { workflowId, chainId, activity: 'research', seq: 1, producer: 'client' });
 * // ... later, the final state:
 * openState(tsk, report, { workflowId, chainId, activity: 'client', seq: 4, producer: 'report' });
 * ```
 */
export function newChainId(random: (n: number) => Uint8Array = randomBytes): string {
  const bytes = random(CHAIN_ID_BYTES);
  if (!(bytes instanceof Uint8Array) || bytes.length !== CHAIN_ID_BYTES) throw new TypeError(`random must return ${CHAIN_ID_BYTES} bytes`);
  return Buffer.from(bytes).toString('hex');
}

/** Checks a chain id's text form (an option: TypeError). */
export function checkChainId(value: unknown, name: string): void {
  if (typeof value !== 'string' || !CHAIN_ID.test(value)) throw new TypeError(`${name} must be a chain id: ${2 * CHAIN_ID_BYTES} lowercase hex characters (newChainId())`);
}

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
  checkChainId(binding.chainId, `${what}.chainId`);
  field('activity', binding.activity);
  field('producer', binding.producer);
}

/**
 * The binding's canonical encoding, as carried in clear in a sealed state (after `reserve` zero bytes
 * left for the caller's header), all integers big-endian:
 *
 *   u16 n ‖ workflowId (UTF-8) ‖ chain id (16 bytes) ‖ u16 n ‖ activity (UTF-8) ‖ u64 seq ‖ u16 n ‖ producer (UTF-8)
 *
 * Strings are 1 to {@link MAX_BINDING_FIELD_BYTES} bytes of well-formed UTF-8; seq is at most
 * 2⁵³−1. Unambiguous (lengths, strict UTF-8), so one binding has exactly one encoding. Exported for
 * independent implementations (docs/formats.md) and tests; `sealState` calls it for you.
 *
 * @example
 * ```ts
 * const bytes = encodeBinding({ workflowId: 'wf', chainId: '00'.repeat(16), activity: 'a', seq: 1, producer: 'p' });
 * bytes.length; // 2 + 2 + 16 + 2 + 1 + 8 + 2 + 1 = 34
 * ```
 */
export function encodeBinding(binding: StateBinding, reserve = 0): Uint8Array {
  if (!binding || typeof binding !== 'object') throw new TypeError('binding must be an object');
  if (!Number.isSafeInteger(binding.seq) || binding.seq < 0) throw new TypeError('binding.seq must be a non-negative safe integer');
  const w = field('workflowId', binding.workflowId);
  checkChainId(binding.chainId, 'binding.chainId');
  const a = field('activity', binding.activity);
  const p = field('producer', binding.producer);
  const out = new Uint8Array(reserve + 2 + w.length + CHAIN_ID_BYTES + 2 + a.length + 8 + 2 + p.length);
  const view = new DataView(out.buffer);
  let o = reserve;
  const str = (bytes: Uint8Array) => {
    view.setUint16(o, bytes.length);
    out.set(bytes, o + 2);
    o += 2 + bytes.length;
  };
  str(w);
  out.set(Buffer.from(binding.chainId, 'hex'), o);
  o += CHAIN_ID_BYTES;
  str(a);
  view.setBigUint64(o, BigInt(binding.seq));
  o += 8;
  str(p);
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
  if (o + CHAIN_ID_BYTES > bytes.length) throw malformed('chainId is truncated');
  const chainId = Buffer.from(bytes.subarray(o, o + CHAIN_ID_BYTES)).toString('hex');
  o += CHAIN_ID_BYTES;
  const activity = str('activity');
  if (o + 8 > bytes.length) throw malformed('seq is truncated');
  const seq = view.getBigUint64(o);
  o += 8;
  if (seq > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed('seq is not a safe integer');
  const producer = str('producer');
  if (o !== bytes.length) throw malformed(`${bytes.length - o} trailing bytes`);
  return Object.freeze({ workflowId, chainId, activity, seq: Number(seq), producer });
}
