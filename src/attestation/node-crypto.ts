// The Node fast path, chosen only through the package's `node` export condition (index.node.ts).
// Why it exists: measured by `npm run bench` in the same run, Node's WebCrypto costs more than
// node:crypto for this work -- each subtle.verify/digest is a thread-pool job with WebIDL argument
// checks, while crypto.verify/createHash run inline. The portable path stays the default.
import { createHash, KeyObject, verify, webcrypto } from 'node:crypto';
import type { CryptoBackend, EcCurve, ShaName } from './webcrypto.js';

const HASH: Record<ShaName, string> = { 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };
const CURVE: Record<string, EcCurve> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

const curves = new WeakMap<KeyObject, EcCurve | null>();

export const nodeCryptoBackend: CryptoBackend = {
  async sha256Hex(bytes) {
    return createHash('sha256').update(bytes).digest('hex');
  },
  async importEcPoint(point, curve) {
    // WebCrypto's raw import then KeyObject.from measured 2x faster than createPublicKey(spki) (0.076 vs 0.148 ms, P-384).
    return KeyObject.from(await webcrypto.subtle.importKey('raw', point, { name: 'ECDSA', namedCurve: curve }, true, ['verify']));
  },
  async ecdsaVerify(key, hash, signature, data) {
    try {
      return verify(HASH[hash], data, { key: key as KeyObject, dsaEncoding: 'ieee-p1363' }, signature);
    } catch {
      return false;
    }
  },
  // The chain links (the only DER signatures) on the libuv pool: crypto.verify with a callback,
  // beside the inline COSE check, so the four link verifies and the COSE verify use every core
  // there is. Measured on the idle 2-core machine (bench/attestation.mjs, 3 runs x 5 repetitions):
  // a cold verification takes 0.74-0.75 x the inline path's wall time (0.78-0.80 x the
  // single-thread work floor) for 1.08-1.11 x its CPU time (every thread counted); on a loaded
  // machine with no idle core the two were even (0.95-1.05 x). A real enclave's vCPUs are its own.
  // `inlineNodeCryptoBackend` below is the same with every verify inline.
  ecdsaVerifyDer(key, hash, derSignature, data) {
    return new Promise((resolve) => {
      try {
        verify(HASH[hash], data, key as KeyObject, derSignature, (err, ok) => resolve(!err && ok === true));
      } catch {
        resolve(false);
      }
    });
  },
  keyCurve(key) {
    if (!(key instanceof KeyObject) || key.asymmetricKeyType !== 'ec') return null;
    // asymmetricKeyDetails is a native call that builds a new object each time: once per key.
    let curve = curves.get(key);
    if (curve === undefined) curves.set(key, (curve = CURVE[key.asymmetricKeyDetails?.namedCurve ?? ''] ?? null));
    return curve;
  },
};

/** {@link nodeCryptoBackend} with the chain links verified inline on the calling thread (the bench's comparison). */
export const inlineNodeCryptoBackend: CryptoBackend = {
  ...nodeCryptoBackend,
  async ecdsaVerifyDer(key, hash, derSignature, data) {
    try {
      return verify(HASH[hash], data, key as KeyObject, derSignature);
    } catch {
      return false;
    }
  },
};
