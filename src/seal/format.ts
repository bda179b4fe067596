import { Aes256Gcm, CipherSuite, DhkemP256HkdfSha256, DhkemP384HkdfSha384, HkdfSha256, HkdfSha384 } from '@hpke/core';
import { NitroEnclaveError } from '../errors.js';

/*
 * Byte layouts of nitro-enclave-sdk/seal, version 1. All integers are big-endian.
 *
 * Attested key (the attestation document's `public_key` field, made by the enclave):
 *   0      1  key format version (0x01)
 *   1..2   2  HPKE kem_id
 *   3..4   2  HPKE kdf_id
 *   5..6   2  HPKE aead_id
 *   7..    Npk  pkR, SerializePublicKey(pk) of the KEM (65 bytes for P-256, 97 for P-384)
 * The suite is inside the signed document, so the parent cannot downgrade it.
 *
 * Sealed message (made by the client), version 2 (written) and 1 (still read):
 *   0      1  message version (0x02; 0x01)
 *   1..6   6  kem_id, kdf_id, aead_id (equal to the attested key's)
 *   7..14  8  key id: the first 8 bytes of SHA-256(attested key)
 *   v2 only:
 *   15..22 8  sealed at: ms since the Unix epoch (u64), the sealer's clock
 *   23..38 16 message id: random
 *   next   Nenc  enc, the KEM's encapsulated key
 *   ..end  the HPKE ciphertext (plaintext length + 16-byte AES-GCM tag)
 * HPKE base mode, single shot. aad = every byte before the ciphertext (so the version, the time and
 * the id are authenticated: a receiver with `replayWindowMs` trusts them only after opening).
 * info = "nitro-enclave-sdk/seal v1" ‖ 0x00 ‖ SHA-256(attested key) ‖ application info,
 * so a message opens only under the attested key it was sealed to, and only in the
 * application context (info) it was sealed for.
 */

/** WebCrypto key types, named without the DOM lib (this package compiles against Node's types). */
export type WebCryptoKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;
export interface WebCryptoKeyPair {
  publicKey: WebCryptoKey;
  privateKey: WebCryptoKey;
}

export const KEY_FORMAT_VERSION = 1;
/** The message version sealers write. */
export const MESSAGE_VERSION = 2;
/** The version without a timestamp and id, still opened by receivers without `replayWindowMs`. */
export const MESSAGE_VERSION_UNSTAMPED = 1;
export const KEY_HEADER_LENGTH = 7;
export const KEY_ID_LENGTH = 8;
/** Bytes before `enc` in a version 1 message. */
export const MESSAGE_HEADER_LENGTH = 7 + KEY_ID_LENGTH;
export const MESSAGE_ID_LENGTH = 16;
/** Bytes before `enc` in a version 2 message: the v1 header, the u64 time and the message id. */
export const STAMPED_HEADER_LENGTH = MESSAGE_HEADER_LENGTH + 8 + MESSAGE_ID_LENGTH;
const TAG_LENGTH = 16;
const INFO_LABEL = new TextEncoder().encode('nitro-enclave-sdk/seal v1\0');

/** The HPKE suites a receiver can use. Both are WebCrypto-native in every runtime. */
export type SealSuiteName = 'P256-SHA256-AES256GCM' | 'P384-SHA384-AES256GCM';

export interface SealSuite {
  readonly name: SealSuiteName;
  readonly kemId: number;
  readonly kdfId: number;
  readonly aeadId: number;
  readonly curve: 'P-256' | 'P-384';
  readonly publicKeyLength: number;
  readonly hpke: CipherSuite;
}

interface SuiteSpec {
  name: SealSuiteName;
  kemId: number;
  kdfId: number;
  aeadId: number;
  curve: 'P-256' | 'P-384';
  publicKeyLength: number;
  make(): CipherSuite;
}

const SPECS: readonly SuiteSpec[] = [
  {
    name: 'P256-SHA256-AES256GCM',
    kemId: 0x0010,
    kdfId: 0x0001,
    aeadId: 0x0002,
    curve: 'P-256',
    publicKeyLength: 65,
    make: () => new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() }),
  },
  {
    name: 'P384-SHA384-AES256GCM',
    kemId: 0x0011,
    kdfId: 0x0002,
    aeadId: 0x0002,
    curve: 'P-384',
    publicKeyLength: 97,
    make: () => new CipherSuite({ kem: new DhkemP384HkdfSha384(), kdf: new HkdfSha384(), aead: new Aes256Gcm() }),
  },
];

/**
 * The default suite: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
 *
 * @example
 * ```ts
 * const receiver = await createAttestedReceiver({ nsm, suite: DEFAULT_SEAL_SUITE });
 * ```
 */
export const DEFAULT_SUITE: SealSuiteName = 'P256-SHA256-AES256GCM';

// CipherSuite objects hold only algorithm parameters (no keys), so they are safe to share.
const made = new Map<SealSuiteName, SealSuite>();

function build(spec: SuiteSpec): SealSuite {
  let suite = made.get(spec.name);
  if (!suite) {
    const { make, ...rest } = spec;
    suite = { ...rest, hpke: make() };
    made.set(spec.name, suite);
  }
  return suite;
}

/** The suite called `name`; a TypeError for anything else (it is an option). */
export function suiteByName(name: unknown): SealSuite {
  const spec = SPECS.find((s) => s.name === name);
  if (!spec) throw new TypeError(`suite must be one of ${SPECS.map((s) => s.name).join(', ')}`);
  return build(spec);
}

function suiteByIds(kemId: number, kdfId: number, aeadId: number, where: string): SealSuite {
  const spec = SPECS.find((s) => s.kemId === kemId && s.kdfId === kdfId && s.aeadId === aeadId);
  if (!spec) {
    throw new NitroEnclaveError('ERR_SEAL_UNSUPPORTED_SUITE', `${where} uses HPKE suite kem 0x${hex16(kemId)}, kdf 0x${hex16(kdfId)}, aead 0x${hex16(aeadId)}, which this version does not support`);
  }
  return build(spec);
}

const hex16 = (n: number) => n.toString(16).padStart(4, '0');
const u16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;

function putIds(out: Uint8Array, at: number, suite: SealSuite): void {
  out[at] = suite.kemId >> 8;
  out[at + 1] = suite.kemId & 0xff;
  out[at + 2] = suite.kdfId >> 8;
  out[at + 3] = suite.kdfId & 0xff;
  out[at + 4] = suite.aeadId >> 8;
  out[at + 5] = suite.aeadId & 0xff;
}

/** Encodes the attested key descriptor for `publicKey` (the KEM's serialized public key). */
export function encodeAttestedKey(suite: SealSuite, publicKey: Uint8Array): Uint8Array {
  const out = new Uint8Array(KEY_HEADER_LENGTH + publicKey.length);
  out[0] = KEY_FORMAT_VERSION;
  putIds(out, 1, suite);
  out.set(publicKey, KEY_HEADER_LENGTH);
  return out;
}

/** Reads a document's `public_key` as an attested HPKE key. */
export function parseAttestedKey(bytes: Uint8Array | null): { suite: SealSuite; publicKey: Uint8Array } {
  if (bytes === null || bytes.length === 0) {
    throw new NitroEnclaveError('ERR_SEAL_ATTESTED_KEY_INVALID', 'the attestation document binds no public_key to seal to');
  }
  if (bytes[0] !== KEY_FORMAT_VERSION) {
    throw new NitroEnclaveError('ERR_SEAL_UNSUPPORTED_VERSION', `the document's public_key has key format version ${bytes[0]}; this version reads ${KEY_FORMAT_VERSION}`);
  }
  if (bytes.length < KEY_HEADER_LENGTH) {
    throw new NitroEnclaveError('ERR_SEAL_ATTESTED_KEY_INVALID', `the document's public_key is ${bytes.length} bytes, shorter than its header`);
  }
  const suite = suiteByIds(u16(bytes, 1), u16(bytes, 3), u16(bytes, 5), "the document's public_key");
  const publicKey = bytes.slice(KEY_HEADER_LENGTH);
  if (publicKey.length !== suite.publicKeyLength || publicKey[0] !== 0x04) {
    throw new NitroEnclaveError('ERR_SEAL_ATTESTED_KEY_INVALID', `the document's public_key holds ${publicKey.length} key bytes; ${suite.name} needs an uncompressed ${suite.publicKeyLength}-byte point`);
  }
  return { suite, publicKey };
}

export async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
}

/** The HPKE `info` of a message sealed to the attested key whose SHA-256 is `keyHash`. */
export function buildInfo(keyHash: Uint8Array, appInfo: Uint8Array): Uint8Array {
  const out = new Uint8Array(INFO_LABEL.length + keyHash.length + appInfo.length);
  out.set(INFO_LABEL, 0);
  out.set(keyHash, INFO_LABEL.length);
  out.set(appInfo, INFO_LABEL.length + keyHash.length);
  return out;
}

/** When and under which id a message was sealed (version 2); authenticated once the message opens. */
export interface MessageStamp {
  /** ms since the Unix epoch, by the sealer's clock. */
  readonly sealedAtMs: number;
  readonly messageId: Uint8Array;
}

/** The bytes before the ciphertext: version 2, suite ids, key id, time, message id, enc. */
export function encodeHeader(suite: SealSuite, keyId: Uint8Array, enc: Uint8Array, stamp: MessageStamp): Uint8Array {
  if (!Number.isSafeInteger(stamp.sealedAtMs) || stamp.sealedAtMs < 0) throw new TypeError('the sealing time must be a non-negative integer of ms since the epoch');
  if (stamp.messageId.length !== MESSAGE_ID_LENGTH) throw new TypeError(`a message id is ${MESSAGE_ID_LENGTH} bytes`);
  const out = new Uint8Array(STAMPED_HEADER_LENGTH + enc.length);
  out[0] = MESSAGE_VERSION;
  putIds(out, 1, suite);
  out.set(keyId.subarray(0, KEY_ID_LENGTH), 7);
  new DataView(out.buffer, out.byteOffset, out.byteLength).setBigUint64(MESSAGE_HEADER_LENGTH, BigInt(stamp.sealedAtMs));
  out.set(stamp.messageId, MESSAGE_HEADER_LENGTH + 8);
  out.set(enc, STAMPED_HEADER_LENGTH);
  return out;
}

export interface ParsedMessage {
  version: number;
  suite: SealSuite;
  keyId: Uint8Array;
  /** Version 2 only; not authenticated until the message opened. */
  stamp: MessageStamp | undefined;
  enc: Uint8Array;
  /** Header bytes, the AEAD's aad. */
  aad: Uint8Array;
  ciphertext: Uint8Array;
}

/** Splits a sealed message; fails with ERR_SEAL_MALFORMED / _UNSUPPORTED_* before any cryptography. */
export function parseMessage(message: unknown): ParsedMessage {
  if (!(message instanceof Uint8Array)) throw new NitroEnclaveError('ERR_SEAL_MALFORMED', 'a sealed message must be a Uint8Array');
  if (message.length < MESSAGE_HEADER_LENGTH) {
    throw new NitroEnclaveError('ERR_SEAL_MALFORMED', `the sealed message is ${message.length} bytes, shorter than its ${MESSAGE_HEADER_LENGTH}-byte header`);
  }
  const version = message[0]!;
  if (version !== MESSAGE_VERSION && version !== MESSAGE_VERSION_UNSTAMPED) {
    throw new NitroEnclaveError('ERR_SEAL_UNSUPPORTED_VERSION', `the sealed message has version ${version}; this version opens ${MESSAGE_VERSION_UNSTAMPED} and ${MESSAGE_VERSION}`);
  }
  const suite = suiteByIds(u16(message, 1), u16(message, 3), u16(message, 5), 'the sealed message');
  const headerLength = version === MESSAGE_VERSION ? STAMPED_HEADER_LENGTH : MESSAGE_HEADER_LENGTH;
  const encEnd = headerLength + suite.publicKeyLength;
  if (message.length < encEnd + TAG_LENGTH) {
    throw new NitroEnclaveError('ERR_SEAL_MALFORMED', `the sealed message is ${message.length} bytes; ${suite.name} needs at least ${encEnd + TAG_LENGTH}`);
  }
  const stamp =
    version === MESSAGE_VERSION
      ? {
          sealedAtMs: Number(new DataView(message.buffer, message.byteOffset, message.byteLength).getBigUint64(MESSAGE_HEADER_LENGTH)),
          messageId: message.slice(MESSAGE_HEADER_LENGTH + 8, STAMPED_HEADER_LENGTH),
        }
      : undefined;
  return {
    version,
    suite,
    keyId: message.slice(7, MESSAGE_HEADER_LENGTH),
    stamp,
    enc: message.slice(headerLength, encEnd),
    aad: message.slice(0, encEnd),
    ciphertext: message.subarray(encEnd),
  };
}

export function optionalInfo(value: unknown): Uint8Array {
  if (value === undefined) return new Uint8Array(0);
  if (!(value instanceof Uint8Array)) throw new TypeError('info must be a Uint8Array');
  return value;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
