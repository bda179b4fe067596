import { createCipheriv, randomFillSync, type Cipher } from 'node:crypto';
import { defaultGcm, type Gcm } from './gcm.js';

/**
 * XAES-256-GCM (C2SP, https://c2sp.org/XAES-256-GCM): AES-256-GCM with 192-bit nonces, so random
 * nonces are safe for far more than 2³² messages under one key. Hand-written because `node:crypto`
 * has no XAES; it is built only from AES-256 (ECB, for the CMAC-style derivation) and AES-256-GCM.
 *
 * Per message, with key K and nonce N (24 bytes):
 *   L  = AES-256_K(0¹²⁸)
 *   K1 = L << 1, xored with 0x87 in the last byte when L's top bit was set (the CMAC subkey)
 *   Kx = AES-256_K(K1 ⊕ [0x00 0x01 'X' 0x00 ‖ N[0..12]]) ‖ AES-256_K(K1 ⊕ [0x00 0x02 'X' 0x00 ‖ N[0..12]])
 *   Nx = N[12..24]
 *   output = AES-256-GCM(Kx, Nx, plaintext, aad)
 *
 * L, K1 and the ECB cipher depend only on K, so {@link XaesKey} computes them once. For sealing,
 * it also draws random nonces and derives their keys in batches: one RNG call and one ECB call per
 * {@link BATCH} messages instead of two native calls each (measured in bench/envelope.mjs).
 */
export const XAES_NONCE_BYTES = 24;
export const XAES_TAG_BYTES = 16;
const BATCH = 64;

/** The per-key half of the derivation: the ECB cipher and the CMAC subkey K1 (kept private). */
export class XaesKey {
  // ECB without padding turns each update() into a pure block function, so one cipher object
  // serves every message (creating a cipher per message costs more than the two blocks).
  #ecb: Cipher | null;
  #k1: Buffer;
  #blocks = Buffer.alloc(32);
  // BATCH random nonces and their derived keys, handed out once each and zeroed as they go.
  #nonces = Buffer.alloc(BATCH * XAES_NONCE_BYTES);
  #keys: Buffer = Buffer.alloc(0);
  #next = BATCH;
  readonly #gcm: Gcm;

  /** `gcm`: the AES-256-GCM under the derived keys (default: the native helper's, else node:crypto's). */
  constructor(key: Uint8Array, gcm: Gcm = defaultGcm()) {
    if (key.length !== 32) throw new RangeError('XAES-256-GCM needs a 32-byte key');
    this.#gcm = gcm;
    this.#ecb = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
    const l = this.#ecb.update(Buffer.alloc(16));
    this.#k1 = subkey(l);
    l.fill(0);
  }

  /** L = AES-256_K(0¹²⁸) and K1, for the C2SP test vectors (intermediate values). */
  static intermediates(key: Uint8Array): { l: Buffer; k1: Buffer } {
    const ecb = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
    const l = ecb.update(Buffer.alloc(16));
    return { l, k1: subkey(l) };
  }

  /** Kx for the first 12 bytes of `nonce` (32 bytes; the caller zeroes it when done). */
  deriveKey(nonce: Uint8Array): Buffer {
    if (!this.#ecb) throw new Error('XaesKey was disposed');
    const m = this.#blocks;
    m[0] = 0x00; m[1] = 0x01; m[2] = 0x58; m[3] = 0x00;
    m[16] = 0x00; m[17] = 0x02; m[18] = 0x58; m[19] = 0x00;
    m.set(nonce.subarray(0, 12), 4);
    m.set(nonce.subarray(0, 12), 20);
    const k1 = this.#k1;
    for (let i = 0; i < 16; i++) {
      m[i]! ^= k1[i]!;
      m[16 + i]! ^= k1[i]!;
    }
    const kx = this.#ecb.update(m);
    m.fill(0);
    return kx;
  }

  /**
   * Seals under a fresh random nonce, written to `nonceOut` (24 bytes) first, so `aad` may cover it:
   * the concatenation of `parts`, authenticating the concatenation of `aad`, into out[at..] as
   * ciphertext ‖ tag (see {@link Gcm.seal}).
   */
  seal(nonceOut: Uint8Array, aad: readonly Uint8Array[], parts: readonly Uint8Array[], out: Uint8Array, at: number): void {
    if (!this.#ecb) throw new Error('XaesKey was disposed');
    if (this.#next === BATCH) this.#refill();
    const i = this.#next++;
    const nonce = this.#nonces.subarray(i * XAES_NONCE_BYTES, (i + 1) * XAES_NONCE_BYTES);
    const kx = this.#keys.subarray(i * 32, i * 32 + 32);
    nonceOut.set(nonce);
    try {
      this.#gcm.seal(kx, nonce.subarray(12), aad, parts, out, at);
    } finally {
      kx.fill(0);
      nonce.fill(0);
    }
  }

  /** Seals under the given `nonce` (24 bytes): for test vectors; envelopes use {@link seal}. */
  sealWithNonce(nonce: Uint8Array, aad: readonly Uint8Array[], parts: readonly Uint8Array[], out: Uint8Array, at: number): void {
    const kx = this.deriveKey(nonce);
    try {
      this.#gcm.seal(kx, nonce.subarray(12, 24), aad, parts, out, at);
    } finally {
      kx.fill(0);
    }
  }

  /** The plaintext, or null when the tag does not authenticate (see {@link Gcm.open}). */
  open(nonce: Uint8Array, aad: readonly Uint8Array[], ciphertext: Uint8Array, tag: Uint8Array): Uint8Array | null {
    const kx = this.deriveKey(nonce);
    try {
      return this.#gcm.open(kx, nonce.subarray(12, 24), aad, ciphertext, tag);
    } finally {
      kx.fill(0);
    }
  }

  #refill(): void {
    randomFillSync(this.#nonces);
    const m = Buffer.alloc(BATCH * 32);
    const k1 = this.#k1;
    for (let n = 0; n < BATCH; n++) {
      const o = n * 32;
      m[o + 1] = 0x01; m[o + 2] = 0x58;
      m[o + 17] = 0x02; m[o + 18] = 0x58;
      this.#nonces.copy(m, o + 4, n * XAES_NONCE_BYTES, n * XAES_NONCE_BYTES + 12);
      this.#nonces.copy(m, o + 20, n * XAES_NONCE_BYTES, n * XAES_NONCE_BYTES + 12);
      for (let i = 0; i < 16; i++) {
        m[o + i]! ^= k1[i]!;
        m[o + 16 + i]! ^= k1[i]!;
      }
    }
    this.#keys.fill(0);
    this.#keys = this.#ecb!.update(m);
    m.fill(0);
    this.#next = 0;
  }

  /** Drops the cipher and zeroes K1 (OpenSSL's copy of the key goes with the cipher object). */
  dispose(): void {
    this.#k1.fill(0);
    this.#keys.fill(0);
    this.#nonces.fill(0);
    this.#next = BATCH;
    this.#ecb = null;
  }
}

function subkey(l: Buffer): Buffer {
  const k1 = Buffer.alloc(16);
  let carry = 0;
  for (let i = 15; i >= 0; i--) {
    const b = l[i]!;
    k1[i] = ((b << 1) | carry) & 0xff;
    carry = b >>> 7;
  }
  if (l[0]! & 0x80) k1[15]! ^= 0x87;
  return k1;
}

/** XAES-256-GCM seal: ciphertext ‖ tag. */
export function xaesSeal(key: XaesKey, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Buffer {
  const out = Buffer.allocUnsafeSlow(plaintext.length + XAES_TAG_BYTES);
  key.sealWithNonce(nonce, aad ? [aad] : [], [plaintext], out, 0);
  return out;
}

/** XAES-256-GCM open; throws (without detail) when authentication fails. */
export function xaesOpen(key: XaesKey, nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Uint8Array {
  if (sealed.length < XAES_TAG_BYTES) throw new Error('sealed message is shorter than the tag');
  const out = key.open(nonce, aad ? [aad] : [], sealed.subarray(0, sealed.length - XAES_TAG_BYTES), sealed.subarray(sealed.length - XAES_TAG_BYTES));
  if (!out) throw new Error('XAES-256-GCM: the message does not authenticate');
  return out;
}
