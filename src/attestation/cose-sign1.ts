import { NitroEnclaveError } from '../errors.js';
import { CborDecodeError, CborTag, decodeCbor, type CborKey, type CborValue } from '../internal/cbor.js';
import { webCryptoBackend, type CryptoBackend, type EcCurve, type ShaName, type VerifyKey } from './webcrypto.js';

/** A COSE signature algorithm (RFC 9053) with what verifying it takes. */
export interface CoseAlgorithm {
  name: string;
  hash: ShaName;
  signatureLength: number;
  curve: EcCurve;
}

/**
 * ES384 (-35), the one algorithm the Nitro Secure Module signs with; every other `alg` is
 * refused with `ERR_ATTESTATION_UNSUPPORTED_ALGORITHM`.
 */
const ES384: CoseAlgorithm = { name: 'ES384', hash: 'SHA-384', signatureLength: 96, curve: 'P-384' };

export interface CoseSign1 {
  /** The protected header exactly as received (a bstr's content). */
  readonly protectedBytes: Uint8Array;
  readonly protectedHeader: Map<CborKey, CborValue>;
  readonly unprotectedHeader: Map<CborKey, CborValue>;
  readonly payload: Uint8Array;
  readonly signature: Uint8Array;
  readonly tagged: boolean;
}

function malformed(message: string, cause?: unknown): NitroEnclaveError {
  return new NitroEnclaveError('ERR_ATTESTATION_MALFORMED', message, cause === undefined ? undefined : { cause });
}

export function decodeCborStrict(bytes: Uint8Array, what: string): CborValue {
  try {
    return decodeCbor(bytes, { maxDepth: 16 });
  } catch (err) {
    if (err instanceof CborDecodeError) throw malformed(`${what} is not valid CBOR: ${err.message}`);
    throw err;
  }
}

/**
 * Decodes a COSE_Sign1 structure (RFC 9052 §4.2): a 4-element array, either
 * untagged or wrapped in CBOR tag 18 and nothing else.
 */
export function decodeCoseSign1(bytes: Uint8Array): CoseSign1 {
  let value = decodeCborStrict(bytes, 'COSE_Sign1');
  let tagged = false;
  if (value instanceof CborTag) {
    if (value.tag !== 18) throw malformed(`COSE_Sign1 carries CBOR tag ${value.tag}, expected none or 18`);
    value = value.value;
    tagged = true;
  }
  if (!Array.isArray(value) || value.length !== 4) throw malformed('COSE_Sign1 must be an array of 4 elements');
  const [protectedBytes, unprotectedHeader, payload, signature] = value;
  if (!(protectedBytes instanceof Uint8Array)) throw malformed('COSE_Sign1 protected header must be a byte string');
  if (!(unprotectedHeader instanceof Map)) throw malformed('COSE_Sign1 unprotected header must be a map');
  if (!(payload instanceof Uint8Array)) throw malformed('COSE_Sign1 payload must be a byte string (detached payloads are not supported)');
  if (!(signature instanceof Uint8Array)) throw malformed('COSE_Sign1 signature must be a byte string');
  let protectedHeader: Map<CborKey, CborValue>;
  if (protectedBytes.length === 0) {
    protectedHeader = new Map();
  } else {
    const decoded = decodeCborStrict(protectedBytes, 'COSE_Sign1 protected header');
    if (!(decoded instanceof Map)) throw malformed('COSE_Sign1 protected header must encode a map');
    protectedHeader = decoded;
  }
  return { protectedBytes, protectedHeader, unprotectedHeader, payload, signature, tagged };
}

/** CBOR encoding of `["Signature1", protected, external_aad, payload]`, built from the bytes as received. */
export function sigStructure(protectedBytes: Uint8Array, payload: Uint8Array, externalAad: Uint8Array = EMPTY, into?: Uint8Array | null): Uint8Array {
  // Written straight into one buffer: the heads are at most 5 bytes each, and building each as
  // its own array and then concatenating showed as 5 % of a verification's own JavaScript.
  // `into`: room the caller allocated for it (see decodeDocument), used when it is large enough.
  const size = SIG_STRUCTURE_START.length + 15 + protectedBytes.length + externalAad.length + payload.length;
  const out = into && into.length >= size ? into : new Uint8Array(size);
  out.set(SIG_STRUCTURE_START, 0);
  let at = SIG_STRUCTURE_START.length;
  for (const part of [protectedBytes, externalAad, payload]) {
    at = writeHead(out, at, 2, part.length);
    out.set(part, at);
    at += part.length;
  }
  return out.subarray(0, at);
}

const EMPTY = new Uint8Array(0);
/** `84 6A "Signature1"`: the array head and the context string, the same in every Sig_structure. */
const SIG_STRUCTURE_START = Uint8Array.of(0x84, 0x6a, ...[...'Signature1'].map((c) => c.charCodeAt(0)));

/** Writes the shortest CBOR head of `major` with `length` at `at`; returns the offset after it. */
function writeHead(out: Uint8Array, at: number, major: number, length: number): number {
  const m = major << 5;
  if (length < 24) {
    out[at] = m | length;
    return at + 1;
  }
  if (length < 0x100) {
    out[at] = m | 24;
    out[at + 1] = length;
    return at + 2;
  }
  if (length < 0x10000) {
    out[at] = m | 25;
    out[at + 1] = length >> 8;
    out[at + 2] = length & 0xff;
    return at + 3;
  }
  out[at] = m | 26;
  out[at + 1] = (length >>> 24) & 0xff;
  out[at + 2] = (length >>> 16) & 0xff;
  out[at + 3] = (length >>> 8) & 0xff;
  out[at + 4] = length & 0xff;
  return at + 5;
}

/**
 * The algorithm named by the protected header; only ES384 passes. The one check of `alg`:
 * `decodeDocument` runs it first (before any certificate work) and hands the result on.
 */
export function coseAlgorithm(sign1: CoseSign1): CoseAlgorithm {
  const alg = sign1.protectedHeader.get(1);
  if (typeof alg !== 'number' && typeof alg !== 'string') {
    throw malformed('COSE_Sign1 protected header has no algorithm (label 1)');
  }
  if (alg !== -35) {
    throw new NitroEnclaveError('ERR_ATTESTATION_UNSUPPORTED_ALGORITHM', `COSE algorithm ${JSON.stringify(alg)} is not supported; Nitro attestation uses ES384 (-35) only`);
  }
  return ES384;
}

/**
 * Verifies a COSE_Sign1 signature with `key` (an ECDSA public key on the algorithm's
 * curve, as `backend` imported it; by default a WebCrypto `CryptoKey`). The signature is raw r‖s; high-S values are valid.
 * `alg` is the result of {@link coseAlgorithm} when the caller already has it.
 */
export async function verifyCoseSign1(sign1: CoseSign1, key: VerifyKey, backend: CryptoBackend = webCryptoBackend, alg: CoseAlgorithm = coseAlgorithm(sign1), room: Uint8Array | null = null): Promise<void> {
  if (sign1.signature.length !== alg.signatureLength) {
    throw malformed(`COSE_Sign1 signature is ${sign1.signature.length} bytes, ${alg.name} needs ${alg.signatureLength}`);
  }
  if (backend.keyCurve(key) !== alg.curve) {
    throw new NitroEnclaveError('ERR_ATTESTATION_CHAIN_INVALID', `signing key is not an ECDSA key on ${alg.curve}`);
  }
  const ok = await backend.ecdsaVerify(key, alg.hash, sign1.signature, sigStructure(sign1.protectedBytes, sign1.payload, EMPTY, room));
  if (!ok) throw new NitroEnclaveError('ERR_ATTESTATION_SIGNATURE_INVALID', 'COSE_Sign1 signature does not verify with the leaf certificate key');
}
