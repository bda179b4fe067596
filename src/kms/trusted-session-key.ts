import { createDecipheriv, createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { NitroEnclaveError } from '../errors.js';
import { XAES_NONCE_BYTES, XaesKey } from '../internal/xaes.js';
import type { TskTimings } from './trusted-session-key-client.js';

/** Facts about where a Trusted Session Key came from. Nothing here is secret. */
export interface TrustedSessionKeyMetadata {
  /** ARN of the KMS key that released it. */
  readonly keyArn: string;
  /** PCR0 (image hash, hex) of the enclave it was released to. */
  readonly pcr0: string;
  readonly moduleId: string;
  readonly obtainedAt: Date;
  /** 8-byte key identifier (hex) carried in every envelope; derived one-way from the key. */
  readonly keyId: string;
  /** Step timings (ms) of the KMS round trip that released the key (the same for copies from the cache); absent on a key built by hand. */
  readonly timings?: Readonly<TskTimings>;
}

/**
 * The envelope version {@link TrustedSessionKey.encrypt} writes: 2 (XAES-256-GCM).
 * {@link TrustedSessionKey.decrypt} opens versions 1 and 2.
 *
 * Envelope v2 (written by `encrypt`):
 *
 *   offset 0   1 byte   version = 0x02
 *   offset 1   8 bytes  key id = HMAC-SHA256(key, "nitro-enclave-sdk/tsk/key-id")[0..8]
 *   offset 9  24 bytes  nonce (random, 192 bits)
 *   offset 33  n bytes  XAES-256-GCM ciphertext (c2sp.org/XAES-256-GCM)
 *   last      16 bytes  GCM tag
 *
 * Envelope v1 (opened only):
 *
 *   offset 0   1 byte   version = 0x01
 *   offset 1   8 bytes  key id (as above)
 *   offset 9  12 bytes  nonce (random, 96 bits)
 *   offset 21  n bytes  AES-256-GCM ciphertext
 *   last      16 bytes  GCM tag
 *
 * In both, the whole header (version, key id, nonce) is authenticated as GCM AAD, followed by the
 * caller's AAD. The TSK is shared by every instance and restart of the enclave image, so v1's random
 * 96-bit nonces cap it at about 2³² messages fleet-wide; v2's 192-bit nonces lift that cap.
 *
 * @example
 * ```ts
 * const sealed = tsk.encrypt(plaintext);
 * sealed[0] === TSK_ENVELOPE_VERSION; // 2
 * ```
 */
export const TSK_ENVELOPE_VERSION = 2;
const V1_HEADER = 21;
const V2_HEADER = 1 + 8 + XAES_NONCE_BYTES;
const TAG = 16;

const REDACTED = '[REDACTED]';

type SealAfterPrefix = (tsk: TrustedSessionKey, prefix: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, aad2: Uint8Array) => Uint8Array;
type OpenWithAad2 = (tsk: TrustedSessionKey, envelope: Uint8Array, aad: Uint8Array, aad2: Uint8Array) => Uint8Array;
let sealAfterPrefix!: SealAfterPrefix;
let openWithAad2!: OpenWithAad2;

/**
 * @internal For src/workflow: `prefix ‖ tsk.encrypt(plaintext, aad ‖ aad2)` built in one buffer.
 */
export function encryptAfterPrefix(tsk: TrustedSessionKey, prefix: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, aad2: Uint8Array): Uint8Array {
  return sealAfterPrefix(tsk, prefix, plaintext, aad, aad2);
}

/** @internal For src/workflow: `tsk.decrypt(envelope, aad ‖ aad2)` without concatenating the AAD. */
export function decryptWithAad(tsk: TrustedSessionKey, envelope: Uint8Array, aad: Uint8Array, aad2: Uint8Array): Uint8Array {
  return openWithAad2(tsk, envelope, aad, aad2);
}

/**
 * The AES-256 Trusted Session Key, released by KMS to this enclave only.
 * The key bytes never print or serialise (`toJSON`, `util.inspect` and
 * `toString` show a redacted form) and `dispose()` zeroes them.
 *
 * @example
 * ```ts
 * const tsk = await getTrustedSessionKey({ ciphertextBlobPath: '/app/tsk.bin', keyId: TSK_KEY_ARN, region: 'us-east-1' });
 * const sealed = tsk.encrypt(new TextEncoder().encode('agent message'), new TextEncoder().encode('agent-7'));
 * const opened = tsk.decrypt(sealed, new TextEncoder().encode('agent-7'));
 * tsk.dispose();
 * ```
 */
export class TrustedSessionKey {
  readonly metadata: TrustedSessionKeyMetadata;
  #key: Buffer | null;
  #keyObject: KeyObject | null;
  #xaes: XaesKey | null;
  readonly #keyIdBytes: Buffer;

  /** Takes ownership of `key` (32 bytes): the caller must not reuse the buffer. */
  constructor(key: Uint8Array, metadata: Omit<TrustedSessionKeyMetadata, 'keyId'>) {
    if (!(key instanceof Uint8Array) || key.length !== 32) throw new NitroEnclaveError('ERR_TSK_INVALID_KEY', `a Trusted Session Key must be 32 bytes (AES-256), got ${key?.length ?? 'none'}`);
    this.#key = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
    this.#keyObject = createSecretKey(this.#key);
    this.#xaes = new XaesKey(this.#key);
    this.#keyIdBytes = createHmac('sha256', this.#key).update('nitro-enclave-sdk/tsk/key-id').digest().subarray(0, 8);
    this.metadata = Object.freeze({ ...metadata, keyId: this.#keyIdBytes.toString('hex') });
  }

  #live(): Buffer {
    if (!this.#key) throw new NitroEnclaveError('ERR_TSK_DISPOSED', 'this TrustedSessionKey was disposed');
    return this.#key;
  }

  /**
   * The key as a node:crypto secret KeyObject (for your own AES-256 use). Throws
   * `ERR_TSK_DISPOSED` after {@link dispose}.
   */
  get keyObject(): KeyObject {
    this.#live();
    return this.#keyObject!;
  }

  get disposed(): boolean {
    return this.#key === null;
  }

  /**
   * Seals `plaintext` with XAES-256-GCM in envelope v2 (layout at {@link TSK_ENVELOPE_VERSION});
   * `aad` is authenticated, not stored.
   */
  encrypt(plaintext: Uint8Array, aad?: Uint8Array): Uint8Array {
    return this.#seal(undefined, plaintext, aad, undefined);
  }

  // `prefix` bytes are written before the envelope in the same buffer (one allocation, no concat),
  // and `aad2` is authenticated after `aad`: both for sealed workflow state (src/workflow).
  #seal(prefix: Uint8Array | undefined, plaintext: Uint8Array, aad: Uint8Array | undefined, aad2: Uint8Array | undefined): Uint8Array {
    this.#live();
    if (!(plaintext instanceof Uint8Array)) throw new TypeError('plaintext must be a Uint8Array');
    if (aad !== undefined && !(aad instanceof Uint8Array)) throw new TypeError('aad must be a Uint8Array');
    // One allocation for the envelope; the header is written in place and the ciphertext copied once
    // (node:crypto has no encrypt-into), where v1 concatenated three times (measured in bench/envelope.mjs).
    const p = prefix?.length ?? 0;
    const buffer = Buffer.allocUnsafeSlow(p + V2_HEADER + plaintext.length + TAG);
    if (prefix) buffer.set(prefix);
    const out = buffer.subarray(p);
    out[0] = TSK_ENVELOPE_VERSION;
    this.#keyIdBytes.copy(out, 1);
    const header = out.subarray(0, V2_HEADER);
    const cipher = this.#xaes!.sealer(out.subarray(9, V2_HEADER));
    // Successive AAD updates are one GHASH input (header ‖ aad ‖ aad2): GCM buffers partial AAD blocks.
    cipher.setAAD(header);
    if (aad?.length) cipher.setAAD(aad);
    if (aad2?.length) cipher.setAAD(aad2);
    const body = cipher.update(plaintext);
    cipher.final();
    out.set(body, V2_HEADER);
    out.set(cipher.getAuthTag(), V2_HEADER + body.length);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
  }

  static {
    sealAfterPrefix = (tsk, prefix, plaintext, aad, aad2) => tsk.#seal(prefix, plaintext, aad, aad2);
  }

  /** Opens an envelope made by {@link encrypt} (v2) or by earlier versions (v1); the same `aad` must be given. */
  decrypt(envelope: Uint8Array, aad?: Uint8Array): Uint8Array {
    return this.#open(envelope, aad, undefined);
  }

  #open(envelope: Uint8Array, aad: Uint8Array | undefined, aad2: Uint8Array | undefined): Uint8Array {
    const key = this.#live();
    if (!(envelope instanceof Uint8Array)) throw new TypeError('envelope must be a Uint8Array');
    if (aad !== undefined && !(aad instanceof Uint8Array)) throw new TypeError('aad must be a Uint8Array');
    const version = envelope[0];
    if (version !== 1 && version !== 2) throw new NitroEnclaveError('ERR_TSK_MALFORMED', `envelope version ${version ?? 'none'} is not supported (expected 1 or 2)`);
    const headerLength = version === 1 ? V1_HEADER : V2_HEADER;
    if (envelope.length < headerLength + TAG) throw new NitroEnclaveError('ERR_TSK_MALFORMED', `envelope is ${envelope.length} bytes, shorter than the v${version} header and tag`);
    if (!this.#keyIdBytes.equals(envelope.subarray(1, 9))) {
      throw new NitroEnclaveError('ERR_TSK_WRONG_KEY', `envelope was sealed with key id ${Buffer.from(envelope.subarray(1, 9)).toString('hex')}, this key is ${this.metadata.keyId}`);
    }
    const header = envelope.subarray(0, headerLength);
    const nonce = envelope.subarray(9, headerLength);
    const decipher = version === 1 ? createDecipheriv('aes-256-gcm', key, nonce) : this.#xaes!.decipher(nonce);
    decipher.setAAD(header);
    if (aad?.length) decipher.setAAD(aad);
    if (aad2?.length) decipher.setAAD(aad2);
    decipher.setAuthTag(envelope.subarray(envelope.length - TAG));
    const out = decipher.update(envelope.subarray(headerLength, envelope.length - TAG));
    try {
      decipher.final();
    } catch {
      out.fill(0);
      throw new NitroEnclaveError('ERR_TSK_DECRYPT_FAILED', 'envelope failed authentication (wrong AAD, or tampered)');
    }
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }

  static {
    openWithAad2 = (tsk, envelope, aad, aad2) => tsk.#open(envelope, aad, aad2);
  }

  /** Zeroes the key bytes; every later use (including {@link keyObject}) throws ERR_TSK_DISPOSED. */
  dispose(): void {
    this.#key?.fill(0);
    this.#key = null;
    this.#keyObject = null;
    this.#xaes?.dispose();
    this.#xaes = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toJSON(): Record<string, unknown> {
    return { type: 'TrustedSessionKey', key: REDACTED, ...this.metadata, disposed: this.disposed };
  }

  toString(): string {
    return `TrustedSessionKey(${this.metadata.keyArn}, ${REDACTED})`;
  }

  [inspect.custom](): string {
    return `TrustedSessionKey ${inspect(this.toJSON())}`;
  }
}
