export * from './attestation/index.js';
export { getTrustedSessionKey, prepareTrustedSessionKey, clearTrustedSessionKeyCache, lastTrustedSessionKeyTimings, TrustedSessionKey, TSK_ENVELOPE_VERSION, fromParentCredentials, fetchParentFile } from './kms/index.js';
export type { GetTrustedSessionKeyOptions, KmsTransport, TskTimings, TrustedSessionKeyMetadata, NitroEnclaveErrorCode } from './kms/index.js';
export { ERROR_INFO } from './errors.js';
export type { ErrorInfo } from './errors.js';
