import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { NitroEnclaveError } from '../errors.js';
import { defaultGcm, type Gcm } from '../internal/gcm.js';
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
 * {@link TrustedSessionKey.decrypt} opens versions 1 and 2. Byte-level spec: docs/formats.md.
 *
 * Envelope v2 (written by `encrypt`, and by sealed state and the payload codec in their own domains):
 *
 *   offset 0   1 byte   version = 0x02
 *   offset 1   8 bytes  key id = HMAC-SHA256(key, "nitro-enclave-sdk/tsk/key-id")[0..8]
 *   offset 9  24 bytes  nonce (random, 192 bits)
 *   offset 33  n bytes  XAES-256-GCM ciphertext (c2sp.org/XAES-256-GCM)
 *   last      16 bytes  GCM tag
 *
 *   GCM AAD = header (bytes 0..33) ‖ u16be(len(label)) ‖ label ‖ associated data
 *
 * `label` names the use ({@link TSK_ENVELOPE_DOMAINS}): `encrypt`/`decrypt` always use
 * "nitro-enclave-sdk/tsk/encrypt" with the caller's AAD; sealed workflow state and Temporal payloads
 * use their own labels. The length prefix makes (label, data) → bytes injective, so no caller AAD
 * can produce the AAD of another domain: no `encrypt(x, anyAad)` is a sealed state or a payload, and
 * neither opens through `decrypt`.
 *
 * Envelope v1 (written by 0.1; opened only by `decrypt`, never by sealed state or the codec):
 *
 *   offset 0   1 byte   version = 0x01
 *   offset 1   8 bytes  key id (as above)
 *   offset 9  12 bytes  nonce (random, 96 bits)
 *   offset 21  n bytes  AES-256-GCM ciphertext
 *   last      16 bytes  GCM tag
 *
 *   GCM AAD = header (bytes 0..21) ‖ caller AAD   (v1 had no domains)
 *
 * The TSK is shared by every instance and restart of the enclave image, so v1's random 96-bit
 * nonces cap it at about 2³² messages fleet-wide; v2's 192-bit nonces lift that cap.
 *
 * @example
 * ```ts
 * const sealed = tsk.encrypt(plaintext);
 * sealed[0] === TSK_ENVELOPE_VERSION; // 2
 * ```
 */
export const TSK_ENVELOPE_VERSION = 2;

/**
 * The domain label of every use of a TSK envelope v2 (see {@link TSK_ENVELOPE_VERSION}). Each use
 * has its own label, and the label is length-prefixed in the authenticated data, so an envelope of
 * one domain never opens in another. `encrypt` is the only domain caller AAD can reach.
 *
 * @example
 * ```ts
 * TSK_ENVELOPE_DOMAINS.encrypt; // 'nitro-enclave-sdk/tsk/encrypt'
 * ```
 */
export const TSK_ENVELOPE_DOMAINS = Object.freeze({
  /** `TrustedSessionKey.encrypt` / `decrypt`, followed by the caller's AAD. */
  encrypt: 'nitro-enclave-sdk/tsk/encrypt',
  /** Sealed workflow state (nitro-enclave-sdk/workflow), followed by the state's clear prefix. */
  sealedState: 'nitro-enclave-sdk/workflow/sealed-state',
  /** Temporal payloads (nitro-enclave-sdk/temporal), followed by nothing. */
  temporalPayload: 'nitro-enclave-sdk/temporal/payload',
} as const);

/** One of the {@link TSK_ENVELOPE_DOMAINS}. */
export type TskEnvelopeDomain = keyof typeof TSK_ENVELOPE_DOMAINS;

/** The HMAC-SHA256 message whose first 8 bytes, under the key, are the key id. */
export const TSK_KEY_ID_LABEL = 'nitro-enclave-sdk/tsk/key-id';

const V1_HEADER = 21;
const V2_HEADER = 1 + 8 + XAES_NONCE_BYTES;
const TAG = 16;

// u16be(len(label)) ‖ label, per domain: the bytes authenticated between the header and the data.
const DOMAIN_PREFIX: Readonly<Record<TskEnvelopeDomain, Buffer>> = Object.freeze(
  Object.fromEntries(
    Object.entries(TSK_ENVELOPE_DOMAINS).map(([name, label]) => {
      const bytes = Buffer.from(label, 'utf8');
      const out = Buffer.alloc(2 + bytes.length);
      out.writeUInt16BE(bytes.length, 0);
      bytes.copy(out, 2);
      return [name, out];
    }),
  ) as Record<TskEnvelopeDomain, Buffer>,
);

const REDACTED = '[REDACTED]';

/** The plaintext, or its consecutive parts (sealed as their concatenation, which is never made). */
type Plaintext = Uint8Array | readonly Uint8Array[];
type Seal = (tsk: TrustedSessionKey, domain: TskEnvelopeDomain, prefix: Uint8Array | undefined, plaintext: Plaintext, data: Uint8Array | undefined) => Uint8Array;
type Open = (tsk: TrustedSessionKey, domain: TskEnvelopeDomain, envelope: Uint8Array, data: Uint8Array | undefined) => Uint8Array;
type Brand = (value: unknown) => boolean;
let seal!: Seal;
let open!: Open;
let brand!: Brand;

/**
 * @internal For sealed state and the payload codec: `prefix ‖ envelope v2` in one buffer, sealed in
 * `domain` with `data` authenticated after the label. `plaintext` may be given in parts: the
 * envelope is that of their concatenation, without the concatenation ever being made (the codec
 * seals a payload's serialized head and its data this way, with no plaintext copy to zero).
 */
export function sealInDomain(tsk: TrustedSessionKey, domain: Exclude<TskEnvelopeDomain, 'encrypt'>, prefix: Uint8Array | undefined, plaintext: Plaintext, data: Uint8Array | undefined): Uint8Array {
  return seal(tsk, domain, prefix, plaintext, data);
}

/**
 * @internal Opens an envelope of `domain`; only the current version (v2): ERR_TSK_MALFORMED for
 * any other, so a v1 envelope never passes as sealed state or a payload.
 */
export function openInDomain(tsk: TrustedSessionKey, domain: Exclude<TskEnvelopeDomain, 'encrypt'>, envelope: Uint8Array, data: Uint8Array | undefined): Uint8Array {
  return open(tsk, domain, envelope, data);
}

/** @internal True for a TrustedSessionKey of this copy of the package (the domain hooks need one). */
export function isTrustedSessionKey(value: unknown): value is TrustedSessionKey {
  return brand(value);
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
  readonly #gcm: Gcm;
  readonly #keyIdBytes: Buffer;

  /** Takes ownership of `key` (32 bytes): the caller must not reuse the buffer. */
  constructor(key: Uint8Array, metadata: Omit<TrustedSessionKeyMetadata, 'keyId'>) {
    if (!(key instanceof Uint8Array) || key.length !== 32) throw new NitroEnclaveError('ERR_TSK_INVALID_KEY', `a Trusted Session Key must be 32 bytes (AES-256), got ${key?.length ?? 'none'}`);
    this.#key = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
    this.#keyObject = createSecretKey(this.#key);
    this.#gcm = defaultGcm();
    this.#xaes = new XaesKey(this.#key, this.#gcm);
    this.#keyIdBytes = createHmac('sha256', this.#key).update(TSK_KEY_ID_LABEL).digest().subarray(0, 8);
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
   * Seals `plaintext` with XAES-256-GCM in envelope v2 (layout at {@link TSK_ENVELOPE_VERSION}), in
   * the `encrypt` domain; `aad` is authenticated, not stored. Whatever `aad` is, the result is never
   * a sealed workflow state or a Temporal payload.
   */
  encrypt(plaintext: Uint8Array, aad?: Uint8Array): Uint8Array {
    if (aad !== undefined && !(aad instanceof Uint8Array)) throw new TypeError('aad must be a Uint8Array');
    return this.#seal('encrypt', undefined, plaintext, aad);
  }

  // `prefix` bytes are written before the envelope in the same buffer (one allocation, no concat):
  // for sealed workflow state, whose clear header precedes its envelope.
  #seal(domain: TskEnvelopeDomain, prefix: Uint8Array | undefined, plaintext: Plaintext, data: Uint8Array | undefined): Uint8Array {
    this.#live();
    let length = 0;
    if (plaintext instanceof Uint8Array) length = plaintext.length;
    else if (Array.isArray(plaintext) && plaintext.every((part) => part instanceof Uint8Array)) for (const part of plaintext) length += part.length;
    else throw new TypeError('plaintext must be a Uint8Array');
    // One allocation for the envelope, made before the cipher's output exists (allocated after it, the
    // same buffer cost several times more: docs/performance-notes.md); the header is written in place
    // and the ciphertext encrypted into it (src/internal/gcm.ts: natively, or copied once from
    // node:crypto's output), where v1 concatenated three times.
    const p = prefix?.length ?? 0;
    const buffer = Buffer.allocUnsafeSlow(p + V2_HEADER + length + TAG);
    if (prefix) buffer.set(prefix);
    const out = buffer.subarray(p);
    out[0] = TSK_ENVELOPE_VERSION;
    this.#keyIdBytes.copy(out, 1);
    const header = out.subarray(0, V2_HEADER);
    // The nonce is written into the header before encryption, so the AAD (header ‖ u16 ‖ label ‖
    // data) covers it; the parts are encrypted straight into the envelope after the header.
    const aad = data?.length ? [header, DOMAIN_PREFIX[domain], data] : [header, DOMAIN_PREFIX[domain]];
    this.#xaes!.seal(out.subarray(9, V2_HEADER), aad, plaintext instanceof Uint8Array ? [plaintext] : plaintext, out, V2_HEADER);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
  }

  /**
   * Opens an envelope made by {@link encrypt} (v2) or by 0.1 (v1); the same `aad` must be given.
   * Sealed workflow states and Temporal payloads never open here, whatever the `aad`.
   */
  decrypt(envelope: Uint8Array, aad?: Uint8Array): Uint8Array {
    if (aad !== undefined && !(aad instanceof Uint8Array)) throw new TypeError('aad must be a Uint8Array');
    return this.#open('encrypt', envelope, aad, true);
  }

  #open(domain: TskEnvelopeDomain, envelope: Uint8Array, data: Uint8Array | undefined, allowV1: boolean): Uint8Array {
    const key = this.#live();
    if (!(envelope instanceof Uint8Array)) throw new TypeError('envelope must be a Uint8Array');
    const version = envelope[0];
    if (version !== TSK_ENVELOPE_VERSION && !(allowV1 && version === 1)) {
      throw new NitroEnclaveError('ERR_TSK_MALFORMED', `envelope version ${version ?? 'none'} is not supported (expected ${allowV1 ? '1 or 2' : TSK_ENVELOPE_VERSION})`);
    }
    const headerLength = version === 1 ? V1_HEADER : V2_HEADER;
    if (envelope.length < headerLength + TAG) throw new NitroEnclaveError('ERR_TSK_MALFORMED', `envelope is ${envelope.length} bytes, shorter than the v${version} header and tag`);
    if (!this.#keyIdBytes.equals(envelope.subarray(1, 9))) {
      throw new NitroEnclaveError('ERR_TSK_WRONG_KEY', `envelope was sealed with key id ${Buffer.from(envelope.subarray(1, 9)).toString('hex')}, this key is ${this.metadata.keyId}`);
    }
    const header = envelope.subarray(0, headerLength);
    const nonce = envelope.subarray(9, headerLength);
    const ciphertext = envelope.subarray(headerLength, envelope.length - TAG);
    const tag = envelope.subarray(envelope.length - TAG);
    // v1 predates domains: it is reachable only from decrypt (allowV1), where the domain is `encrypt`.
    const out =
      version === 1
        ? this.#gcm.open(key, nonce, data?.length ? [header, data] : [header], ciphertext, tag)
        : this.#xaes!.open(nonce, data?.length ? [header, DOMAIN_PREFIX[domain], data] : [header, DOMAIN_PREFIX[domain]], ciphertext, tag);
    if (!out) throw new NitroEnclaveError('ERR_TSK_DECRYPT_FAILED', 'envelope failed authentication (wrong AAD, tampered, or sealed for another use)');
    return out;
  }

  static {
    seal = (tsk, domain, prefix, plaintext, data) => tsk.#seal(domain, prefix, plaintext, data);
    open = (tsk, domain, envelope, data) => tsk.#open(domain, envelope, data, false);
    brand = (value) => typeof value === 'object' && value !== null && #keyIdBytes in value;
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
