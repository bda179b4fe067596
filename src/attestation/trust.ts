import { fromBase64 } from '../internal/bytes.js';
import { sha256Hex, webCryptoBackend, type CryptoBackend } from './webcrypto.js';

export { sha256Hex };

/**
 * SHA-256 of the DER of the AWS Nitro Enclaves Root-G1 certificate
 * (CN=aws.nitro-enclaves, valid 2019-10-28 to 2049-10-28), as published by AWS.
 * Every real attestation document carries this certificate as `cabundle[0]`.
 */
export const AWS_NITRO_ROOT_G1_SHA256 = '641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b';

/** A certificate (DER bytes or PEM text) or a hex SHA-256 fingerprint of a certificate's DER. */
export type TrustAnchor = Uint8Array | string;

const PEM = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/g;

/** Normalises trust anchors to a set of lower-case fingerprints; rejects with a TypeError on anything else. */
export async function anchorFingerprints(anchors: readonly TrustAnchor[], backend: CryptoBackend = webCryptoBackend): Promise<Set<string>> {
  if (!Array.isArray(anchors) || anchors.length === 0) throw new TypeError('trustAnchors must be a non-empty array');
  const out = new Set<string>();
  for (const anchor of anchors) {
    if (anchor instanceof Uint8Array) {
      if (anchor.length === 0) throw new TypeError('trustAnchors: empty certificate');
      out.add(await backend.sha256Hex(anchor));
    } else if (typeof anchor === 'string' && /^[0-9a-fA-F]{64}$/.test(anchor.replace(/:/g, ''))) {
      out.add(anchor.replace(/:/g, '').toLowerCase());
    } else if (typeof anchor === 'string' && anchor.includes('-----BEGIN CERTIFICATE-----')) {
      for (const match of anchor.matchAll(PEM)) {
        const der = fromBase64(match[1]!);
        if (!der || der.length === 0) throw new TypeError('trustAnchors: a PEM certificate is not valid base64');
        out.add(await backend.sha256Hex(der));
      }
    } else {
      throw new TypeError('trustAnchors entries must be DER bytes, PEM text, or a hex SHA-256 fingerprint');
    }
  }
  return out;
}
