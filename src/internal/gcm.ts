import { createCipheriv, createDecipheriv } from 'node:crypto';
import { loadNative, type NativeBinding } from './native.js';

/**
 * AES-256-GCM over parts, written into a caller's buffer: what every TSK envelope (encrypt, sealed
 * state, payload codec) is made of. Two implementations, same bytes (test/internal/gcm.test.ts):
 *
 * - `native`: the native helper calls Node's own OpenSSL once per message and encrypts straight
 *   into the envelope. Why: node:crypto has no encrypt-into-buffer, so an envelope built on it pays
 *   one allocation and one copy of the whole ciphertext more than bare GCM, plus six to eight
 *   crossings into C++ per message (docs/performance-notes.md, codec and envelope rows).
 * - `node:crypto`: where the helper is not built (not Linux, no compiler) or its OpenSSL lookup
 *   failed; or when `NITRO_ENCLAVE_GCM=node:crypto` asks for it.
 */
export interface Gcm {
  readonly name: 'native' | 'node:crypto';
  /**
   * Encrypts the concatenation of `parts` (never made) with `key` (32 bytes) and `iv` (12),
   * authenticating the concatenation of `aad`, into `out` from `at`: ciphertext ‖ 16-byte tag.
   * `out`'s written range must not overlap any input.
   */
  seal(key: Uint8Array, iv: Uint8Array, aad: readonly Uint8Array[], parts: readonly Uint8Array[], out: Uint8Array, at: number): void;
  /** The plaintext of `ciphertext`, or null (nothing of it kept) when `tag` does not authenticate. */
  open(key: Uint8Array, iv: Uint8Array, aad: readonly Uint8Array[], ciphertext: Uint8Array, tag: Uint8Array): Uint8Array | null;
}

/** Most bytes node:crypto's update() gets at once when sealing (see seal below). */
const UPDATE_SLICE = 64 * 1024;

/** The node:crypto implementation (the fallback). */
export const nodeCryptoGcm: Gcm = Object.freeze({
  name: 'node:crypto' as const,
  seal(key: Uint8Array, iv: Uint8Array, aad: readonly Uint8Array[], parts: readonly Uint8Array[], out: Uint8Array, at: number): void {
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    // Successive AAD updates are one GHASH input: GCM buffers partial AAD blocks.
    for (const a of aad) if (a.length) cipher.setAAD(a);
    for (const part of parts) {
      // GCM is a stream mode: update() returns as many bytes as it is given, so a part is fed in
      // slices of at most UPDATE_SLICE and each output copied while it is still in cache. One
      // update() over 1 MiB allocated a 1 MiB transient output (above glibc's mmap threshold: fresh
      // pages, faults) only to copy and drop it (docs/performance-notes.md, codec 1 MiB).
      for (let from = 0; from < part.length; from += UPDATE_SLICE) {
        const slice = part.length <= UPDATE_SLICE ? part : part.subarray(from, from + UPDATE_SLICE);
        out.set(cipher.update(slice), at);
        at += slice.length;
      }
    }
    cipher.final();
    out.set(cipher.getAuthTag(), at);
  },
  open(key: Uint8Array, iv: Uint8Array, aad: readonly Uint8Array[], ciphertext: Uint8Array, tag: Uint8Array): Uint8Array | null {
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    for (const a of aad) if (a.length) decipher.setAAD(a);
    decipher.setAuthTag(tag);
    const out = decipher.update(ciphertext);
    try {
      decipher.final();
    } catch {
      out.fill(0);
      return null;
    }
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  },
});

type NativeGcmBinding = Pick<NativeBinding, 'gcmAvailable' | 'gcmSeal' | 'gcmOpen'>;

/** The native implementation over `addon`, or undefined when its OpenSSL lookup failed. */
export function nativeGcm(addon: NativeGcmBinding): Gcm | undefined {
  if (typeof addon.gcmAvailable !== 'function' || !addon.gcmAvailable()) return undefined;
  return Object.freeze({
    name: 'native' as const,
    // loadNative's binding already turns the helper's ERR_NATIVE_INTERNAL into a NitroEnclaveError.
    seal: (key: Uint8Array, iv: Uint8Array, aad: readonly Uint8Array[], parts: readonly Uint8Array[], out: Uint8Array, at: number): void => addon.gcmSeal(key, iv, aad, parts, out, at),
    open(key: Uint8Array, iv: Uint8Array, aad: readonly Uint8Array[], ciphertext: Uint8Array, tag: Uint8Array): Uint8Array | null {
      const out = Buffer.allocUnsafeSlow(ciphertext.length);
      // On a tag mismatch the helper has zeroed `out` before returning false.
      return addon.gcmOpen(key, iv, aad, ciphertext, tag, out) ? new Uint8Array(out.buffer, out.byteOffset, out.length) : null;
    },
  });
}

let chosen: Gcm | undefined;

/**
 * The implementation envelopes use by default: native when the helper loads and finds OpenSSL,
 * else node:crypto (or node:crypto when `NITRO_ENCLAVE_GCM=node:crypto`). Chosen once per process:
 * the choice is a fact about the build, and both give the same bytes.
 */
export function defaultGcm(): Gcm {
  if (chosen) return chosen;
  const wanted = process.env.NITRO_ENCLAVE_GCM;
  if (wanted !== undefined && wanted !== 'native' && wanted !== 'node:crypto') throw new TypeError(`NITRO_ENCLAVE_GCM must be "native" or "node:crypto", got ${JSON.stringify(wanted)}`);
  let native: Gcm | undefined;
  if (wanted !== 'node:crypto') {
    try {
      native = nativeGcm(loadNative());
    } catch (err) {
      if (wanted === 'native') throw err;
    }
    if (!native && wanted === 'native') throw new TypeError('NITRO_ENCLAVE_GCM=native, but the native helper found no AES-256-GCM in OpenSSL');
  }
  chosen = native ?? nodeCryptoGcm;
  return chosen;
}
