/**
 * auditKeyTrail against trails an attacker shapes (records as the simulator
 * and AWS's documented example events write them): a release the audit must
 * not miss, a policy that must not look benign, KMS's own events.
 */
import { describe, expect, it } from 'vitest';
import { auditKeyTrail, imageAdmits, type TrailRecord } from '../../src/parent/audit.js';
import { buildKeyPolicy } from '../../src/parent/key-policy.js';

const acct = '111122223333';
const keyArn = `arn:aws:kms:us-east-1:${acct}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
const h = (c: string) => c.repeat(96);
const b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');
let n = 0;
const rec = (eventName: string, minute: number, extra: Partial<TrailRecord> = {}): TrailRecord => ({
  eventID: `ev-${++n}`,
  requestID: `rq-${n}`,
  eventTime: `2026-12-01T10:${String(minute).padStart(2, '0')}:00Z`,
  eventName,
  eventSource: 'kms.amazonaws.com',
  eventType: 'AwsApiCall',
  userIdentity: { type: 'IAMUser', arn: `arn:aws:iam::${acct}:user/mallory`, accountId: acct },
  requestParameters: { keyId: keyArn },
  resources: [{ ARN: keyArn }],
  ...extra,
});
const recip = (pcr0: string, pcr8 = h('0')) => ({ additionalEventData: { recipient: { attestationDocumentModuleId: 'i-0123-enc01', attestationDocumentEnclaveImageDigest: b64(pcr0), attestationDocumentEnclavePCR8: b64(pcr8) } } });
const put = (minute: number, policy: unknown) => rec('PutKeyPolicy', minute, { requestParameters: { keyId: keyArn, policy: JSON.stringify(policy), policyName: 'default', bypassPolicyLockoutSafetyCheck: false } });
const since = new Date('2026-12-01T09:00:00Z');
const until = new Date('2026-12-01T11:00:00Z');
const policyOf = (images: Array<{ pcr0?: string; pcr8?: string }>) => buildKeyPolicy({ accountId: acct, enclaveRole: 'EnclaveInstanceRole', images });
const good = policyOf([{ pcr0: h('a') }]);
const codes = (r: ReturnType<typeof auditKeyTrail>) => r.findings.map((f) => [f.code, f.eventName]);

describe('auditKeyTrail judges each release against the policy in force then', () => {
  it('weaken (admit the attacker image), release to it, restore: the release is IMAGE_NOT_ADMITTED, not only two POLICY_CHANGED', () => {
    const evil = policyOf([{ pcr0: h('a') }, { pcr0: h('e') }]);
    const r = auditKeyTrail([put(10, evil), rec('Decrypt', 11, recip(h('e'))), put(12, good)], { keyArn, policy: good, since, until });
    expect(codes(r)).toEqual([
      ['POLICY_CHANGED', 'PutKeyPolicy'],
      ['IMAGE_NOT_ADMITTED', 'Decrypt'],
      ['POLICY_CHANGED', 'PutKeyPolicy'],
    ]);
    expect(r.findings[1]!.message).toBe(`Decrypt released key material to PCR0 eeeeeeeeeeee…eeeeee, admitted only by the policy of PutKeyPolicy event ev-${n - 2} (not acknowledged), which the current key policy does not admit`);
  });

  it("a rollout's own acknowledged PutKeyPolicy is trusted: releases it admitted are no finding after the image is removed; before the window's first put, the current policy judges", () => {
    const both = policyOf([{ pcr0: h('a') }, { pcr0: h('b') }]);
    const onlyB = policyOf([{ pcr0: h('b') }]);
    const early = rec('Decrypt', 5, recip(h('a')));
    const add = put(10, both);
    const use = rec('Decrypt', 11, recip(h('a')));
    const remove = put(20, onlyB);
    const r = auditKeyTrail([early, add, use, remove], { keyArn, policy: onlyB, since, until, acknowledge: [add.requestID!, remove.eventID!] });
    // `early` predates every known policy: judged against the current one, which dropped PCR0 a (fail toward a finding).
    expect(r.findings.map((f) => [f.code, f.eventID])).toEqual([['IMAGE_NOT_ADMITTED', early.eventID]]);
    expect(r.findings[0]!.message).toMatch(/the policy in force then is unknown: it predates the window; widen --since/);
    // With the key's CreateKey (its first policy) in the window, `early` is judged against that policy.
    const create = rec('CreateKey', 1, { requestParameters: { policy: JSON.stringify(policyOf([{ pcr0: h('a') }])) } });
    expect(codes(auditKeyTrail([create, early, add, use, remove], { keyArn, policy: onlyB, since, until, acknowledge: [add.requestID!, remove.eventID!] }))).toEqual([]);
  });

  it('a release the policy in force did not name is flagged even when that policy was acknowledged', () => {
    const p = put(10, good);
    const r = auditKeyTrail([p, rec('Decrypt', 11, recip(h('e')))], { keyArn, policy: policyOf([{ pcr0: h('a') }, { pcr0: h('e') }]), since, until, acknowledge: [p.eventID!] });
    expect(codes(r)).toEqual([['IMAGE_NOT_ADMITTED', 'Decrypt']]);
  });

  it('a Decrypt attested by a NitroTPM (the parent instance holds it) is NON_ENCLAVE_RELEASE; one with no PCR0 too', () => {
    const tpm = rec('Decrypt', 11, { additionalEventData: { recipient: { attestationDocumentModuleId: 'i-123456789abcde123-tpm0000000000000000', attestationDocumentNitroTPMPCR4: b64(h('1')), attestationDocumentNitroTPMPCR7: b64(h('2')) } } });
    const bare = rec('Decrypt', 12, { additionalEventData: { recipient: { attestationDocumentModuleId: 'i-0123-enc01' } } });
    const r = auditKeyTrail([tpm, bare], { keyArn, policy: good, since, until });
    expect(r.findings.map((f) => [f.code, f.message])).toEqual([
      ['NON_ENCLAVE_RELEASE', 'Decrypt released key material to a NitroTPM (module i-123456789abcde123-tpm0000000000000000), not an enclave: the instance that holds the TPM (the parent) can read it'],
      ['NON_ENCLAVE_RELEASE', 'Decrypt succeeded with an attestation whose record names no enclave image (PCR0) (module i-0123-enc01): not a release this key policy should allow'],
    ]);
    expect(r.images).toEqual([]);
  });

  it('a release to a debug-mode enclave (PCR0 all zeros) is flagged even when the policy admits it', () => {
    const debug = buildKeyPolicy({ accountId: acct, enclaveRole: 'EnclaveInstanceRole', pcr0: h('0'), allowDebugPcr0: true });
    const r = auditKeyTrail([rec('Decrypt', 11, recip(h('0')))], { keyArn, policy: debug, since, until });
    expect(r.findings.map((f) => [f.code, f.message])).toEqual([['DEBUG_ENCLAVE_RELEASE', 'Decrypt released key material to a debug-mode enclave (PCR0 all zeros): whoever started it can read its memory']]);
  });

  it('a PutKeyPolicy that admits ANY attested enclave (Null ImageSha384 false) is said so; a policy buildKeyPolicy writes is not', () => {
    const anyEnclave = {
      Version: '2012-10-17',
      Statement: [
        { Sid: 'Admin', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${acct}:user/admin` }, Action: 'kms:*', Resource: '*' },
        { Sid: 'Any enclave', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${acct}:role/EnclaveInstanceRole` }, Action: 'kms:Decrypt', Resource: '*', Condition: { Null: { 'kms:RecipientAttestation:ImageSha384': 'false' } } },
        { Sid: 'Deny Without Any Attestation', Effect: 'Deny', Principal: { AWS: '*' }, Action: 'kms:Decrypt', Resource: '*', Condition: { Null: { 'kms:RecipientAttestation:ImageSha384': 'true' } } },
      ],
    };
    const wildcard = policyOf([{ pcr0: h('a') }]);
    // A wildcard Allow, with the Deny of other images dropped (the Deny alone would still hold: the probe checks the whole policy).
    (wildcard.Statement[1]!.Condition as Record<string, Record<string, string>>) = { StringLike: { 'kms:RecipientAttestation:ImageSha384': '*' } };
    wildcard.Statement = wildcard.Statement.filter((s) => s.Sid !== 'Deny Without Admitted Attestation');
    const r = auditKeyTrail([put(10, anyEnclave), put(11, wildcard), put(12, good), put(13, policyOf([{ pcr8: h('8') }]))], { keyArn, policy: good, since, until });
    expect(r.findings.map((f) => f.message)).toEqual([
      'the key policy was replaced; the new policy admits an enclave image it does not name (any attested enclave)',
      'the key policy was replaced; the new policy admits an enclave image it does not name (any attested enclave)',
      'the key policy was replaced',
      'the key policy was replaced',
    ]);
    expect(r.changes[0]!.policy).toEqual({ images: [], deniesUnattestedDecrypt: true, admitsAnyEnclave: true, admitsDebugEnclave: true });
    expect(r.changes[2]!.policy).toEqual({ images: [{ pcr0: h('a') }], deniesUnattestedDecrypt: true, admitsAnyEnclave: false, admitsDebugEnclave: false });
  });
});

describe('auditKeyTrail attributes PCR8 images by PCR8', () => {
  const pcr8A = h('1');
  const pcr8B = h('2');
  const X = h('c');
  it('the same EIF re-signed: a replica of the removed certificate A is flagged though its PCR0 matches an admitted B-signed one', () => {
    const onlyB = policyOf([{ pcr8: pcr8B }]);
    const r = auditKeyTrail([rec('Decrypt', 20, recip(X, pcr8B)), rec('Decrypt', 30, { ...recip(X, pcr8A), errorCode: 'AccessDeniedException' })], { keyArn, policy: onlyB, since, until });
    expect(r.findings.map((f) => [f.code, f.eventTime])).toEqual([['IMAGE_NOT_ADMITTED', '2026-12-01T10:30:00Z']]);
    expect(r.images.map((u) => [u.image.pcr8, u.admitted, u.releases, u.denied])).toEqual([
      [pcr8B, true, 1, 0],
      [pcr8A, false, 0, 1],
    ]);
  });

  it("A's own last release is A's, not B's (what rollout remove --pcr8 A's drain check reads)", () => {
    const AB = policyOf([{ pcr8: pcr8A }, { pcr8: pcr8B }]);
    const r = auditKeyTrail([rec('Decrypt', 20, recip(X, pcr8B)), rec('Decrypt', 50, recip(X, pcr8A))], { keyArn, policy: AB, since, until });
    const last = (image: { pcr8: string }) => r.images.filter((u) => u.lastRelease && imageAdmits(image, u.image)).map((u) => u.lastRelease!).sort().at(-1);
    expect(last({ pcr8: pcr8A })).toBe('2026-12-01T10:50:00Z');
    expect(last({ pcr8: pcr8B })).toBe('2026-12-01T10:20:00Z');
  });
});

describe("auditKeyTrail classifies KMS's own events", () => {
  const service = (eventName: string, minute: number): TrailRecord => ({
    eventID: `svc-${++n}`,
    eventTime: `2026-12-01T10:${String(minute).padStart(2, '0')}:00Z`,
    eventName,
    eventSource: 'kms.amazonaws.com',
    eventType: 'AwsServiceEvent',
    userIdentity: { accountId: acct, invokedBy: 'AWS Internal' },
    requestParameters: null,
    resources: [{ ARN: keyArn }],
  });
  it('RotateKey and SynchronizeMultiRegionKey are no finding; DeleteKey, DeleteExpiredKeyMaterial and ScheduleKeyDeletion are KEY_DELETION; an unknown one is UNKNOWN_OPERATION', () => {
    const r = auditKeyTrail(
      [service('RotateKey', 1), service('SynchronizeMultiRegionKey', 2), rec('ScheduleKeyDeletion', 3, { requestParameters: { keyId: keyArn, pendingWindowInDays: 7 } }), service('DeleteExpiredKeyMaterial', 4), service('DeleteKey', 5), service('FrobnicateKey', 6)],
      { keyArn, policy: good, since, until },
    );
    expect(r.findings.map((f) => [f.code, f.eventName, f.principal])).toEqual([
      ['KEY_DELETION', 'ScheduleKeyDeletion', `arn:aws:iam::${acct}:user/mallory`],
      ['KEY_DELETION', 'DeleteExpiredKeyMaterial', 'AWS Internal'],
      ['KEY_DELETION', 'DeleteKey', 'AWS Internal'],
      ['UNKNOWN_OPERATION', 'FrobnicateKey', 'AWS Internal'],
    ]);
    expect(r.findings[0]!.message).toBe('the key was scheduled for deletion in 7 days: every TSK blob under it will be lost (CancelKeyDeletion stops it)');
  });

  it('a caller cannot pass off an API call as a service event: RotateKey by a user is UNKNOWN_OPERATION; a Decrypt an AWS service made (AwsApiCall, invokedBy) is judged as a call', () => {
    expect(codes(auditKeyTrail([rec('RotateKey', 1)], { keyArn, policy: good, since, until }))).toEqual([['UNKNOWN_OPERATION', 'RotateKey']]);
    const byService = rec('Decrypt', 2, { userIdentity: { type: 'AWSService', invokedBy: 'ec2.amazonaws.com' } });
    expect(auditKeyTrail([byService], { keyArn, policy: good, since, until }).findings.map((f) => [f.code, f.principal])).toEqual([['UNATTESTED_RELEASE', 'ec2.amazonaws.com']]);
  });

  it('an incomplete read is TRAIL_TOO_LARGE, which no acknowledgement hides', () => {
    const r = auditKeyTrail([], { keyArn, policy: good, since, until, acknowledge: [''], incomplete: { readEvents: 100, oldestRead: '2026-12-01T10:40:00Z' } });
    expect(r.findings.map((f) => [f.code, f.message])).toEqual([
      ['TRAIL_TOO_LARGE', 'the trail holds more events than the audit may read: it read the newest 100, back to 2026-12-01T10:40:00Z; nothing before that was judged. Audit a shorter --since, or raise --max-events'],
    ]);
  });
});

describe('the CloudTrail endpoint audit and rollout read', () => {
  it("is the Region's own unless --endpoint is a loopback kms-simulator: a FIPS or VPC endpoint of KMS does not serve CloudTrail", async () => {
    const { cloudTrailEndpoint } = await import('../../src/cli/trail.js');
    expect(cloudTrailEndpoint({ endpoint: 'https://kms-fips.us-east-1.amazonaws.com' })).toBeUndefined();
    expect(cloudTrailEndpoint({ endpoint: 'https://vpce-0abc-kms.us-east-1.vpce.amazonaws.com' })).toBeUndefined();
    expect(cloudTrailEndpoint({})).toBeUndefined();
    expect(cloudTrailEndpoint({ endpoint: 'https://localhost:4443' })).toBe('https://localhost:4443');
    expect(cloudTrailEndpoint({ endpoint: 'https://127.0.0.1:4443' })).toBe('https://127.0.0.1:4443');
    expect(cloudTrailEndpoint({ endpoint: 'https://kms-fips.us-east-1.amazonaws.com', 'cloudtrail-endpoint': 'https://cloudtrail-fips.us-east-1.amazonaws.com' })).toBe('https://cloudtrail-fips.us-east-1.amazonaws.com');
  });
});
