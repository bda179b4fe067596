/**
 * auditKeyTrail on records in the shape of AWS's documented example events
 * (KMS Developer Guide: ct-generate-data-key-enclave, ct-put-key-policy,
 * ct-creategrant), and over every operation of the KMS API model: a finding
 * for each that releases or mints key material unattested, or moves
 * authority; none for the rest.
 */
import { describe, expect, it } from 'vitest';
import { KMS_OPERATIONS } from '../../src/internal/kms-operations.js';
import { admittedImages, auditKeyTrail, observedImage, type TrailRecord } from '../../src/parent/audit.js';
import { buildKeyPolicy } from '../../src/parent/key-policy.js';

const keyArn = 'arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
// The image digest of AWS's example GenerateDataKey event for an enclave (hex there; real trails write base64).
const docPcr0 = 'ee0d451a2ff9aaaa9bccd07700b9cab123a0ac2386ef7e88ad5ea6c72ebabea840957328e2ec890b408c9b06cb8ebe6a';
const otherPcr0 = 'ab'.repeat(48);
const policy = buildKeyPolicy({ accountId: '111122223333', enclaveRole: 'EnclaveInstanceRole', pcr0: docPcr0 });
const since = new Date('2020-07-27T00:00:00Z');
const until = new Date('2020-07-28T00:00:00Z');
let n = 0;

function record(eventName: string, extra: Partial<TrailRecord> = {}): TrailRecord {
  n++;
  return {
    eventID: `e-${n}`,
    requestID: `r-${n}`,
    eventTime: `2020-07-27T22:${String(10 + (n % 40)).padStart(2, '0')}:24Z`,
    eventSource: 'kms.amazonaws.com',
    eventName,
    userIdentity: { type: 'IAMUser', arn: 'arn:aws:iam::111122223333:user/Alice', accountId: '111122223333' },
    requestParameters: { keyId: '1234abcd-12ab-34cd-56ef-1234567890ab' },
    resources: [{ ARN: keyArn }],
    ...extra,
  };
}
const attested = (pcr0: string, extra: Partial<TrailRecord> = {}) =>
  record('GenerateDataKey', { additionalEventData: { recipient: { attestationDocumentModuleId: 'i-123456789abcde123-enc123456789abcde12', attestationDocumentEnclaveImageDigest: pcr0 } }, ...extra });

describe('auditKeyTrail', () => {
  it("reads the recipient of AWS's documented example (hex) and of real trails (base64) as the same image", () => {
    expect(observedImage(attested(docPcr0))).toEqual({ pcr0: docPcr0 });
    expect(observedImage(attested(Buffer.from(docPcr0, 'hex').toString('base64')))).toEqual({ pcr0: docPcr0 });
    expect(observedImage(record('Decrypt'))).toBeNull();
    const report = auditKeyTrail([attested(docPcr0), attested(Buffer.from(docPcr0, 'hex').toString('base64'))], { keyArn, policy, since, until });
    expect(report.images).toEqual([expect.objectContaining({ image: { pcr0: docPcr0 }, admitted: true, releases: 2, denied: 0 })]);
    expect(report.findings).toEqual([]);
  });

  it('every KMS operation: an unattested success of class plaintext/ciphertext or any authority success is a finding; the rest are not', () => {
    for (const op of KMS_OPERATIONS) {
      const report = auditKeyTrail([record(op.operation)], { keyArn, policy, since, until });
      const codes = report.findings.map((f) => f.code);
      if (op.class === 'plaintext' || op.class === 'ciphertext') expect(codes, op.operation).toEqual(['UNATTESTED_RELEASE']);
      else if (op.operation === 'ScheduleKeyDeletion') expect(codes, op.operation).toEqual(['KEY_DELETION']);
      else if (op.class === 'authority') expect(codes, op.operation).toEqual([op.operation === 'PutKeyPolicy' ? 'POLICY_CHANGED' : op.operation === 'CreateGrant' ? 'GRANT_CREATED' : 'AUTHORITY_CHANGED']);
      else expect(codes, op.operation).toEqual([]);
      // Refused, nothing happened: never a finding of its own.
      expect(auditKeyTrail([record(op.operation, { errorCode: 'AccessDeniedException' })], { keyArn, policy, since, until }).findings, op.operation).toEqual([]);
    }
    expect(auditKeyTrail([record('FrobnicateKey')], { keyArn, policy, since, until }).findings.map((f) => f.code)).toEqual(['UNKNOWN_OPERATION']);
  });

  it('a PutKeyPolicy finding says whether the new policy still denies an unattested Decrypt; a grant names its grantee', () => {
    const weak = JSON.stringify(buildKeyPolicy({ accountId: '111122223333', enclaveRole: 'EnclaveInstanceRole', pcr0: docPcr0, denyUnattested: false }));
    const put = (p: string) => record('PutKeyPolicy', { requestParameters: { keyId: '1234abcd-12ab-34cd-56ef-1234567890ab', policyName: 'default', policy: p, bypassPolicyLockoutSafetyCheck: false } });
    const grant = record('CreateGrant', { requestParameters: { keyId: keyArn, operations: ['Decrypt', 'RetireGrant'], granteePrincipal: 'arn:aws:iam::444455556666:role/Other' } });
    const report = auditKeyTrail([put(JSON.stringify(policy)), put(weak), put('{not json'), grant], { keyArn, policy, since, until });
    expect(report.findings.map((f) => f.message)).toEqual([
      'the key policy was replaced',
      'the key policy was replaced; the new policy does NOT deny a Decrypt without attestation',
      'the key policy was replaced; its text cannot be read (the policy is not valid JSON)',
      'a grant gives arn:aws:iam::444455556666:role/Other Decrypt, RetireGrant on the key',
    ]);
    expect(report.changes.map((c) => c.policy)).toEqual([
      { images: [{ pcr0: docPcr0 }], deniesUnattestedDecrypt: true, admitsAnyEnclave: false, admitsDebugEnclave: false },
      { images: [{ pcr0: docPcr0 }], deniesUnattestedDecrypt: false, admitsAnyEnclave: true, admitsDebugEnclave: true },
      { unreadable: expect.any(String) },
      undefined,
    ]);
  });

  it('IMAGE_NOT_ADMITTED: a refused call only after the current policy took effect, a release under an unknown policy (before the window) when the current one does not admit it; acknowledged ids do not count; other keys and times are ignored', () => {
    const before = attested(otherPcr0, { eventTime: '2020-07-27T10:00:00Z' });
    const put = record('PutKeyPolicy', { eventTime: '2020-07-27T11:00:00Z', requestParameters: { policy: JSON.stringify(policy) } });
    const after = attested(otherPcr0, { eventTime: '2020-07-27T12:00:00Z', errorCode: 'AccessDeniedException' });
    const elsewhere = attested(otherPcr0, { resources: [{ ARN: `${keyArn}0` }] });
    const tooOld = attested(otherPcr0, { eventTime: '2020-07-26T12:00:00Z' });
    const report = auditKeyTrail([after, put, before, elsewhere, tooOld], { keyArn, policy, since, until, acknowledge: [put.requestID!] });
    expect(report.events).toBe(3);
    // `before` released key material under a policy the window does not show: judged against the current one (fail toward a finding).
    expect(report.findings.map((f) => [f.code, f.eventID])).toEqual([
      ['IMAGE_NOT_ADMITTED', before.eventID],
      ['IMAGE_NOT_ADMITTED', after.eventID],
    ]);
    expect(report.acknowledged.map((f) => f.code)).toEqual(['POLICY_CHANGED']);
    expect(report.images).toEqual([expect.objectContaining({ image: { pcr0: otherPcr0 }, admitted: false, releases: 1, denied: 1, lastRelease: '2020-07-27T10:00:00Z' })]);
  });

  it('lists failed calls as refused, but not a DryRun that would have succeeded (check-policy probes)', () => {
    const report = auditKeyTrail(
      [record('Decrypt', { errorCode: 'AccessDeniedException', errorMessage: 'no' }), record('Encrypt', { errorCode: 'DryRunOperationException' }), record('DescribeKey', { errorCode: 'NotFoundException' })],
      { keyArn, policy, since, until },
    );
    expect(report.denied.map((d) => `${d.eventName} ${d.errorCode}`)).toEqual(['Decrypt AccessDeniedException', 'DescribeKey NotFoundException']);
    expect(report.findings).toEqual([]);
  });

  it('admittedImages reads every image of a multi-image policy, PCR8 and PCR1/PCR2 included', () => {
    const pcr1 = '11'.repeat(48);
    const pcr8 = '88'.repeat(48);
    const multi = buildKeyPolicy({ accountId: '111122223333', enclaveRole: 'EnclaveInstanceRole', images: [{ pcr0: docPcr0 }, { pcr0: otherPcr0, pcr1 }, { pcr8 }] });
    expect(admittedImages(multi)).toEqual([{ pcr0: docPcr0 }, { pcr0: otherPcr0, pcr1 }, { pcr8 }]);
    expect(() => auditKeyTrail([], { keyArn: 'alias/x', policy, since, until })).toThrow(new TypeError('keyArn must be a KMS key ARN'));
    expect(() => auditKeyTrail([], { keyArn, policy, since: until, until: since })).toThrow(new TypeError('since and until must be Dates, since first'));
  });
});
