import { describe, expect, it } from 'vitest';
import { parsePolicy, type PolicyDocument, type PolicyStatement } from '../../src/internal/iam-policy.js';
import { KMS_OPERATIONS } from '../../src/internal/kms-operations.js';
import { actionsOf, auditedOperations, judgeKeyPolicy } from '../../src/kms/key-policy-audit.js';
import { auditablePolicy } from '../helpers/audited-policy.js';
import { seedAvailable, seedKeyPolicy } from '../helpers/seed.js';

const account = '111122223333';
const keyArn = `arn:aws:kms:us-east-1:${account}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
const pcr0 = 'ab'.repeat(48);
const role = `arn:aws:iam::${account}:role/EnclaveInstanceRole`;

const texts = (policy: PolicyDocument, extra: Partial<Parameters<typeof judgeKeyPolicy>[0]> = {}) => judgeKeyPolicy({ keyArn, policy, ...extra }).map((f) => f.text);
/** The policy without the statement named `sid`. */
const without = (policy: PolicyDocument, sid: string): PolicyDocument => ({ ...policy, Statement: policy.Statement.filter((s) => s.Sid !== sid) });
const withStatements = (policy: PolicyDocument, ...statements: PolicyStatement[]): PolicyDocument => ({ ...policy, Statement: [...policy.Statement, ...statements] });

describe('judgeKeyPolicy: only explicit Deny statements close a path', () => {
  it('the operations it checks are every plaintext and ciphertext operation of the classification', () => {
    const checked = auditedOperations().map((o) => o.operation);
    expect(checked).toEqual(KMS_OPERATIONS.filter((o) => o.class === 'plaintext' || o.class === 'ciphertext').map((o) => o.operation));
    expect(checked).toEqual(expect.arrayContaining(['Decrypt', 'Encrypt', 'GenerateDataKey', 'GenerateDataKeyPair', 'ReEncrypt']));
  });

  it.skipIf(!seedAvailable)("finds the seed's verbatim policy open: every audited operation is allowed without attestation via its root statement", () => {
    const found = texts(parsePolicy(seedKeyPolicy(account, pcr0)));
    expect(found).toContain(`kms:Encrypt is allowed without attestation via "Enable IAM User Permissions" (for arn:aws:iam::${account}:root)`);
    for (const action of auditedOperations().flatMap(actionsOf)) {
      expect(found).toContain(`${action} is allowed without attestation via "Enable IAM User Permissions" (for arn:aws:iam::${account}:root)`);
    }
  });

  it('passes a policy whose Deny statements close every audited operation, from the classification', () => {
    expect(texts(auditablePolicy(account, pcr0))).toEqual([]);
  });

  it('names the operation and the statement when the Deny of a minting operation is missing', () => {
    const open = without(auditablePolicy(account, pcr0), 'Deny Minting');
    const found = texts(open);
    expect(found).toContain(`kms:Encrypt is allowed without attestation via "Enable IAM User Permissions" (for arn:aws:iam::${account}:root)`);
    expect(found).toHaveLength(auditedOperations().filter((o) => !o.takesRecipient).flatMap(actionsOf).length);
  });

  it('says which Deny is missing when no statement allows the path (it is merely not denied)', () => {
    const open = without(without(auditablePolicy(account, pcr0), 'Deny Minting'), 'Enable IAM User Permissions');
    expect(texts(open)).toContain(
      `kms:Encrypt is not denied without attestation for arn:aws:iam::${account}:root: no statement allows it today, but only an explicit Deny closes a path the enclave cannot see (IAM policies, grants); the key policy needs a Deny statement for kms:Encrypt`,
    );
  });

  it('a Deny that only refuses requests with no attestation leaves another image open', () => {
    const policy = without(auditablePolicy(account, pcr0), 'Deny Without Enclave Attestation');
    const attested = auditedOperations().filter((o) => o.takesRecipient).flatMap(actionsOf);
    const found = texts(withStatements(policy, { Sid: 'Deny Unattested', Effect: 'Deny', Principal: { AWS: '*' }, Action: attested, Resource: '*', Condition: { Null: { 'kms:RecipientAttestation:ImageSha384': 'true' } } }));
    expect(found[0]).toMatch(/^kms:Decrypt is allowed with the attestation of a debug-mode enclave \(all-zero PCRs\) via "Enable IAM User Permissions"/);
    expect(found).toContain(`kms:Decrypt is allowed with the attestation of another enclave image via "Enable IAM User Permissions" (for arn:aws:iam::${account}:root)`);
  });

  it('a policy admitting the all-zero PCR0 of a debug-mode enclave is open to any image started in debug mode', () => {
    const zeros = '0'.repeat(96);
    const found = texts(auditablePolicy(account, zeros));
    expect(found[0]).toBe(`kms:Decrypt is allowed with the attestation of a debug-mode enclave (all-zero PCRs) via "Enable IAM User Permissions" (for arn:aws:iam::${account}:root)`);
  });

  it('a Deny on a PCR another image can match (PCR1, the kernel) does not close the path', () => {
    const kernel = 'cd'.repeat(48);
    const policy = without(auditablePolicy(account, pcr0), 'Deny Without Enclave Attestation');
    const attested = auditedOperations().filter((o) => o.takesRecipient).flatMap(actionsOf);
    const found = texts(withStatements(policy, { Sid: 'Deny Other Kernels', Effect: 'Deny', Principal: { AWS: '*' }, Action: attested, Resource: '*', Condition: { StringNotEqualsIgnoreCase: { 'kms:RecipientAttestation:PCR1': kernel } } }));
    expect(found[0]).toBe(`kms:Decrypt is allowed with the attestation of another enclave image via "Enable IAM User Permissions" (for arn:aws:iam::${account}:root)`);
    // A PCR8 (signing certificate) Deny does close it: another image cannot carry the operator's signature.
    const signed = withStatements(policy, { Sid: 'Deny Other Signers', Effect: 'Deny', Principal: { AWS: '*' }, Action: attested, Resource: '*', Condition: { StringNotEqualsIgnoreCase: { 'kms:RecipientAttestation:PCR8': kernel } } });
    expect(texts(signed)).toEqual([]);
  });

  it('a Deny with a condition the caller controls (encryption context) closes nothing', () => {
    const policy = without(auditablePolicy(account, pcr0), 'Deny Minting');
    const outright = auditedOperations().filter((o) => !o.takesRecipient).flatMap(actionsOf);
    const found = texts(withStatements(policy, { Sid: 'Deny Minting For The App', Effect: 'Deny', Principal: { AWS: '*' }, Action: outright, Resource: '*', Condition: { StringEquals: { 'kms:EncryptionContext:app': 'agents' } } }));
    expect(found).toContain(`kms:Encrypt is allowed without attestation via "Enable IAM User Permissions" (for arn:aws:iam::${account}:root)`);
  });

  it('a Deny naming some principals leaves the others open (an unnamed principal of the account, another account)', () => {
    const policy = without(auditablePolicy(account, pcr0), 'Deny Minting');
    const outright = auditedOperations().filter((o) => !o.takesRecipient).flatMap(actionsOf);
    const found = judgeKeyPolicy({ keyArn, policy: withStatements(policy, { Sid: 'Deny Minting To Root And Role', Effect: 'Deny', Principal: { AWS: [`arn:aws:iam::${account}:root`, role] }, Action: outright, Resource: '*' }) });
    expect(found.find((f) => f.action === 'kms:Encrypt')!.text).toMatch(new RegExp(`^kms:Encrypt is allowed without attestation via "Enable IAM User Permissions" \\(for arn:aws:sts::${account}:assumed-role/nitro-enclave-key-audit-[0-9a-f]{8}/probe\\)$`));
  });

  it('an Allow for another account is named with its statement', () => {
    const partner: PolicyStatement = { Sid: 'Partner', Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::444455556666:root' }, Action: 'kms:Encrypt', Resource: '*' };
    const policy = withStatements(without(without(auditablePolicy(account, pcr0), 'Deny Minting'), 'Enable IAM User Permissions'), partner);
    expect(texts(policy)).toContain('kms:Encrypt is allowed without attestation via "Partner" (for arn:aws:iam::444455556666:root)');
  });

  it('statements it cannot evaluate as KMS would (NotPrincipal, NotAction, NotResource) make the policy unauditable', () => {
    const policy = withStatements(auditablePolicy(account, pcr0), { Sid: 'Odd', Effect: 'Deny', NotPrincipal: { AWS: role }, Action: 'kms:*', Resource: '*' } as PolicyStatement);
    expect(texts(policy)).toEqual(['the key policy cannot be audited: "Odd" uses NotPrincipal, which the audit does not evaluate']);
  });

  it('an Allow for a service principal on an audited operation is an open path', () => {
    const policy = withStatements(auditablePolicy(account, pcr0), { Sid: 'Let CloudTrail', Effect: 'Allow', Principal: { Service: 'cloudtrail.amazonaws.com' } as never, Action: 'kms:GenerateDataKey*', Resource: '*' });
    expect(texts(policy)[0]).toBe('kms:GenerateDataKey is allowed to cloudtrail.amazonaws.com via "Let CloudTrail", and the audit cannot tell whether the Deny statements reach that principal');
  });

  it('replication (multi-Region keys) must be denied to everyone', () => {
    expect(texts(auditablePolicy(account, pcr0), { replication: true })[0]).toBe(`kms:ReplicateKey is allowed without attestation via "Enable IAM User Permissions" (for arn:aws:iam::${account}:root)`);
    const closed = withStatements(auditablePolicy(account, pcr0), { Sid: 'Deny Replication', Effect: 'Deny', Principal: { AWS: '*' }, Action: 'kms:ReplicateKey', Resource: '*' });
    expect(texts(closed, { replication: true })).toEqual([]);
  });
});

describe('judgeKeyPolicy: grants', () => {
  const policy = auditablePolicy(account, pcr0);

  it('a grant cannot open what the Deny statements close', () => {
    const grants = [{ GrantId: 'g1', Name: 'app', GranteePrincipal: `arn:aws:iam::${account}:role/App`, Operations: ['Encrypt', 'Decrypt', 'GenerateDataKey', 'DescribeKey'] }];
    expect(texts(policy, { grants })).toEqual([]);
  });

  it('a grant of an operation the Deny statements do not close for its grantee is named', () => {
    const open = without(policy, 'Deny Minting');
    const grants = [{ GrantId: 'g1', Name: 'app', GranteePrincipal: 'arn:aws:iam::444455556666:role/App', Operations: ['Encrypt'] }];
    expect(texts(open, { grants })).toContain('grant g1 ("app") gives kms:Encrypt to arn:aws:iam::444455556666:role/App without attestation, and no Deny statement of the key policy closes it');
  });

  it('a grant to a service principal, or of an operation the classification lacks, is refused (fail closed)', () => {
    const grants = [
      { GrantId: 'g2', GranteePrincipal: 'rds.us-east-1.amazonaws.com', Operations: ['Encrypt'] },
      { GrantId: 'g3', GranteePrincipal: `arn:aws:iam::${account}:role/App`, Operations: ['FutureOperation'] },
    ];
    expect(texts(policy, { grants })).toEqual(['grant g2 gives kms:Encrypt to rds.us-east-1.amazonaws.com, a principal the audit cannot evaluate the Deny statements for', 'grant g3 carries FutureOperation, an operation the audit does not know']);
  });
});
