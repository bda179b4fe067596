/**
 * Every error this library throws on bad input or a failed check is a
 * {@link NitroEnclaveError} with a stable `code`. Invalid *options* throw a
 * plain `TypeError` instead, because they are programming mistakes rather
 * than runtime conditions a caller should switch on.
 *
 * Messages never contain key material or plaintext: only field names,
 * public measurements (PCRs), lengths and offsets.
 */

/** Codes raised while decoding and verifying attestation documents. */
export type AttestationErrorCode =
  | 'ERR_ATTESTATION_MALFORMED'
  | 'ERR_ATTESTATION_UNSUPPORTED_ALGORITHM'
  | 'ERR_ATTESTATION_SIGNATURE_INVALID'
  | 'ERR_ATTESTATION_UNTRUSTED_ROOT'
  | 'ERR_ATTESTATION_CHAIN_INVALID'
  | 'ERR_ATTESTATION_CERT_EXPIRED'
  | 'ERR_ATTESTATION_CERT_NOT_YET_VALID'
  | 'ERR_ATTESTATION_STALE'
  | 'ERR_ATTESTATION_PCR_MISMATCH'
  | 'ERR_ATTESTATION_NONCE_MISMATCH'
  | 'ERR_ATTESTATION_PUBLIC_KEY_MISMATCH'
  | 'ERR_ATTESTATION_USER_DATA_MISMATCH'
  | 'ERR_ATTESTATION_DEBUG_MODE';

/** Codes raised while opening CMS envelopes (`CiphertextForRecipient`). */
export type CmsErrorCode = 'ERR_CMS_MALFORMED' | 'ERR_CMS_UNSUPPORTED_ALGORITHM' | 'ERR_CMS_DECRYPT_FAILED';

/** Codes raised by the Nitro Secure Module client and the native helper. */
export type NsmErrorCode =
  | 'ERR_NSM_INVALID_ARGUMENT'
  | 'ERR_NSM_INVALID_INDEX'
  | 'ERR_NSM_INVALID_RESPONSE'
  | 'ERR_NSM_READ_ONLY_INDEX'
  | 'ERR_NSM_INVALID_OPERATION'
  | 'ERR_NSM_BUFFER_TOO_SMALL'
  | 'ERR_NSM_INPUT_TOO_LARGE'
  | 'ERR_NSM_INTERNAL_ERROR'
  | 'ERR_NSM_DEVICE_UNAVAILABLE'
  | 'ERR_NATIVE_UNAVAILABLE';

/** Codes raised by vsock streams. */
export type VsockErrorCode = 'ERR_VSOCK_CONNECT' | 'ERR_VSOCK_TIMEOUT' | 'ERR_VSOCK_ABORTED' | 'ERR_VSOCK_RESET' | 'ERR_VSOCK_LISTEN';

/** Codes raised by attested KMS calls and getTrustedSessionKey(). */
export type KmsErrorCode =
  | 'ERR_KMS_ACCESS_DENIED'
  | 'ERR_KMS_INVALID_CIPHERTEXT'
  | 'ERR_KMS_INCORRECT_KEY'
  | 'ERR_KMS_NOT_FOUND'
  | 'ERR_KMS_DISABLED'
  | 'ERR_KMS_VALIDATION'
  | 'ERR_KMS_WRONG_REGION'
  | 'ERR_KMS_AUTHENTICATION'
  | 'ERR_KMS_UNAVAILABLE'
  | 'ERR_KMS_TIMEOUT'
  | 'ERR_KMS_ABORTED'
  | 'ERR_KMS_PROTOCOL';

/** Codes raised by TrustedSessionKey. */
export type TskErrorCode = 'ERR_TSK_DISPOSED' | 'ERR_TSK_INVALID_KEY' | 'ERR_TSK_MALFORMED' | 'ERR_TSK_WRONG_KEY' | 'ERR_TSK_DECRYPT_FAILED';

/** Codes raised by sealed workflow state (`nitro-enclave-sdk/workflow`) and its activity relay. */
export type WorkflowErrorCode =
  | 'ERR_SEALED_MALFORMED'
  | 'ERR_SEALED_WRONG_KEY'
  | 'ERR_SEALED_DECRYPT_FAILED'
  | 'ERR_SEALED_WRONG_WORKFLOW'
  | 'ERR_SEALED_WRONG_AGENT'
  | 'ERR_SEALED_WRONG_STEP'
  | 'ERR_SEALED_WRONG_PRODUCER'
  | 'ERR_ACTIVITY_FRAME_MALFORMED'
  | 'ERR_ACTIVITY_TOO_LARGE'
  | 'ERR_ACTIVITY_UNKNOWN_HANDLER'
  | 'ERR_ACTIVITY_HANDLER_FAILED'
  | 'ERR_ACTIVITY_CANCELLED'
  | 'ERR_ACTIVITY_TIMEOUT'
  | 'ERR_ACTIVITY_UNAVAILABLE'
  | 'ERR_ACTIVITY_ATTESTATION';

/** All error codes of the library. */
export type NitroEnclaveErrorCode = AttestationErrorCode | CmsErrorCode | NsmErrorCode | VsockErrorCode | KmsErrorCode | TskErrorCode | WorkflowErrorCode;

/**
 * The one error class of nitro-enclave-sdk. Switch on `code`, not on the message.
 *
 * @example
 * ```ts
 * try {
 *   await verifyAttestationDocument(doc, { expectedPcrs: { 0: pcr0 } });
 * } catch (err) {
 *   if (err instanceof NitroEnclaveError && err.code === 'ERR_ATTESTATION_PCR_MISMATCH') {
 *     // a different enclave image
 *   }
 *   throw err;
 * }
 * ```
 */
export class NitroEnclaveError extends Error {
  /** Stable machine-readable code, documented in the README. */
  readonly code: NitroEnclaveErrorCode;

  constructor(code: NitroEnclaveErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NitroEnclaveError';
    this.code = code;
  }
}
