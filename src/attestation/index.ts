export { NitroEnclaveError } from '../errors.js';
export type { NitroEnclaveErrorCode, AttestationErrorCode } from '../errors.js';
export { verifyAttestationDocument, createAttestationVerifier } from './verify.js';
export type { VerifyAttestationOptions, VerifiedAttestation, AttestationVerifier, ExpectedPcrs, PcrSet } from './verify.js';
export { parseAttestationDocument } from './document.js';
export type { UnverifiedAttestation } from './document.js';
export { AWS_NITRO_ROOT_G1_SHA256 } from './trust.js';
export type { TrustAnchor } from './trust.js';
