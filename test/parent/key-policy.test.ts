import { describe, expect, it } from 'vitest';
import { AUTHORITY_DECISIONS, buildKeyPolicy, denyConditionSets, keyPolicyTreatment, RECIPIENT_ACTIONS } from '../../src/parent/key-policy.js';
import { evaluatePolicy, type PolicyDocument } from '../../src/internal/iam-policy.js';
import { KMS_OPERATIONS, kmsOperation } from '../../src/internal/kms-operations.js';

const ACCOUNT = '111122223333';
const KEY = `arn:aws:kms:us-east-1:${ACCOUNT}:key/1234`;
const ROLE_SESSION = `arn:aws:sts::${ACCOUNT}:assumed-role/EnclaveInstanceRole/i-0abc`;
const ADMIN = `arn:aws:iam::${ACCOUNT}:user/admin`;
const ROOT = `arn:aws:iam::${ACCOUNT}:root`;
const OUTSIDER = 'arn:aws:iam::444455556666:role/Other';
const PCR0 = 'ab'.repeat(48);
const ctx = (principalArn: string, conditions: Record<string, string | undefined> = {}, action = 'kms:Decrypt') => ({ principalArn, action, resource: KEY, conditions });
const kmsStar: PolicyDocument = { Statement: [{ Effect: 'Allow', Action: 'kms:*', Resource: '*' }] };
const attested = { 'kms:RecipientAttestation:ImageSha384': PCR0 };
const minting = KMS_OPERATIONS.filter((o) => o.class === 'plaintext' || o.class === 'ciphertext');

/** The policy buildKeyPolicy wrote before issue 17 (Decrypt gated, ReEncrypt denied, nothing else). */
const previous: PolicyDocument = {
  Statement: [
    { Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: ROOT }, Action: 'kms:*', Resource: '*' },
    { Sid: 'Allow Enclave Decrypt', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:role/EnclaveInstanceRole` }, Action: 'kms:Decrypt', Resource: '*', Condition: { StringEqualsIgnoreCase: attested } },
    { Sid: 'Deny Decrypt Without Enclave Attestation', Effect: 'Deny', Principal: { AWS: '*' }, Action: 'kms:Decrypt', Resource: '*', Condition: { StringNotEqualsIgnoreCase: attested } },
    { Sid: 'Deny Decrypt Without Any Attestation', Effect: 'Deny', Principal: { AWS: '*' }, Action: 'kms:Decrypt', Resource: '*', Condition: { Null: { 'kms:RecipientAttestation:ImageSha384': 'true' } } },
    { Sid: 'Deny ReEncrypt For Everyone', Effect: 'Deny', Principal: { AWS: '*' }, Action: 'kms:ReEncrypt*', Resource: '*' },
  ],
};

/** The check every test below relies on: no principal with IAM kms:* reaches an (a)/(b) operation unattested. */
function openMintingPaths(policy: PolicyDocument): string[] {
  const open: string[] = [];
  for (const op of minting) {
    for (const action of op.actions) {
      for (const who of [ADMIN, ROLE_SESSION, ROOT, OUTSIDER]) {
        const d = evaluatePolicy(policy, ctx(who, {}, action), [kmsStar]);
        if (d.effect === 'Allow') open.push(`${action} by ${who}`);
      }
    }
  }
  return open;
}

describe('buildKeyPolicy validation', () => {
  it('rejects bad measurements and accounts with TypeError', () => {
    expect(() => buildKeyPolicy({ accountId: '123', enclaveRole: 'r', pcr0: PCR0 })).toThrow(/12-digit/);
    expect(() => buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'r', pcr0: 'abc' })).toThrow('pcr0 must be 96 hex characters (SHA-384), as nitro-cli prints it');
    expect(() => buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'r', pcr0: '0'.repeat(96) })).toThrow(/debug-mode enclave/);
    expect(buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'r', pcr0: '0'.repeat(96), allowDebugPcr0: true }).Statement.map((s) => s.Sid)).toEqual([
      'Enable IAM User Permissions',
      'Allow Enclave Decrypt',
      'Allow Enclave Key Audit',
      'Allow Key Administrators',
      'Deny Without Admitted Attestation',
      'Deny Without Any Attestation',
      'Deny Reading Or Minting Key Material',
      'Deny Moving Key Material Or Alias',
    ]);
    expect(() => buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'r', pcr0: PCR0, pcrs: { 40: PCR0 } })).toThrow(/index/);
  });

  it('rejects images that do not identify an application, or an all-zero PCR8', () => {
    const build = (images: unknown) => () => buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'r', images: images as never });
    expect(build([])).toThrow(TypeError);
    expect(build([{ pcr1: PCR0 }])).toThrow('images[0] needs pcr0 or pcr8: PCR1/PCR2 alone do not identify the application');
    expect(build([{ pcr8: PCR0, pcr2: PCR0 }])).toThrow('images[0]: pcr1 and pcr2 only together with pcr0');
    expect(build([{ pcr0: PCR0 }, { pcr8: 'x' }])).toThrow('images[1].pcr8 must be 96 hex characters (SHA-384), as nitro-cli prints it');
    expect(build([{ pcr8: '0'.repeat(96) }])).toThrow(/pcr8 is all zeros: that is what an enclave with no signing certificate/);
    expect(build([{ pcr3: PCR0 }])).toThrow('images[0]: unknown field pcr3; an image is pcr0 (with optional pcr1, pcr2) or pcr8');
    expect(build('nope')).toThrow(TypeError);
    expect(() => buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'r', pcr0: PCR0, pcrs: { 8: '0'.repeat(96) } })).toThrow(/pcr8 is all zeros/);
  });
});

describe('buildKeyPolicy derives its Deny statements from the classification of every KMS operation', () => {
  const hardened = buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'EnclaveInstanceRole', pcr0: PCR0, enclaveActions: [...RECIPIENT_ACTIONS] });
  const defaults = buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'EnclaveInstanceRole', pcr0: PCR0 });

  it('no principal reaches an (a)/(b) operation without attestation, even with IAM kms:* (the previous policy left Encrypt and GenerateDataKey open)', () => {
    expect(openMintingPaths(defaults)).toEqual([]);
    expect(openMintingPaths(hardened)).toEqual([]);
    // The same check on the policy this function wrote before: the parent role (or an admin) with IAM
    // kms:Encrypt mints a TSK it knows.
    const before = openMintingPaths(previous);
    expect(before).toContain(`kms:Encrypt by ${ROLE_SESSION}`);
    expect(before).toContain(`kms:GenerateDataKey by ${ADMIN}`);
    expect(before).toContain(`kms:GenerateDataKeyPair by ${ADMIN}`);
    expect(before).not.toContain(`kms:Decrypt by ${ADMIN}`);
  });

  it('denies the (a)/(b) operations without Recipient outright, attested or not; gates the Recipient ones on an admitted image', () => {
    for (const op of minting) {
      for (const action of op.actions) {
        const withAttestation = evaluatePolicy(hardened, ctx(ROLE_SESSION, attested, action), [kmsStar]);
        const wrongImage = evaluatePolicy(hardened, ctx(ADMIN, { 'kms:RecipientAttestation:ImageSha384': 'cd'.repeat(48) }, action), [kmsStar]);
        expect(wrongImage, action).toMatchObject({ effect: 'Deny', explicit: true });
        if (op.takesRecipient) {
          expect(keyPolicyTreatment(op)).toBe('attested');
          expect(withAttestation, action).toMatchObject({ effect: 'Allow' });
        } else {
          expect(keyPolicyTreatment(op)).toBe('denied');
          expect(withAttestation, action).toMatchObject({ effect: 'Deny', explicit: true, by: 'key policy statement "Deny Reading Or Minting Key Material"' });
        }
      }
    }
    // With the default enclave actions the role is allowed Decrypt only: the other Recipient operations are
    // not denied for it when attested, just not allowed by the key policy (IAM could add them).
    expect(evaluatePolicy(defaults, ctx(ROLE_SESSION, attested, 'kms:GenerateDataKey'))).toMatchObject({ effect: 'Deny', explicit: false });
    expect(evaluatePolicy(defaults, ctx(ROLE_SESSION, attested, 'kms:Decrypt'))).toMatchObject({ effect: 'Allow', by: 'key policy statement "Allow Enclave Decrypt"' });
  });

  it('denies replication, import and alias re-pointing to everyone; leaves the other authority operations and (d) to the administrators', () => {
    const authority = KMS_OPERATIONS.filter((o) => o.class === 'authority');
    // Every authority operation of the model has a recorded decision (a new one is denied until decided).
    expect(authority.map((o) => o.operation).filter((op) => !(op in AUTHORITY_DECISIONS))).toEqual([]);
    expect(Object.keys(AUTHORITY_DECISIONS).filter((op) => kmsOperation(op)?.class !== 'authority')).toEqual([]);
    for (const op of authority) {
      const d = evaluatePolicy(defaults, ctx(ADMIN, {}, op.action), [kmsStar]);
      if (AUTHORITY_DECISIONS[op.operation]!.denied) expect(d, op.operation).toMatchObject({ effect: 'Deny', explicit: true, by: 'key policy statement "Deny Moving Key Material Or Alias"' });
      else expect(d, op.operation).toMatchObject({ effect: 'Allow' });
    }
    expect(authority.filter((o) => keyPolicyTreatment(o) === 'denied').map((o) => o.operation).sort()).toEqual(['DeleteAlias', 'DeleteImportedKeyMaterial', 'GetParametersForImport', 'ImportKeyMaterial', 'ReplicateKey', 'UpdateAlias', 'UpdatePrimaryRegion']);
    for (const op of KMS_OPERATIONS.filter((o) => o.class === 'none')) {
      expect(keyPolicyTreatment(op)).toBe('open');
      expect(evaluatePolicy(defaults, ctx(ADMIN, {}, op.action), [kmsStar]).effect, op.operation).toBe('Allow');
    }
  });

  it('never denies kms:PutKeyPolicy or kms:GenerateDataKeyWithoutPlaintext to the operator, and names no wildcard', () => {
    for (const action of ['kms:PutKeyPolicy', 'kms:GenerateDataKeyWithoutPlaintext']) {
      expect(evaluatePolicy(hardened, ctx(ADMIN, {}, action), [kmsStar]).effect).toBe('Allow');
      for (const s of hardened.Statement.filter((x) => x.Effect === 'Deny')) {
        expect([s.Action].flat().some((a) => new RegExp(`^${a.replace(/\*/g, '.*')}$`, 'i').test(action))).toBe(false);
        expect([s.Action].flat().filter((a) => /[*?]/.test(a))).toEqual([]);
      }
    }
  });

  it('lets the enclave role read what its key audit needs, and nothing else unattested', () => {
    for (const action of ['kms:DescribeKey', 'kms:GetKeyPolicy', 'kms:ListGrants']) {
      expect(evaluatePolicy(defaults, ctx(ROLE_SESSION, {}, action))).toMatchObject({ effect: 'Allow', by: 'key policy statement "Allow Enclave Key Audit"' });
    }
    expect(evaluatePolicy(defaults, ctx(ROLE_SESSION, {}, 'kms:ListAliases')).effect).toBe('Deny');
    expect(evaluatePolicy(defaults, ctx(ROLE_SESSION, {}, 'kms:PutKeyPolicy')).effect).toBe('Deny');
  });

  it('catches a request with no attestation by the Null statement alone too', () => {
    const nullOnly = { ...hardened, Statement: hardened.Statement.filter((s) => s.Sid === 'Deny Without Any Attestation' || s.Effect === 'Allow') };
    expect(evaluatePolicy(nullOnly, ctx(ADMIN), [kmsStar])).toMatchObject({ effect: 'Deny', explicit: true, by: 'key policy statement "Deny Without Any Attestation"' });
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
    // Every Recipient action of the model is accepted, and RECIPIENT_ACTIONS is exactly those.
    expect([...RECIPIENT_ACTIONS].sort()).toEqual(KMS_OPERATIONS.filter((o) => o.takesRecipient).map((o) => o.action).sort());
  });
});

describe('buildKeyPolicy admits a set of images', () => {
  const h = (c: string) => c.repeat(96);
  const A = { pcr0: h('a'), pcr1: h('1'), pcr2: h('2') };
  const B = { pcr0: h('b') };
  const C = { pcr8: h('8') };
  const policy = buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'EnclaveInstanceRole', images: [A, B, C], enclaveActions: ['kms:Decrypt', 'kms:GenerateDataKey'] });
  const KEYS = { pcr0: 'kms:RecipientAttestation:ImageSha384', pcr1: 'kms:RecipientAttestation:PCR1', pcr2: 'kms:RecipientAttestation:PCR2', pcr8: 'kms:RecipientAttestation:PCR8' } as const;

  it('writes one Allow per image and the product of the negations as Deny statements', () => {
    expect(policy.Statement.filter((s) => s.Effect === 'Allow' && s.Condition).map((s) => [s.Sid, s.Condition])).toEqual([
      ['Allow Enclave Decrypt Image 1', { StringEqualsIgnoreCase: { [KEYS.pcr0]: h('a'), [KEYS.pcr1]: h('1'), [KEYS.pcr2]: h('2') } }],
      ['Allow Enclave Decrypt Image 2', { StringEqualsIgnoreCase: { [KEYS.pcr0]: h('b') } }],
      ['Allow Enclave Decrypt Image 3', { StringEqualsIgnoreCase: { [KEYS.pcr8]: h('8') } }],
    ]);
    // not(A or B or C) = (PCR0≠a or PCR1≠1 or PCR2≠2) and PCR0≠b and PCR8≠8: three statements; the same key merges into a list.
    expect(policy.Statement.filter((s) => s.Sid?.startsWith('Deny Without Admitted')).map((s) => s.Condition)).toEqual([
      { StringNotEqualsIgnoreCase: { [KEYS.pcr0]: [h('a'), h('b')], [KEYS.pcr8]: h('8') } },
      { StringNotEqualsIgnoreCase: { [KEYS.pcr0]: h('b'), [KEYS.pcr1]: h('1'), [KEYS.pcr8]: h('8') } },
      { StringNotEqualsIgnoreCase: { [KEYS.pcr0]: h('b'), [KEYS.pcr2]: h('2'), [KEYS.pcr8]: h('8') } },
    ]);
  });

  it('passes an attestation exactly when it matches some admitted image, for every combination of PCR values (absent included)', () => {
    // Every attestation carries PCR0 (ImageSha384); without one there is no attestation at all (last case).
    const choices = { pcr0: [h('a'), h('b'), h('c')], pcr1: [h('1'), h('f'), undefined], pcr2: [h('2'), h('f'), undefined], pcr8: [h('8'), h('f'), undefined] };
    let allowed = 0;
    for (const p0 of choices.pcr0)
      for (const p1 of choices.pcr1)
        for (const p2 of choices.pcr2)
          for (const p8 of choices.pcr8) {
            const att = { pcr0: p0, pcr1: p1, pcr2: p2, pcr8: p8 };
            const matches = [A, B, C].some((img) => Object.entries(img).every(([k, v]) => att[k as keyof typeof att] === v));
            const conditions = Object.fromEntries(Object.entries(att).map(([k, v]) => [KEYS[k as keyof typeof KEYS], v]));
            for (const action of ['kms:Decrypt', 'kms:GenerateDataKey', 'kms:DeriveSharedSecret']) {
              const admin = evaluatePolicy(policy, ctx(ADMIN, conditions, action), [kmsStar]);
              const role = evaluatePolicy(policy, ctx(ROLE_SESSION, conditions, action));
              const label = `${action} ${JSON.stringify(att)}`;
              if (matches) {
                expect(admin.effect, label).toBe('Allow');
                if (action !== 'kms:DeriveSharedSecret') expect(role.effect, label).toBe('Allow');
                allowed++;
              } else {
                expect(admin, label).toMatchObject({ effect: 'Deny', explicit: true });
                expect(role, label).toMatchObject({ effect: 'Deny', explicit: true });
              }
            }
          }
    expect(allowed).toBeGreaterThan(0);
    expect(evaluatePolicy(policy, ctx(ADMIN, { [KEYS.pcr8]: h('8') }), [kmsStar])).toMatchObject({ effect: 'Deny', explicit: true, by: 'key policy statement "Deny Without Any Attestation"' });
    expect(evaluatePolicy(policy, ctx(ADMIN, {}), [kmsStar])).toMatchObject({ effect: 'Deny', explicit: true });
  });

  it('keeps pcr0 + pcrs working as one image, merges it with images, and drops duplicates', () => {
    const legacy = buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'r', pcr0: h('a'), pcrs: { 8: h('8') } });
    expect(legacy.Statement[1]).toMatchObject({ Sid: 'Allow Enclave Decrypt', Condition: { StringEqualsIgnoreCase: { [KEYS.pcr0]: h('a'), [KEYS.pcr8]: h('8') } } });
    expect(legacy.Statement.filter((s) => s.Sid?.startsWith('Deny Without Admitted')).map((s) => s.Sid)).toEqual(['Deny Without Admitted Attestation 1', 'Deny Without Admitted Attestation 2']);
    const same = buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'r', pcr0: h('B'), images: [B, { pcr0: h('c') }] });
    expect(same.Statement.filter((s) => s.Sid?.startsWith('Allow Enclave Decrypt')).length).toBe(2);
    expect(same.Statement.find((s) => s.Sid === 'Deny Without Admitted Attestation')!.Condition).toEqual({ StringNotEqualsIgnoreCase: { [KEYS.pcr0]: [h('b'), h('c')] } });
  });

  it('refuses a set whose expansion would not fit (TypeError)', () => {
    const many = Array.from({ length: 5 }, (_, i) => ({ pcr0: h('abcde'[i]!), pcr1: h('1'), pcr2: h(String(i + 2)) }));
    expect(() => buildKeyPolicy({ accountId: ACCOUNT, enclaveRole: 'r', images: many })).toThrow(/more than 32 Deny statements/);
    expect(denyConditionSets([{ k: 'a', j: 'b' }, { k: 'c' }])).toEqual([{ k: ['a', 'c'] }, { j: ['b'], k: ['c'] }]);
  });
});
