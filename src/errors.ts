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
  | 'ERR_NATIVE_UNAVAILABLE'
  | 'ERR_NATIVE_INTERNAL';

/** Codes raised by vsock streams. */
export type VsockErrorCode =
  | 'ERR_VSOCK_CONNECT'
  | 'ERR_VSOCK_TIMEOUT'
  | 'ERR_VSOCK_ABORTED'
  | 'ERR_VSOCK_RESET'
  | 'ERR_VSOCK_LISTEN'
  | 'ERR_VSOCK_PATH_TOO_LONG'
  | 'ERR_VSOCK_PEER_REFUSED';

/** Codes raised by the enclave's client of the parent's credentials server (`fromParentCredentials`, `fetchParentFile`). */
export type ParentErrorCode = 'ERR_PARENT_UNREACHABLE' | 'ERR_PARENT_TIMEOUT' | 'ERR_PARENT_REFUSED' | 'ERR_PARENT_PROTOCOL' | 'ERR_PARENT_NOT_FOUND';

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
  | 'ERR_KMS_PROTOCOL'
  | 'ERR_KMS_KEY_MISMATCH';

/** Codes raised by TrustedSessionKey. */
export type TskErrorCode = 'ERR_TSK_CLIENT_CLOSED' | 'ERR_TSK_DISPOSED' | 'ERR_TSK_INVALID_KEY' | 'ERR_TSK_MALFORMED' | 'ERR_TSK_WRONG_KEY' | 'ERR_TSK_DECRYPT_FAILED';

/** Codes raised by sealed workflow state (`nitro-enclave-sdk/workflow`) and its activity relay. */
export type WorkflowErrorCode =
  | 'ERR_SEALED_MALFORMED'
  | 'ERR_SEALED_WRONG_KEY'
  | 'ERR_SEALED_DECRYPT_FAILED'
  | 'ERR_SEALED_WRONG_WORKFLOW'
  | 'ERR_SEALED_WRONG_CHAIN'
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
  | 'ERR_ACTIVITY_ATTESTATION'
  | 'ERR_ACTIVITY_OVERLOADED'
  | 'ERR_ACTIVITY_FRAME_TIMEOUT'
  | 'ERR_ACTIVITY_DUPLICATE_ID';

/** Codes raised by attested sealing (nitro-enclave-sdk/seal). */
export type SealErrorCode =
  | 'ERR_SEAL_MALFORMED'
  | 'ERR_SEAL_UNSUPPORTED_VERSION'
  | 'ERR_SEAL_UNSUPPORTED_SUITE'
  | 'ERR_SEAL_ATTESTED_KEY_INVALID'
  | 'ERR_SEAL_KEY_NOT_FOUND'
  | 'ERR_SEAL_DECRYPT_FAILED'
  | 'ERR_SEAL_REPLAYED'
  | 'ERR_SEAL_STALE';

/** Codes raised by the Temporal payload codec (`nitro-enclave-sdk/temporal`). */
export type CodecErrorCode = 'ERR_CODEC_UNKNOWN_KEY' | 'ERR_CODEC_DECRYPT_FAILED' | 'ERR_CODEC_MALFORMED' | 'ERR_CODEC_UNENCRYPTED';

/** All error codes of the library. */
export type NitroEnclaveErrorCode = AttestationErrorCode | CmsErrorCode | NsmErrorCode | VsockErrorCode | ParentErrorCode | KmsErrorCode | TskErrorCode | SealErrorCode | WorkflowErrorCode | CodecErrorCode;

/** What a code means and what to do about it: the source of `docs/errors.md` (`npm run docs:errors`). */
export interface ErrorInfo {
  /** When the library raises it. */
  readonly when: string;
  /** What the caller or operator should do. */
  readonly remedy: string;
}

/**
 * Cause and remedy of every error code. A mapped type, so a new code without an entry does not
 * compile; `docs/errors.md` is generated from this record and a test keeps the two in step.
 *
 * @example
 * ```ts
 * import { ERROR_INFO, NitroEnclaveError } from 'nitro-enclave-sdk';
 * catch (err) { if (err instanceof NitroEnclaveError) console.error(ERROR_INFO[err.code].remedy); }
 * ```
 */
export const ERROR_INFO: { readonly [C in NitroEnclaveErrorCode]: ErrorInfo } = {
  ERR_ATTESTATION_MALFORMED: { when: 'the document is not a well-formed Nitro COSE_Sign1 or payload (the message names the field)', remedy: 'not an NSM document, or corrupted in transit' },
  ERR_ATTESTATION_UNSUPPORTED_ALGORITHM: { when: 'a COSE or certificate algorithm other than ES384 / ECDSA', remedy: 'Nitro documents use ES384 only: this is not a Nitro document' },
  ERR_ATTESTATION_SIGNATURE_INVALID: { when: 'the COSE signature does not verify with the leaf key', remedy: 'the payload or the signature was altered' },
  ERR_ATTESTATION_UNTRUSTED_ROOT: { when: '`cabundle[0]` is not a trust anchor', remedy: 'a forged chain; in tests pass the simulated enclave\'s `trustAnchors`' },
  ERR_ATTESTATION_CHAIN_INVALID: { when: 'a link does not verify, names differ, CA constraints or key usages fail, or a certificate does not parse', remedy: 'an altered or reordered chain' },
  ERR_ATTESTATION_CERT_EXPIRED: { when: 'a certificate expired at `currentDate` (leaves live about 3 hours)', remedy: 'verify fresh documents, or pass the document\'s time as `currentDate` for archives' },
  ERR_ATTESTATION_CERT_NOT_YET_VALID: { when: 'a certificate starts after `currentDate`', remedy: 'the clock is behind: fix it or set `clockToleranceMs`' },
  ERR_ATTESTATION_STALE: { when: '`timestamp` is older than the allowed age, or in the future', remedy: 'request a fresh document (replay protection)' },
  ERR_ATTESTATION_PCR_MISMATCH: { when: 'an expected PCR differs or is absent (expected and actual in hex)', remedy: 'a different image: update the expected values after a rebuild' },
  ERR_ATTESTATION_NONCE_MISMATCH: { when: 'the nonce is absent or different', remedy: 'a replayed or unrelated document' },
  ERR_ATTESTATION_PUBLIC_KEY_MISMATCH: { when: '`public_key` is absent or different', remedy: 'the document does not bind your key' },
  ERR_ATTESTATION_USER_DATA_MISMATCH: { when: '`user_data` is absent or different', remedy: 'the document does not bind your data' },
  ERR_ATTESTATION_DEBUG_MODE: { when: 'all-zero PCR0–2 (an enclave in debug mode) and `allowDebug` is not set', remedy: 'run the enclave without `--debug-mode`' },
  ERR_CMS_MALFORMED: { when: 'the envelope is not a well-formed EnvelopedData (or lacks an IV, or has trailing bytes)', remedy: 'a corrupted response' },
  ERR_CMS_UNSUPPORTED_ALGORITHM: { when: 'key transport other than RSAES-OAEP-SHA-256/MGF1-SHA-256, or content not AES-256-CBC', remedy: 'not a KMS envelope' },
  ERR_CMS_DECRYPT_FAILED: { when: 'the key does not unwrap or the padding is wrong (indistinguishable on purpose)', remedy: 'the envelope was made for another key' },
  ERR_NSM_INVALID_ARGUMENT: { when: 'the NSM answered `InvalidArgument`', remedy: 'check the request fields' },
  ERR_NSM_INVALID_INDEX: { when: 'the NSM answered `InvalidIndex` (PCR index ≥ 32)', remedy: 'use a PCR index below 32' },
  ERR_NSM_INVALID_RESPONSE: { when: 'the answer is not CBOR or not the expected shape', remedy: 'a device or driver fault: restart the enclave' },
  ERR_NSM_READ_ONLY_INDEX: { when: 'the NSM answered `ReadOnlyIndex` (a locked PCR)', remedy: 'extend an unlocked PCR (16 and up)' },
  ERR_NSM_INVALID_OPERATION: { when: 'the NSM answered `InvalidOperation`', remedy: 'the request is not valid in this state' },
  ERR_NSM_BUFFER_TOO_SMALL: { when: 'the answer is larger than the 12 KiB response buffer', remedy: 'shorten `user_data`, `nonce` or `public_key`' },
  ERR_NSM_INPUT_TOO_LARGE: { when: 'a field is over 1024 bytes, the request over 4 KiB, or the driver answered EMSGSIZE', remedy: 'shorten the request fields' },
  ERR_NSM_INTERNAL_ERROR: { when: 'the NSM answered `InternalError`, or the ioctl failed with another errno', remedy: 'retry; restart the enclave if it persists' },
  ERR_NSM_DEVICE_UNAVAILABLE: { when: '`/dev/nsm` cannot be opened', remedy: 'not inside an enclave: use the simulated NSM in tests' },
  ERR_NATIVE_UNAVAILABLE: { when: 'the native helper is not built (or the platform is not Linux)', remedy: '`npm rebuild nitro-enclave-sdk` with python3, make and a C compiler; with npm 11, approve its install script' },
  ERR_NATIVE_INTERNAL: { when: 'a Node-API call inside the native helper failed (the message names it)', remedy: 'a bug or an exhausted process (memory, threads): report it with the message' },
  ERR_VSOCK_CONNECT: { when: 'the connection was refused or unreachable (the errno is named)', remedy: 'start `vsock-proxy` on the parent (the message shows the command)' },
  ERR_VSOCK_TIMEOUT: { when: 'no connection within the timeout', remedy: 'the parent is not listening on that port' },
  ERR_VSOCK_ABORTED: { when: 'the `AbortSignal` fired', remedy: 'none: the caller cancelled' },
  ERR_VSOCK_RESET: { when: 'the remote side reset the stream', remedy: 'KMS calls retry it; check the proxy' },
  ERR_VSOCK_LISTEN: { when: 'bind, listen or accept failed', remedy: 'the port is in use, or there is no vsock' },
  ERR_VSOCK_PATH_TOO_LONG: { when: 'an AF_UNIX path is over 107 bytes in UTF-8 (it is never truncated)', remedy: 'use a shorter path' },
  ERR_VSOCK_PEER_REFUSED: { when: 'a listener with `allowedCids` closed a connection from another CID, or from a peer without one (reported to `onError`)', remedy: 'expected for strangers; otherwise check the enclave\'s CID' },
  ERR_PARENT_UNREACHABLE: { when: 'the parent\'s credentials server cannot be reached (the vsock error is the `cause`)', remedy: 'start `nitro-enclave credentials-server --enclave-cid <cid>` on the parent, on the port the enclave asks (default 8002)' },
  ERR_PARENT_TIMEOUT: { when: 'the parent\'s credentials server did not connect or answer within `timeoutMs`', remedy: 'check the server is running and healthy; raise `timeoutMs`' },
  ERR_PARENT_REFUSED: { when: 'the parent\'s credentials server closed the connection without an answer: it refused this enclave\'s CID, or could not obtain credentials', remedy: 'read the server\'s log; pass this enclave\'s CID as `--enclave-cid`' },
  ERR_PARENT_PROTOCOL: { when: 'the parent\'s answer is not JSON, over 64 KiB, or lacks the expected fields (its content is never quoted)', remedy: 'run the matching `credentials-server`; a hostile parent can only deny service' },
  ERR_PARENT_NOT_FOUND: { when: 'the parent does not offer the requested file', remedy: 'start the server with `--file <name>=<path>`' },
  ERR_KMS_ACCESS_DENIED: { when: 'KMS refused; the message shows this PCR0, debug mode, and the failing policy condition when readable', remedy: 'update the key policy with the PCR0 from `nitro-cli build-enclave`, or run the image you meant; check the credentials are the instance role\'s' },
  ERR_KMS_INVALID_CIPHERTEXT: { when: 'the blob is not KMS\'s, was altered, or the encryption context differs', remedy: 'pass the blob and the context used at provisioning' },
  ERR_KMS_INCORRECT_KEY: { when: 'the blob belongs to another key than `keyId`', remedy: 'provision the blob under the pinned key; if the parent served it, it served the wrong (or a hostile) blob' },
  ERR_KMS_KEY_MISMATCH: { when: 'KMS answered for another key than the pinned `keyId` (partition, region, account, or key id for a key ARN); the released envelope was zeroed unopened', remedy: 'something between the enclave and KMS is not what it should be: investigate; never relax `keyId`' },
  ERR_KMS_NOT_FOUND: { when: 'no such key or alias', remedy: 'run `nitro-enclave setup`; check the region' },
  ERR_KMS_DISABLED: { when: 'the key is disabled or pending deletion', remedy: 'enable it, or cancel its deletion' },
  ERR_KMS_VALIDATION: { when: 'KMS rejected a parameter (e.g. the document or its public key)', remedy: 'see the message' },
  ERR_KMS_WRONG_REGION: { when: 'the key is in another region than `region`, or the request was signed for another region than the endpoint\'s', remedy: 'use the key\'s region (and a matching vsock-proxy target)' },
  ERR_KMS_AUTHENTICATION: { when: 'the signature, credentials or token were rejected', remedy: 'check the credentials (`fromParentCredentials`, the server\'s `--enclave-cid`)' },
  ERR_KMS_UNAVAILABLE: { when: 'retryable failures until `maxAttempts`', remedy: 'KMS or the proxy is unhealthy; the message has the last error' },
  ERR_KMS_TIMEOUT: { when: 'the deadline passed while retrying', remedy: 'raise the timeout; check the proxy' },
  ERR_KMS_ABORTED: { when: 'the caller\'s `signal` fired', remedy: 'none: the caller cancelled' },
  ERR_KMS_PROTOCOL: { when: 'KMS returned plaintext despite `Recipient`, or no `CiphertextForRecipient`', remedy: 'something rewrites requests: investigate' },
  ERR_TSK_INVALID_KEY: { when: 'the released key is not 32 bytes', remedy: 'provision with `KeySpec: AES_256`' },
  ERR_TSK_DISPOSED: { when: 'the key was disposed', remedy: 'get a new one' },
  ERR_TSK_CLIENT_CLOSED: { when: 'a Trusted Session Key client was used after `close()`', remedy: 'create a new client with `createTrustedSessionKeyClient`' },
  ERR_TSK_MALFORMED: { when: 'the envelope is short or of an unknown version', remedy: 'not a TSK envelope, or truncated' },
  ERR_TSK_WRONG_KEY: { when: 'the envelope\'s clear key id is not this key\'s (decided before authentication: it says nothing about whether the envelope is authentic)', remedy: 'use the key it was sealed with' },
  ERR_TSK_DECRYPT_FAILED: { when: 'authentication failed (wrong associated data, tampered, or an envelope of another domain such as a sealed state or a Temporal payload)', remedy: 'the envelope was altered or belongs to another context' },
  ERR_ACTIVITY_ATTESTATION: { when: 'an attestation document was asked for and could not be made', remedy: 'check the NSM' },
  ERR_ACTIVITY_CANCELLED: { when: 'the activity was cancelled and the enclave aborted the step', remedy: '— (Temporal cancellation)' },
  ERR_ACTIVITY_DUPLICATE_ID: { when: 'a CALL reused a request id whose run has not settled on this connection (in flight, queued, or cancelled and still running)', remedy: 'use a fresh id per call (the SDK\'s client does); a hostile relay only refuses itself' },
  ERR_ACTIVITY_FRAME_TIMEOUT: { when: 'a frame was not complete within `limits.frameTimeoutMs` of its first byte; the enclave closed the connection', remedy: 'retryable: the parent stalled mid-frame' },
  ERR_ACTIVITY_OVERLOADED: { when: 'the enclave closed the connection: over `limits.maxConnections`, or a frame would exceed the server-wide `limits.maxBufferedBytes`', remedy: 'retryable: fewer connections or smaller states; raise the limits inside the enclave' },
  ERR_ACTIVITY_FRAME_MALFORMED: { when: 'a relay frame does not parse (type, lengths, fields)', remedy: 'a broken or hostile relay; the server keeps serving' },
  ERR_ACTIVITY_HANDLER_FAILED: { when: 'the handler threw; its message and stack are sealed in the failure\'s details (no plaintext leaves the enclave)', remedy: 'open the details inside an enclave with `openHandlerError`' },
  ERR_ACTIVITY_TIMEOUT: { when: 'no answer within `timeoutMs` (the enclave is told to cancel)', remedy: 'retryable; raise `timeoutMs` for long steps' },
  ERR_ACTIVITY_TOO_LARGE: { when: 'a frame is over `limits.maxMessageBytes` (default 8 MiB): the client refuses to send it; a header claiming more closes the enclave\'s connection', remedy: 'raise the limit on both sides, or keep state smaller (Temporal itself caps payloads at a few MiB)' },
  ERR_ACTIVITY_UNAVAILABLE: { when: 'the enclave is unreachable or the connection dropped mid-step (restart)', remedy: 'retryable: Temporal retries the activity' },
  ERR_ACTIVITY_UNKNOWN_HANDLER: { when: 'no handler of that activity name in the enclave', remedy: 'register it in `serveSealedActivities({ handlers })`' },
  ERR_SEALED_DECRYPT_FAILED: { when: 'the state failed authentication: tampered, truncated, its clear binding rewritten, or not a sealed state', remedy: 'the host altered it: refuse the step' },
  ERR_SEALED_MALFORMED: { when: 'a sealed state is short, of an unknown format, holds a TSK envelope of a version other than the current one, or its binding does not decode', remedy: 'truncated or not a sealed state' },
  ERR_SEALED_WRONG_AGENT: { when: 'authentic, but meant for another activity (agent)', remedy: 'the host handed this agent another agent\'s state' },
  ERR_SEALED_WRONG_KEY: { when: 'the state\'s clear key id names no key in the key (ring); decided before authentication, so it says nothing about whether the state is authentic', remedy: 'open with the key ring that holds the sealing key' },
  ERR_SEALED_WRONG_PRODUCER: { when: 'authentic, but produced by an agent this step does not accept', remedy: 'the host skipped or swapped an agent' },
  ERR_SEALED_WRONG_STEP: { when: 'authentic, but for another step number', remedy: 'the host reordered or replayed steps' },
  ERR_SEALED_WRONG_CHAIN: { when: 'authentic and of this workflow id, but of another chain: another run of the same workflow id (Temporal reuses ids after a run closes, for cron and continue-as-new)', remedy: 'the host replayed a state from another run: refuse it' },
  ERR_SEALED_WRONG_WORKFLOW: { when: 'authentic, but bound to another workflow id (message names both)', remedy: 'the host replayed another workflow\'s state' },
  ERR_SEAL_MALFORMED: { when: 'the sealed message is not bytes, or too short for its header, `enc` and tag', remedy: 'corrupted in transit' },
  ERR_SEAL_UNSUPPORTED_VERSION: { when: 'the message (or the document\'s attested key) has a version this release does not read, or a receiver with `replayWindowMs` got an unstamped version 1 message', remedy: 'upgrade the side that is older' },
  ERR_SEAL_UNSUPPORTED_SUITE: { when: 'HPKE suite ids other than DHKEM(P-256 or P-384) / AES-256-GCM', remedy: 'seal with a supported suite' },
  ERR_SEAL_ATTESTED_KEY_INVALID: { when: 'the verified document binds no `public_key`, or not a valid attested HPKE key', remedy: 'attest with `createAttestedReceiver().attest()`' },
  ERR_SEAL_KEY_NOT_FOUND: { when: 'the message is for a key this receiver does not hold: rotated away past its grace, or another enclave\'s', remedy: 'fetch a fresh document and seal again' },
  ERR_SEAL_REPLAYED: { when: 'a receiver with `replayWindowMs` opened a message with this id before (the parent, or whoever relays, sent it again)', remedy: 'seal every message anew; a replay is refused by design' },
  ERR_SEAL_STALE: { when: 'a receiver with `replayWindowMs`: the message\'s authenticated sealing time is outside the window around its clock, or older than the full replay cache still covers', remedy: 'seal it again now; check the sender\'s and the enclave\'s clocks' },
  ERR_SEAL_DECRYPT_FAILED: { when: 'HPKE open failed: tampered, sealed with other `info`, or not for this key (indistinguishable on purpose)', remedy: 'seal with the `info` the enclave opens with' },

  ERR_CODEC_DECRYPT_FAILED: { when: 'an encrypted payload failed authentication: altered ciphertext or metadata, or an envelope made for something else', remedy: 'no key fixes it: reset the workflow before that event or terminate it; find who writes your history' },
  ERR_CODEC_MALFORMED: { when: '`binary/encrypted` without a valid key id or data, a cipher tag other than exactly `tsk-v2`, an envelope of another version, or another codec\'s format', remedy: 'check every client and worker uses this codec' },
  ERR_CODEC_UNENCRYPTED: { when: '`rejectUnencrypted` is on and a payload is plaintext', remedy: 'give that producer the codec, or turn the option off while old histories remain' },
  ERR_CODEC_UNKNOWN_KEY: { when: 'a payload was sealed with a TSK the codec does not hold (the message names its key id and the ids held), or `encodeKeyId` is not in the ring', remedy: 'load that TSK and `ring.add(tsk)`: the workflow task retries and succeeds' },
};


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
  /** Stable machine-readable code, documented in `docs/errors.md` (from {@link ERROR_INFO}). */
  readonly code: NitroEnclaveErrorCode;

  constructor(code: NitroEnclaveErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NitroEnclaveError';
    this.code = code;
  }
}
