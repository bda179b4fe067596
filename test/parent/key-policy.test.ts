import { describe, expect, it } from 'vitest';
import { buildKeyPolicy, RECIPIENT_ACTIONS } from '../../src/parent/key-policy.js';
import { evaluatePolicy, type PolicyDocument } from '../../src/internal/iam-policy.js';

const ACCOUNT = '111122223333';
const KEY = `arn:aws:kms:us-east-1:${ACCOUNT}:key/1234`;
const ROLE_SESSION = `arn:aws:sts::${ACCOUNT}:assumed-role/EnclaveInstanceRole/i-0abc`;
const PCR0 = 'ab'.repeat(48);
const ctx = (principalArn: string, conditions: Record<string, string | undefined> = {}, action = 'kms:Decrypt') => ({ principalArn, action, resource: KEY, conditions });

describe('buildKeyPolicy validation', () => {
  it('rejects bad measurements and accounts with TypeError', () => {
    expect(() => buildKeyPolicy({ accountId: '123', enclaveRole: 'r', pcr0: PCR0 })).toThrow(/12-digit/);
    expect(() => buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'r', pcr0: 'abc' })).toThrow(/96 hex/);
    expect(() => buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'r', pcr0: '0'.repeat(96) })).toThrow(/debug-mode enclave/);
    expect(buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'r', pcr0: '0'.repeat(96), allowDebugPcr0: true }).Statement).toHaveLength(6);
    expect(() => buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'r', pcr0: PCR0, pcrs: { 40: PCR0 } })).toThrow(/index/);
  });
});

describe('buildKeyPolicy closes every unattested path to the TSK', () => {
  const ADMIN = `arn:aws:iam::${ACCOUNT}:user/admin`;
  const kmsStar: PolicyDocument = { Statement: [{ Effect: 'Allow', Action: 'kms:*', Resource: '*' }] };
  const attested = { 'kms:RecipientAttestation:ImageSha384': PCR0 };
  const hardened = buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'EnclaveInstanceRole', pcr0: PCR0, enclaveActions: [...RECIPIENT_ACTIONS] });

  it('denies ReEncrypt (authorized as kms:ReEncryptFrom on the source key) to everyone, attested or not', () => {
    for (const who of [ADMIN, ROLE_SESSION, `arn:aws:iam::${ACCOUNT}:root`]) {
      for (const action of ['kms:ReEncryptFrom', 'kms:ReEncryptTo']) {
        expect(evaluatePolicy(hardened, ctx(who, {}, action), [kmsStar])).toMatchObject({ effect: 'Deny', explicit: true, by: 'key policy statement "Deny ReEncrypt For Everyone"' });
        expect(evaluatePolicy(hardened, ctx(who, attested, action), [kmsStar])).toMatchObject({ effect: 'Deny', explicit: true });
      }
    }
    // The seed's policy (no hardening) lets an IAM kms:* holder re-encrypt the blob to its own key.
    const seedShape = buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'EnclaveInstanceRole', pcr0: PCR0, denyUnattested: false });
    expect(evaluatePolicy(seedShape, ctx(ADMIN, {}, 'kms:ReEncryptFrom'), [kmsStar]).effect).toBe('Allow');
  });

  it('denies Decrypt and every enclave action without a matching attestation, for every principal', () => {
    for (const action of RECIPIENT_ACTIONS) {
      for (const who of [ADMIN, ROLE_SESSION]) {
        expect(evaluatePolicy(hardened, ctx(who, {}, action), [kmsStar])).toMatchObject({ effect: 'Deny', explicit: true });
        expect(evaluatePolicy(hardened, ctx(who, { 'kms:RecipientAttestation:ImageSha384': 'cd'.repeat(48) }, action), [kmsStar])).toMatchObject({ effect: 'Deny', explicit: true });
      }
      expect(evaluatePolicy(hardened, ctx(ROLE_SESSION, attested, action))).toMatchObject({ effect: 'Allow', by: 'key policy statement "Allow Enclave Decrypt"' });
    }
    // Decrypt is denied unattested even when the enclave is allowed something else only.
    const dataKeysOnly = buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'EnclaveInstanceRole', pcr0: PCR0, enclaveActions: ['kms:GenerateDataKey'] });
    expect(evaluatePolicy(dataKeysOnly, ctx(ADMIN), [kmsStar])).toMatchObject({ effect: 'Deny', explicit: true });
    // No attestation at all is caught by the Null statement too, independently of negated-operator semantics.
    const nullOnly = { ...hardened, Statement: hardened.Statement.filter((s) => s.Sid === 'Deny Decrypt Without Any Attestation' || s.Effect === 'Allow') };
    expect(evaluatePolicy(nullOnly, ctx(ADMIN), [kmsStar])).toMatchObject({ effect: 'Deny', explicit: true, by: 'key policy statement "Deny Decrypt Without Any Attestation"' });
  });

  it('never denies kms:PutKeyPolicy or kms:GenerateDataKeyWithoutPlaintext to the operator', () => {
    for (const action of ['kms:PutKeyPolicy', 'kms:GenerateDataKeyWithoutPlaintext']) {
      expect(evaluatePolicy(hardened, ctx(ADMIN, {}, action), [kmsStar]).effect).toBe('Allow');
      for (const s of hardened.Statement.filter((x) => x.Effect === 'Deny')) {
        expect([s.Action].flat().some((a) => new RegExp(`^${a.replace(/\*/g, '.*')}$`, 'i').test(action))).toBe(false);
      }
    }
  });

  it('takes only Recipient actions as enclaveActions, spelled out (TypeError otherwise)', () => {
    const build = (enclaveActions: string[]) => buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'r', pcr0: PCR0, enclaveActions });
    for (const bad of ['kms:*', 'kms:GenerateDataKey*', 'kms:Decrypt?', 'kms:Encrypt', 'kms:ReEncryptFrom', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:PutKeyPolicy', 'kms:CreateGrant', '*']) {
      expect(() => build([bad]), bad).toThrow(TypeError);
    }
    expect(() => build([])).toThrow(TypeError);
    expect(() => build(['kms:GenerateDataKey*'])).toThrow(/no wildcards/);
    expect(() => build(['kms:Encrypt'])).toThrow(/does not take a Recipient/);
    expect(build(['KMS:decrypt', 'kms:Decrypt', 'kms:DeriveSharedSecret']).Statement[1]!.Action).toEqual(['kms:Decrypt', 'kms:DeriveSharedSecret']);
  });
});
