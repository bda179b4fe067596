import { NitroEnclaveError } from '../errors.js';
import type { CborKey, CborValue } from '../internal/cbor.js';
import { copyBytes, toHex } from '../internal/bytes.js';
import { coseAlgorithm, decodeCborStrict, decodeCoseSign1, type CoseAlgorithm, type CoseSign1 } from './cose-sign1.js';

/**
 * Limits of an attestation document, as AWS's NSM produces it. They bound the work an
 * attacker can make us do before any signature is checked; docs/attestation.md lists them.
 */
export const LIMITS = {
  /** Whole COSE_Sign1 bytes. Real documents are 4.4–7.6 KB; the fields below at their limits fit in 16 KiB. */
  document: 16 * 1024,
  /** AWS documents the optional fields as 512 bytes, but real AWS-signed documents carry 1024. */
  optionalField: 1024,
  certificate: 1024,
  /** `cabundle` entries: AWS sends 4 (root, regional, zonal, instance); 8 leaves room for one more level and no more. */
  cabundle: 8,
  maxPcrs: 32,
  /** `timestamp` must fall in [2019-01-01, 2100-01-01) UTC: after Nitro Enclaves existed, well inside a JS Date. */
  timestampMin: Date.UTC(2019, 0, 1),
  timestampMax: Date.UTC(2100, 0, 1),
} as const;

const PCR_SIZES = new Set([32, 48, 64]);

/**
 * An attestation document decoded but **not verified**: nothing in it may be
 * trusted. Use {@link verifyAttestationDocument} for facts you can rely on.
 */
export interface UnverifiedAttestation {
  /** Always `false`: a reminder that nothing here was checked. */
  readonly verified: false;
  readonly moduleId: string;
  readonly digest: string;
  readonly timestamp: Date;
  readonly pcrs: Readonly<Record<number, Uint8Array>>;
  readonly pcrsHex: Readonly<Record<number, string>>;
  readonly certificate: Uint8Array;
  readonly cabundle: readonly Uint8Array[];
  readonly publicKey: Uint8Array | null;
  readonly userData: Uint8Array | null;
  readonly nonce: Uint8Array | null;
  /** PCR0, PCR1 and PCR2 are all zero: the enclave runs in debug mode. */
  readonly debugMode: boolean;
  /** The payload is an indefinite-length CBOR map (newer NSM versions). */
  readonly indefiniteLengthPayload: boolean;
}

/** The decoded document plus the raw COSE parts the verifier needs. */
export interface DecodedDocument {
  readonly sign1: CoseSign1;
  /** The checked `alg` (ES384). */
  readonly algorithm: CoseAlgorithm;
  readonly attestation: UnverifiedAttestation;
  /**
   * Unused room after the private copy, in the same allocation, for the Sig_structure
   * (`decodeDocument(doc, true)`; see there); `null` without it.
   */
  readonly sigStructureRoom: Uint8Array | null;
}

function malformed(message: string): NitroEnclaveError {
  return new NitroEnclaveError('ERR_ATTESTATION_MALFORMED', message);
}

function isAllZero(bytes: Uint8Array | undefined): boolean {
  return bytes !== undefined && bytes.every((b) => b === 0);
}

function hexOf(pcrs: Readonly<Record<number, Uint8Array>>): Record<number, string> {
  const out: Record<number, string> = {};
  for (const index of Object.keys(pcrs)) out[Number(index)] = toHex(pcrs[Number(index)]!);
  return out;
}

/** Applies the Nitro profile of COSE_Sign1 and decodes the payload, with every structural check. */
export function decodeDocument(document: Uint8Array, withSigStructureRoom = false): DecodedDocument {
  if (!(document instanceof Uint8Array)) throw new TypeError('document must be a Uint8Array');
  if (document.length > LIMITS.document) throw malformed(`document is ${document.length} bytes, more than the ${LIMITS.document} an NSM document can be`);
  // One private copy of the whole document, taken before anything is read: every field below is a
  // view into it. The caller cannot change what is verified while verification awaits (the bytes
  // signed are the bytes decoded), and one allocation replaces a copy per field (about 25: their
  // allocation and collection were half of decoding's time, measured with --cpu-prof; see
  // docs/performance-notes.md).
  //
  // With `withSigStructureRoom` the same allocation also holds room for the Sig_structure the
  // signature is checked over (at most the document's length plus 32 bytes: the context string and
  // three heads). Each buffer over 64 bytes is an allocation outside the JavaScript heap; the two
  // of a warm verification measured as much as decoding itself (--cpu-prof).
  const n = document.length;
  let own: Uint8Array;
  let sigStructureRoom: Uint8Array | null = null;
  if (withSigStructureRoom) {
    const whole = new Uint8Array(2 * n + 32);
    whole.set(document);
    own = whole.subarray(0, n);
    sigStructureRoom = whole.subarray(n);
  } else {
    own = copyBytes(document);
  }
  const sign1 = decodeCoseSign1(own);
  const header = sign1.protectedHeader;
  if (header.size !== 1 || !header.has(1)) {
    throw malformed('protected header must be exactly {1: -35} (alg: ES384)');
  }
  const algorithm = coseAlgorithm(sign1);
  if (sign1.unprotectedHeader.size !== 0) throw malformed('unprotected header must be an empty map');
  if (sign1.signature.length !== 96) throw malformed(`signature must be 96 bytes (ES384 r||s), got ${sign1.signature.length}`);

  const payload = decodeCborStrict(sign1.payload, 'payload');
  if (!(payload instanceof Map)) throw malformed('payload must be a CBOR map');
  for (const key of payload.keys()) {
    if (typeof key !== 'string') throw malformed(`payload key ${String(key)} is not a text string`);
  }
  // Unknown text keys are tolerated (forward compatibility): they are signed, but not reported.
  const get = (key: string): CborValue => payload.get(key);

  const moduleId = get('module_id');
  if (typeof moduleId !== 'string' || moduleId.length === 0) throw malformed('module_id must be non-empty text');
  const digest = get('digest');
  if (digest !== 'SHA384') throw malformed(`digest must be "SHA384", got ${JSON.stringify(typeof digest === 'string' ? digest : typeof digest)}`);
  const timestamp = get('timestamp');
  if (typeof timestamp !== 'number' || !Number.isInteger(timestamp) || !(timestamp >= LIMITS.timestampMin && timestamp < LIMITS.timestampMax)) {
    throw malformed('timestamp must be an integer number of milliseconds since the epoch between 2019-01-01 and 2100-01-01');
  }

  const pcrMap = get('pcrs');
  if (!(pcrMap instanceof Map) || pcrMap.size < 1 || pcrMap.size > LIMITS.maxPcrs) throw malformed('pcrs must be a map of 1 to 32 entries');
  const pcrs: Record<number, Uint8Array> = {};
  for (const [index, value] of pcrMap as Map<CborKey, CborValue>) {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > 31) throw malformed(`pcrs key ${String(index)} is not an index 0..31`);
    if (!(value instanceof Uint8Array) || !PCR_SIZES.has(value.length)) throw malformed(`pcrs[${index}] must be 32, 48 or 64 bytes`);
    pcrs[index] = value;
  }
  let pcrsHex: Record<number, string> | undefined;

  const certificate = get('certificate');
  if (!(certificate instanceof Uint8Array) || certificate.length === 0) throw malformed('certificate must be DER bytes');
  const bundle = get('cabundle');
  if (!Array.isArray(bundle) || bundle.length === 0) throw malformed('cabundle must be a non-empty array');
  if (bundle.length > LIMITS.cabundle) throw malformed(`cabundle has ${bundle.length} certificates, at most ${LIMITS.cabundle} are accepted`);
  const cabundle = bundle.map((cert, i) => {
    if (!(cert instanceof Uint8Array) || cert.length < 1 || cert.length > LIMITS.certificate) {
      throw malformed(`cabundle[${i}] must be DER bytes of 1..${LIMITS.certificate} bytes`);
    }
    return cert;
  });

  const optional = (key: string): Uint8Array | null => {
    const value = get(key);
    if (value === undefined || value === null) return null;
    if (!(value instanceof Uint8Array) || value.length > LIMITS.optionalField) throw malformed(`${key} must be null or bytes of at most ${LIMITS.optionalField}`);
    return value;
  };
  const publicKey = optional('public_key');
  const userData = optional('user_data');
  const nonce = optional('nonce');
  return {
    sign1,
    algorithm,
    sigStructureRoom,
    attestation: {
      verified: false,
      moduleId,
      digest,
      timestamp: new Date(timestamp),
      pcrs,
      // Hex on first read: 16 PCRs of 48 bytes took longer than the rest of decoding (--cpu-prof),
      // and a verifier's caller reads one PCR, often none. Computed once, then the same object.
      get pcrsHex() {
        return (pcrsHex ??= hexOf(pcrs));
      },
      certificate,
      cabundle,
      publicKey,
      userData,
      nonce,
      debugMode: isAllZero(pcrs[0]) && isAllZero(pcrs[1]) && isAllZero(pcrs[2]),
      indefiniteLengthPayload: sign1.payload[0] === 0xbf,
    },
  };
}

/**
 * Decodes an attestation document **without verifying it** — for inspection
 * tools and diagnostics only. Structural checks still apply (a malformed
 * document throws `ERR_ATTESTATION_MALFORMED`), but the signature, the
 * certificate chain and all freshness checks are skipped.
 *
 * @example
 * ```ts
 * const info = parseAttestationDocument(doc);
 * console.log(info.verified, info.moduleId, info.pcrsHex[0]); // false, "i-…-enc…", "e72a…"
 * ```
 */
export function parseAttestationDocument(document: Uint8Array): UnverifiedAttestation {
  return decodeDocument(document).attestation;
}
