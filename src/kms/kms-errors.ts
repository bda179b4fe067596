import { NitroEnclaveError, type KmsErrorCode } from '../errors.js';

const BY_NAME: Record<string, KmsErrorCode> = {
  AccessDeniedException: 'ERR_KMS_ACCESS_DENIED',
  InvalidCiphertextException: 'ERR_KMS_INVALID_CIPHERTEXT',
  IncorrectKeyException: 'ERR_KMS_INCORRECT_KEY',
  NotFoundException: 'ERR_KMS_NOT_FOUND',
  DisabledException: 'ERR_KMS_DISABLED',
  KMSInvalidStateException: 'ERR_KMS_DISABLED',
  ValidationException: 'ERR_KMS_VALIDATION',
  InvalidKeyUsageException: 'ERR_KMS_VALIDATION',
  UnrecognizedClientException: 'ERR_KMS_AUTHENTICATION',
  InvalidSignatureException: 'ERR_KMS_AUTHENTICATION',
  IncompleteSignatureException: 'ERR_KMS_AUTHENTICATION',
  MissingAuthenticationTokenException: 'ERR_KMS_AUTHENTICATION',
  ExpiredTokenException: 'ERR_KMS_AUTHENTICATION',
};

const RETRYABLE_NAMES = new Set(['ThrottlingException', 'KMSInternalException', 'DependencyTimeoutException', 'RequestLimitExceeded', 'ServiceUnavailableException', 'LimitExceededException']);
const RETRYABLE_NETWORK = /ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|socket hang up|aborted|premature close|Unexpected end|JSON|Deserializ|truncat/i;

export interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number };
}

/** Throttling, 5xx and transport failures are worth another attempt; everything KMS decided on is not. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof NitroEnclaveError) return err.code === 'ERR_VSOCK_RESET' || err.code === 'ERR_VSOCK_CONNECT' || err.code === 'ERR_VSOCK_TIMEOUT';
  const e = err as SdkError;
  if (!e || typeof e !== 'object') return false;
  if (e.name && BY_NAME[e.name]) return false;
  if (e.name && RETRYABLE_NAMES.has(e.name)) return true;
  if ((e.$metadata?.httpStatusCode ?? 0) >= 500 || e.$fault === 'server') return true;
  return RETRYABLE_NETWORK.test(`${e.name ?? ''} ${e.code ?? ''} ${e.message ?? ''}`);
}

/** The KMS key ARN named in an AccessDenied message, if any. */
export function resourceOf(message: string): string | null {
  return /on resource: (arn:aws[\w-]*:kms:[^\s]+)/.exec(message)?.[1] ?? null;
}

/** Maps an SDK error to a coded error (messages carry no secrets: KMS never echoes key material). */
export function mapKmsError(err: unknown, operation: string): NitroEnclaveError {
  if (err instanceof NitroEnclaveError) return err;
  const e = err as SdkError;
  const name = e?.name ?? 'Error';
  const message = e?.message ?? String(err);
  if (name === 'InvalidSignatureException' && /scoped to a valid region/i.test(message)) {
    return new NitroEnclaveError('ERR_KMS_WRONG_REGION', `KMS ${operation}: the request was signed for another region than the endpoint's (${message})`, { cause: err });
  }
  const code = BY_NAME[name];
  if (code) return new NitroEnclaveError(code, `KMS ${operation} failed: ${name}: ${message}`, { cause: err });
  return new NitroEnclaveError('ERR_KMS_UNAVAILABLE', `KMS ${operation} failed: ${name}: ${message}`, { cause: err });
}
