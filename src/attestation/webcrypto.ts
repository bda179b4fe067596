// The verifier's only cryptography: WebCrypto (`globalThis.crypto.subtle`), present in Node ≥ 20,
// browsers, Deno, Bun and workerd. Nothing here imports `node:`, so the verifier bundles for the browser.
import { toHex } from '../internal/bytes.js';

export type EcCurve = 'P-256' | 'P-384' | 'P-521';
export type ShaName = 'SHA-256' | 'SHA-384' | 'SHA-512';

/** Byte length of one ECDSA scalar (r or s) on each curve. */
export const SCALAR_BYTES: Record<EcCurve, number> = { 'P-256': 32, 'P-384': 48, 'P-521': 66 };

/** A public key as one backend imported it (a WebCrypto `CryptoKey`, or a Node `KeyObject`); opaque elsewhere. */
export type VerifyKey = object;

/**
 * The cryptography the verifier needs. {@link webCryptoBackend} is the portable default; the
 * `node` export condition swaps in node-crypto.ts (see index.node.ts for why).
 */
export interface CryptoBackend {
  sha256Hex(bytes: Uint8Array): Promise<string>;
  /** Imports an uncompressed EC point for verification. */
  importEcPoint(point: Uint8Array, curve: EcCurve): Promise<VerifyKey>;
  /** ECDSA verify of an IEEE P1363 (r‖s) signature; `false` on any failure, never throws. */
  ecdsaVerify(key: VerifyKey, hash: ShaName, signature: Uint8Array, data: Uint8Array): Promise<boolean>;
  /** The key's curve when it is an ECDSA public key, else `null`. */
  keyCurve(key: VerifyKey): string | null;
  /**
   * {@link ecdsaVerify} of a DER ECDSA-Sig-Value (X.509's form), where the backend takes it as is.
   * The caller has checked it with {@link isStrictDerSignature} first, so it is exactly the r‖s
   * that {@link derSignatureToP1363} would have produced; node-crypto.ts sets it, which spares an
   * off-heap 96-byte buffer per chain link (each cost microseconds of allocation and collection).
   */
  ecdsaVerifyDer?(key: VerifyKey, hash: ShaName, derSignature: Uint8Array, data: Uint8Array): Promise<boolean>;
  /**
   * {@link ecdsaVerify} off the calling thread, for the chain links, which then run alongside each
   * other and the COSE check. No backend sets it: node-crypto.ts's {@link ecdsaVerifyDer} already
   * runs on the libuv pool, and WebCrypto runs every verify off-thread.
   */
  ecdsaVerifyConcurrent?(key: VerifyKey, hash: ShaName, signature: Uint8Array, data: Uint8Array): Promise<boolean>;
}

interface WebCryptoKey {
  readonly algorithm: { readonly name: string; readonly namedCurve?: string };
}

/** The part of `SubtleCrypto` the verifier uses. */
interface Subtle {
  digest(algorithm: string, data: Uint8Array): Promise<ArrayBuffer>;
  importKey(format: 'raw', keyData: Uint8Array, algorithm: { name: 'ECDSA'; namedCurve: EcCurve }, extractable: boolean, usages: ['verify']): Promise<WebCryptoKey>;
  verify(algorithm: { name: 'ECDSA'; hash: ShaName }, key: WebCryptoKey, signature: Uint8Array, data: Uint8Array): Promise<boolean>;
}

function subtle(): Subtle {
  const s = (globalThis as { crypto?: { subtle?: Subtle } }).crypto?.subtle;
  if (!s) throw new Error('WebCrypto (globalThis.crypto.subtle) is not available in this runtime');
  return s;
}

const view = (bytes: Uint8Array) => bytes;

export const webCryptoBackend: CryptoBackend = {
  async sha256Hex(bytes) {
    return toHex(new Uint8Array(await subtle().digest('SHA-256', view(bytes))));
  },
  importEcPoint(point, curve) {
    return subtle().importKey('raw', view(point), { name: 'ECDSA', namedCurve: curve }, false, ['verify']);
  },
  async ecdsaVerify(key, hash, signature, data) {
    try {
      return await subtle().verify({ name: 'ECDSA', hash }, key as WebCryptoKey, view(signature), view(data));
    } catch {
      return false;
    }
  },
  keyCurve(key) {
    const alg = (key as Partial<WebCryptoKey>).algorithm;
    return alg?.name === 'ECDSA' && typeof alg.namedCurve === 'string' ? alg.namedCurve : null;
  },
};

/** SHA-256 of `bytes` as lower-case hex, through WebCrypto. */
export const sha256Hex = (bytes: Uint8Array): Promise<string> => webCryptoBackend.sha256Hex(bytes);

/**
 * Where the two INTEGERs (r, s) of a strict-DER ECDSA-Sig-Value lie, or `null` when it is not
 * one: minimal, positive INTEGERs no wider than the curve, nothing after them.
 */
function derSignatureParts(der: Uint8Array, size: number): [rStart: number, rEnd: number, sStart: number, sEnd: number] | null {
  if (der.length < 8 || der[0] !== 0x30) return null;
  let pos = 1;
  let seqLen = der[pos++]!;
  if (seqLen === 0x81) {
    seqLen = der[pos++]!;
    if (seqLen < 0x80) return null;
  } else if (seqLen > 0x7f) return null;
  if (pos + seqLen !== der.length) return null;
  const out: [number, number, number, number] = [0, 0, 0, 0];
  for (let k = 0; k < 2; k++) {
    if (der[pos++] !== 0x02) return null;
    const len = der[pos++];
    if (len === undefined || len === 0 || len > 0x7f || pos + len > der.length) return null;
    let start = pos;
    const end = pos + len;
    pos = end;
    if (der[start]! & 0x80) return null; // negative
    if (der[start] === 0) {
      if (len === 1 || !(der[start + 1]! & 0x80)) return null; // zero, or non-minimal
      start++;
    }
    if (end - start > size) return null;
    out[2 * k] = start;
    out[2 * k + 1] = end;
  }
  return pos === der.length ? out : null;
}

/** Whether `der` is a strict-DER ECDSA-Sig-Value for `curve` (the checks of {@link derSignatureToP1363}). */
export function isStrictDerSignature(der: Uint8Array, curve: EcCurve): boolean {
  return derSignatureParts(der, SCALAR_BYTES[curve]) !== null;
}

/**
 * Converts a DER ECDSA-Sig-Value (X.509 signatures) to the r‖s form WebCrypto takes.
 * Strict DER: minimal, positive INTEGERs no wider than the curve; `null` otherwise.
 */
export function derSignatureToP1363(der: Uint8Array, curve: EcCurve): Uint8Array | null {
  const size = SCALAR_BYTES[curve];
  const parts = derSignatureParts(der, size);
  if (!parts) return null;
  const out = new Uint8Array(size * 2);
  for (let k = 0; k < 2; k++) {
    const int = der.subarray(parts[2 * k]!, parts[2 * k + 1]!);
    out.set(int, k * size + size - int.length);
  }
  return out;
}
