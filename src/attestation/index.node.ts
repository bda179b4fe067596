// `nitro-enclave-sdk/attestation` under the `node` export condition: the same API as index.ts,
// with node:crypto underneath (node-crypto.ts says why). Deno, Bun, workerd and browsers get
// index.ts through their own conditions, which come first in package.json.
import { createVerifierWith, type AttestationVerifier, type VerifiedAttestation, type VerifyAttestationOptions } from './verify.js';
import { nodeCryptoBackend } from './node-crypto.js';

export * from './index.js';

/**
 * Creates a verifier that caches parsed certificates and verified issuer→subject
 * signatures; see the portable {@link createAttestationVerifier} (same behaviour, node:crypto).
 *
 * @example
 * ```ts
 * const verifier = createAttestationVerifier();
 * const facts = await verifier.verify(doc, { expectedPcrs: { 0: pcr0Hex } });
 * ```
 */
export function createAttestationVerifier(config: { cacheSize?: number } = {}): AttestationVerifier {
  return createVerifierWith(nodeCryptoBackend, config);
}

let shared: AttestationVerifier | undefined;

/**
 * Verifies an AWS Nitro Enclaves attestation document offline (COSE_Sign1, chain to the pinned
 * AWS root, validity, expected values); same contract as the portable export, on node:crypto.
 *
 * @example
 * ```ts
 * const facts = await verifyAttestationDocument(doc, { nonce, maxAgeMs: 5 * 60_000 });
 * ```
 */
export function verifyAttestationDocument(document: Uint8Array, options?: VerifyAttestationOptions): Promise<VerifiedAttestation> {
  shared ??= createAttestationVerifier();
  return shared.verify(document, options);
}
