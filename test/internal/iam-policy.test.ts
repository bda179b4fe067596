import { describe, expect, it } from 'vitest';
import { buildKeyPolicy } from '../../src/parent/key-policy.js';
import { evaluatePolicy, parsePolicy, PolicySyntaxError, type PolicyDocument } from '../../src/internal/iam-policy.js';

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
    expect(evaluatePolicy(hardened, ctx(ROLE_SESSION), [allowAll])).toMatchObject({ effect: 'Deny', explicit: true, by: 'key policy statement "Deny Without Admitted Attestation"' });
    expect(evaluatePolicy(hardened, ctx(ROLE_SESSION, { 'kms:RecipientAttestation:ImageSha384': PCR0 })).effect).toBe('Allow');
    // Unattested GenerateDataKey mints a TSK its caller knows: denied too, whatever IAM allows (issue 17).
    expect(evaluatePolicy(hardened, ctx(ROLE_SESSION, {}, 'kms:GenerateDataKey'), [allowAll])).toMatchObject({ effect: 'Deny', explicit: true });
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
