import { createCipheriv, createDecipheriv, createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { NitroEnclaveError } from '../errors.js';

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
}

/**
 * Envelope v1 of TrustedSessionKey.encrypt():
 *
 *   offset 0   1 byte   version = 0x01
 *   offset 1   8 bytes  key id = HMAC-SHA256(key, "nitro-enclave-sdk/tsk/key-id")[0..8]
 *   offset 9  12 bytes  nonce (random, 96 bits)
 *   offset 21  n bytes  AES-256-GCM ciphertext
 *   last      16 bytes  GCM tag
 *
 * The 21-byte header is authenticated (GCM AAD), followed by the caller's AAD.
 */
export const TSK_ENVELOPE_VERSION = 1;
const HEADER = 21;
const TAG = 16;

const REDACTED = '[REDACTED]';

/**
 * The AES-256 Trusted Session Key, released by KMS to this enclave only.
 * The key bytes never print or serialise (`toJSON`, `util.inspect` and
 * `toString` show a redacted form) and `dispose()` zeroes them.
 *
 * @example
 * ```ts
 * const tsk = await getTrustedSessionKey({ ciphertextBlobPath: '/app/tsk.bin', region: 'us-east-1' });
 * const sealed = tsk.encrypt(new TextEncoder().encode('agent message'), new TextEncoder().encode('agent-7'));
 * const opened = tsk.decrypt(sealed, new TextEncoder().encode('agent-7'));
 * tsk.dispose();
 * ```
 */
export class TrustedSessionKey {
  readonly metadata: TrustedSessionKeyMetadata;
  #key: Buffer | null;
  #keyObject: KeyObject | null;

  /** Takes ownership of `key` (32 bytes): the caller must not reuse the buffer. */
  constructor(key: Uint8Array, metadata: Omit<TrustedSessionKeyMetadata, 'keyId'>) {
    if (!(key instanceof Uint8Array) || key.length !== 32) throw new NitroEnclaveError('ERR_TSK_INVALID_KEY', `a Trusted Session Key must be 32 bytes (AES-256), got ${key?.length ?? 'none'}`);
    this.#key = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
    this.#keyObject = createSecretKey(this.#key);
    const keyId = createHmac('sha256', this.#key).update('nitro-enclave-sdk/tsk/key-id').digest().subarray(0, 8).toString('hex');
    this.metadata = Object.freeze({ ...metadata, keyId });
  }

  #live(): Buffer {
    if (!this.#key) throw new NitroEnclaveError('ERR_TSK_DISPOSED', 'this TrustedSessionKey was disposed');
    return this.#key;
  }

  /** The key as a node:crypto secret KeyObject (for your own AES-256 use). */
  get keyObject(): KeyObject {
    this.#live();
    return this.#keyObject!;
  }

  get disposed(): boolean {
    return this.#key === null;
  }

  /** Seals `plaintext` with AES-256-GCM in envelope v1 (see {@link TSK_ENVELOPE_VERSION}). */
  encrypt(plaintext: Uint8Array, aad?: Uint8Array): Uint8Array {
    const key = this.#live();
    if (!(plaintext instanceof Uint8Array)) throw new TypeError('plaintext must be a Uint8Array');
    if (aad !== undefined && !(aad instanceof Uint8Array)) throw new TypeError('aad must be a Uint8Array');
    const header = Buffer.alloc(HEADER);
    header[0] = TSK_ENVELOPE_VERSION;
    Buffer.from(this.metadata.keyId, 'hex').copy(header, 1);
    randomBytes(12).copy(header, 9);
    const cipher = createCipheriv('aes-256-gcm', key, header.subarray(9, 21));
    cipher.setAAD(aad ? Buffer.concat([header, aad]) : header);
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return new Uint8Array(Buffer.concat([header, body, cipher.getAuthTag()]));
  }

  /** Opens an envelope made by {@link encrypt}; the same `aad` must be given. */
  decrypt(envelope: Uint8Array, aad?: Uint8Array): Uint8Array {
    const key = this.#live();
    if (!(envelope instanceof Uint8Array)) throw new TypeError('envelope must be a Uint8Array');
    if (envelope.length < HEADER + TAG) throw new NitroEnclaveError('ERR_TSK_MALFORMED', `envelope is ${envelope.length} bytes, shorter than header and tag`);
    if (envelope[0] !== TSK_ENVELOPE_VERSION) throw new NitroEnclaveError('ERR_TSK_MALFORMED', `envelope version ${envelope[0]} is not supported (expected ${TSK_ENVELOPE_VERSION})`);
    const id = Buffer.from(envelope.subarray(1, 9)).toString('hex');
    if (id !== this.metadata.keyId) throw new NitroEnclaveError('ERR_TSK_WRONG_KEY', `envelope was sealed with key id ${id}, this key is ${this.metadata.keyId}`);
    const header = envelope.subarray(0, HEADER);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, envelope.subarray(9, 21));
      decipher.setAAD(aad ? Buffer.concat([header, aad]) : header);
      decipher.setAuthTag(envelope.subarray(envelope.length - TAG));
      return new Uint8Array(Buffer.concat([decipher.update(envelope.subarray(HEADER, envelope.length - TAG)), decipher.final()]));
    } catch {
      throw new NitroEnclaveError('ERR_TSK_DECRYPT_FAILED', 'envelope failed authentication (wrong AAD, or tampered)');
    }
  }

  /** Zeroes the key bytes; every later use throws ERR_TSK_DISPOSED. */
  dispose(): void {
    this.#key?.fill(0);
    this.#key = null;
    this.#keyObject = null;
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
