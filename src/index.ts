export * from './attestation/index.js';
export { createTrustedSessionKeyClient, getTrustedSessionKey, prepareTrustedSessionKey, clearTrustedSessionKeyCache, TrustedSessionKey, TSK_ENVELOPE_VERSION, fromParentCredentials, fetchParentFile } from './kms/index.js';
export type { TrustedSessionKeyClient, TrustedSessionKeyClientOptions, TrustedSessionKeyRequest, TrustedSessionKeyRingRequest, TrustedSessionKeyBlob, TrustedSessionKeyRing, GetTrustedSessionKeyOptions, KmsTransport, TskTimings, TrustedSessionKeyMetadata, NitroEnclaveErrorCode } from './kms/index.js';
export { ERROR_INFO } from './errors.js';
export type { ErrorInfo } from './errors.js';
