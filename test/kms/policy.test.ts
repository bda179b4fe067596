import { describe, expect, it } from 'vitest';
import { buildKeyPolicy, RECIPIENT_ACTIONS } from '../../src/kms/key-policy.js';
import { evaluatePolicy, parsePolicy, PolicySyntaxError, type PolicyDocument } from '../../src/kms/policy.js';
import { TrustedSessionKey } from '../../src/kms/trusted-session-key.js';

const ACCOUNT = '111122223333';
const KEY = `arn:aws:kms:us-east-1:${ACCOUNT}:key/1234`;
const ROLE_SESSION = `arn:aws:sts::${ACCOUNT}:assumed-role/EnclaveInstanceRole/i-0abc`;
const PCR0 = 'ab'.repeat(48);
const ctx = (principalArn: string, conditions: Record<string, string | undefined> = {}, action = 'kms:Decrypt') => ({ principalArn, action, resource: KEY, conditions });

describe('evaluatePolicy', () => {
  const policy: PolicyDocument = {
    Statement: [
      { Sid: 'root', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: 'kms:*', Resource: '*' },
      { Sid: 'enclave', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:role/EnclaveInstanceRole` }, Action: 'kms:Decrypt', Resource: '*', Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': PCR0 } } },
    ],
  };

  it('matches an assumed-role session to its role, conditions case-insensitively', () => {
    expect(evaluatePolicy(policy, ctx(ROLE_SESSION, { 'kms:recipientattestation:imagesha384': PCR0.toUpperCase() }))).toEqual({ effect: 'Allow', by: 'key policy statement "enclave"' });
  });

  it('reports the unmet condition on the default deny, and "absent" for an unattested call', () => {
    expect(evaluatePolicy(policy, ctx(ROLE_SESSION, {}))).toEqual({
      effect: 'Deny',
      explicit: false,
      unmet: [`statement "enclave": StringEqualsIgnoreCase kms:RecipientAttestation:ImageSha384 "${PCR0}" (request: absent)`],
    });
  });

  it('lets the account root statement delegate to IAM identity policies, and honours their Deny', () => {
    const allow: PolicyDocument = { Statement: [{ Effect: 'Allow', Action: 'kms:Decrypt', Resource: KEY }] };
    const deny: PolicyDocument = { Statement: [{ Effect: 'Deny', Action: 'kms:*', Resource: '*' }] };
    expect(evaluatePolicy(policy, ctx(ROLE_SESSION), [allow]).effect).toBe('Allow');
    expect(evaluatePolicy(policy, ctx(ROLE_SESSION), [allow, deny])).toMatchObject({ effect: 'Deny', explicit: true });
    expect(evaluatePolicy(policy, ctx(`arn:aws:iam::999988887777:user/x`), [allow]).effect).toBe('Deny'); // other account: no delegation
    expect(evaluatePolicy(policy, ctx(`arn:aws:iam::${ACCOUNT}:root`)).effect).toBe('Allow'); // the root itself
  });

  it('makes an explicit Deny win, with negated operators matching absent keys', () => {
    const hardened = buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'EnclaveInstanceRole', pcr0: PCR0 });
    const allowAll: PolicyDocument = { Statement: [{ Effect: 'Allow', Action: 'kms:*', Resource: '*' }] };
    expect(evaluatePolicy(hardened, ctx(ROLE_SESSION), [allowAll])).toMatchObject({ effect: 'Deny', explicit: true, by: 'key policy statement "Deny Decrypt Without Enclave Attestation"' });
    expect(evaluatePolicy(hardened, ctx(ROLE_SESSION, { 'kms:RecipientAttestation:ImageSha384': PCR0 })).effect).toBe('Allow');
    expect(evaluatePolicy(hardened, ctx(ROLE_SESSION, {}, 'kms:GenerateDataKey'), [allowAll]).effect).toBe('Allow'); // the Deny is about Decrypt only
  });

  it('supports wildcards in actions and StringLike / Null / Bool conditions', () => {
    const p: PolicyDocument = {
      Statement: [
        { Effect: 'Allow', Principal: '*', Action: 'kms:Gen*', Resource: 'arn:aws:kms:us-east-1:*:key/*', Condition: { StringLike: { 'kms:EncryptionContext:tenant': 'team-?-*' }, Null: { 'kms:EncryptionContext:forbidden': 'true' } } },
      ],
    };
    expect(evaluatePolicy(p, ctx(ROLE_SESSION, { 'kms:EncryptionContext:tenant': 'team-a-prod' }, 'kms:GenerateDataKey')).effect).toBe('Allow');
    expect(evaluatePolicy(p, ctx(ROLE_SESSION, { 'kms:EncryptionContext:tenant': 'team-ab-prod' }, 'kms:GenerateDataKey')).effect).toBe('Deny');
    expect(evaluatePolicy(p, ctx(ROLE_SESSION, { 'kms:EncryptionContext:tenant': 'team-a-x', 'kms:EncryptionContext:forbidden': '1' }, 'kms:GenerateDataKey')).effect).toBe('Deny');
    expect(evaluatePolicy(p, ctx(ROLE_SESSION, { 'kms:EncryptionContext:tenant': 'team-a-x' }, 'kms:Decrypt')).effect).toBe('Deny');
  });

  it('parsePolicy rejects what KMS would not store', () => {
    for (const bad of ['not json', '{}', '{"Statement":[{"Effect":"Maybe","Action":"kms:*"}]}', '{"Statement":[{"Effect":"Allow"}]}', '{"Statement":[{"Effect":"Allow","Action":"kms:*","Condition":{"NumericLessThan":{"a":"1"}}}]}']) {
      expect(() => parsePolicy(bad), bad).toThrow(PolicySyntaxError);
    }
    expect(parsePolicy('{"Statement":{"Effect":"Allow","Action":"kms:*"}}').Statement).toHaveLength(1);
  });
});

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

describe('TrustedSessionKey', () => {
  it('takes only 32-byte keys', () => {
    expect(() => new TrustedSessionKey(new Uint8Array(16), { keyArn: KEY, pcr0: PCR0, moduleId: 'm', obtainedAt: new Date() })).toThrow(expect.objectContaining({ code: 'ERR_TSK_INVALID_KEY' }));
  });
});
