import { describe, expect, it } from 'vitest';
import { NitroEnclaveError } from '../../src/errors.js';
import { isRetryable, mapKmsError, resourceOf } from '../../src/kms/kms-errors.js';

const sdkError = (name: string, message = 'x', extra: object = {}) => Object.assign(new Error(message), { name, ...extra });

describe('isRetryable', () => {
  it('retries throttling, 5xx and transport failures', () => {
    expect(isRetryable(sdkError('ThrottlingException'))).toBe(true);
    expect(isRetryable(sdkError('KMSInternalException'))).toBe(true);
    expect(isRetryable(sdkError('SomethingNew', 'x', { $metadata: { httpStatusCode: 503 } }))).toBe(true);
    expect(isRetryable(sdkError('Error', 'read ECONNRESET'))).toBe(true);
    expect(isRetryable(new NitroEnclaveError('ERR_VSOCK_CONNECT', 'proxy down'))).toBe(true);
  });

  it('never retries what KMS decided, nor our own coded failures other than the transport', () => {
    for (const name of ['AccessDeniedException', 'InvalidCiphertextException', 'NotFoundException', 'ValidationException', 'ExpiredTokenException']) {
      expect(isRetryable(sdkError(name, 'aborted'))).toBe(false); // even when the message looks like a transport error
    }
    expect(isRetryable(new NitroEnclaveError('ERR_KMS_KEY_MISMATCH', 'x'))).toBe(false);
    expect(isRetryable(sdkError('SomethingNew', 'client error', { $metadata: { httpStatusCode: 400 } }))).toBe(false);
    expect(isRetryable(null)).toBe(false);
  });
});

describe('mapKmsError', () => {
  it('gives each KMS exception its code and keeps the KMS message', () => {
    const mapped = mapKmsError(sdkError('AccessDeniedException', 'not authorized'), 'Decrypt');
    expect(mapped).toMatchObject({ code: 'ERR_KMS_ACCESS_DENIED', message: 'KMS Decrypt failed: AccessDeniedException: not authorized' });
    expect(mapKmsError(sdkError('KMSInvalidStateException'), 'Decrypt').code).toBe('ERR_KMS_DISABLED');
    expect(mapKmsError(sdkError('Whatever'), 'Decrypt').code).toBe('ERR_KMS_UNAVAILABLE');
    expect(mapKmsError(sdkError('InvalidSignatureException', 'Credential should be scoped to a valid region'), 'Decrypt').code).toBe('ERR_KMS_WRONG_REGION');
    const coded = new NitroEnclaveError('ERR_VSOCK_RESET', 'reset');
    expect(mapKmsError(coded, 'Decrypt')).toBe(coded);
  });
});

describe('resourceOf', () => {
  it('finds the key ARN in an AccessDenied message', () => {
    const arn = 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    expect(resourceOf(`User: x is not authorized to perform: kms:Decrypt on resource: ${arn} because no resource-based policy allows it`)).toBe(arn);
    expect(resourceOf('no resource here')).toBeNull();
  });
});
