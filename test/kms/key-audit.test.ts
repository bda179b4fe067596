import { CreateAliasCommand, CreateGrantCommand, CreateKeyCommand, DisableKeyCommand, EnableKeyCommand, KMSClient, PutKeyPolicyCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditKmsKey, NitroEnclaveError } from '../../src/kms/index.js';
import { createSimulatedEnclave, defaultPrincipals, kmsClientConfig, startKmsSimulator, type KmsSimulator, type SimulatedPrincipal } from '../../src/testing/index.js';
import { auditablePolicy } from '../helpers/audited-policy.js';
import { client } from '../helpers/kms.js';
import { seedAvailable, seedInstanceRolePolicy, seedKeyPolicy } from '../helpers/seed.js';

const enclave = createSimulatedEnclave();
let sim: KmsSimulator;
let admin: KMSClient;
let role: KMSClient;
/** The seed's step-4 instance role (IAM: kms:Decrypt only), and one whose IAM also allows the audit's reads. */
let seedRole: KMSClient;
let readerRole: KMSClient;
const account = '111122223333';

const reads = { Effect: 'Allow' as const, Action: ['kms:DescribeKey', 'kms:GetKeyPolicy', 'kms:ListGrants'], Resource: '*' };

beforeAll(async () => {
  const extra: SimulatedPrincipal[] = [
    { accessKeyId: 'ASIATESTSEEDROLE0001', secretAccessKey: 'seed-role-secret-not-real', sessionToken: 'seed-token', arn: `arn:aws:sts::${account}:assumed-role/SeedInstanceRole/i-0seed` },
    { accessKeyId: 'ASIATESTREADERROLE01', secretAccessKey: 'reader-role-secret-not-real', sessionToken: 'reader-token', arn: `arn:aws:sts::${account}:assumed-role/ReaderInstanceRole/i-0reader` },
  ];
  sim = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor], principals: [...defaultPrincipals(account), ...extra] });
  admin = client(sim, sim.principal('user/admin'));
  role = client(sim, sim.principal('EnclaveInstanceRole'));
  seedRole = client(sim, sim.principal('SeedInstanceRole'));
  readerRole = client(sim, sim.principal('ReaderInstanceRole'));
});
afterAll(async () => {
  for (const c of [admin, role, seedRole, readerRole]) c.destroy();
  await sim.close();
});

async function keyWith(policy: unknown, extra: { MultiRegion?: boolean; Origin?: 'EXTERNAL' } = {}): Promise<{ arn: string; id: string }> {
  const m = (await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(policy), ...extra }))).KeyMetadata!;
  return { arn: m.Arn!, id: m.KeyId! };
}

async function failure(p: Promise<unknown>): Promise<NitroEnclaveError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof NitroEnclaveError) return err;
    throw err;
  }
  throw new Error('expected the audit to fail');
}

/** Gives the simulated principals identity policies for one test: the seed role the step-4 policy (plus, for the reader, the audit's reads). */
function withIdentityPolicies(keyArn: string) {
  const seed = sim.principals.find((p) => p.arn.includes('SeedInstanceRole'))!;
  const reader = sim.principals.find((p) => p.arn.includes('ReaderInstanceRole'))!;
  const step4 = seedInstanceRolePolicy(keyArn) as { Statement: object[] };
  (seed as { identityPolicies?: unknown }).identityPolicies = [step4];
  (reader as { identityPolicies?: unknown }).identityPolicies = [{ ...step4, Statement: [...step4.Statement, reads] }];
}

describe('auditKmsKey against the KMS simulator', () => {
  it('passes a key under a policy whose Deny statements close every path, pinned by key ARN or alias ARN', async () => {
    const key = await keyWith(auditablePolicy(account, enclave.imageSha384));
    await admin.send(new CreateAliasCommand({ AliasName: 'alias/audit-ok', TargetKeyId: key.id }));
    expect(await auditKmsKey(role, key.arn)).toEqual({ keyArn: key.arn, grants: 0 });
    expect(await auditKmsKey(role, `arn:aws:kms:us-east-1:${account}:alias/audit-ok`)).toEqual({ keyArn: key.arn, grants: 0 });
  });

  it.skipIf(!seedAvailable)("refuses a key under the seed's verbatim policy, naming the open path and the statement", async () => {
    const key = await keyWith(JSON.parse(seedKeyPolicy(account, enclave.imageSha384)));
    withIdentityPolicies(key.arn);
    const err = await failure(auditKmsKey(readerRole, key.arn));
    expect(err.code).toBe('ERR_KMS_KEY_UNSAFE');
    expect(err.message).toMatch(new RegExp(`^KMS key ${key.arn} is not safe to trust with a Trusted Session Key: kms:\\w+ is allowed without attestation via "Enable IAM User Permissions" \\(for arn:aws:iam::${account}:root\\)`));
    expect(err.message).toContain(`kms:Decrypt is allowed without attestation via "Enable IAM User Permissions" (for arn:aws:iam::${account}:root)`);
    expect(err.message).toContain(`kms:Encrypt is allowed without attestation via "Enable IAM User Permissions" (for arn:aws:iam::${account}:root)`);
    expect(err.message).toContain(`kms:GenerateDataKey is allowed without attestation via "Enable IAM User Permissions"`);
  });

  it.skipIf(!seedAvailable)("refuses it too when the seed's instance role may not read the key (a key it cannot audit is not shown safe)", async () => {
    const key = await keyWith(JSON.parse(seedKeyPolicy(account, enclave.imageSha384)));
    withIdentityPolicies(key.arn);
    const err = await failure(auditKmsKey(seedRole, key.arn));
    expect(err.code).toBe('ERR_KMS_KEY_UNSAFE');
    expect(err.message).toMatch(
      new RegExp(`^KMS key ${key.arn} is not safe to trust with a Trusted Session Key: it cannot be audited, because KMS refused kms:(DescribeKey|GetKeyPolicy|ListGrants) to these credentials\\. The enclave's role needs kms:DescribeKey, kms:GetKeyPolicy and kms:ListGrants on the key`),
    );
  });

  it('refuses a multi-Region key; with allowMultiRegionKey, its policy must still deny replication to everyone', async () => {
    const policy = auditablePolicy(account, enclave.imageSha384);
    const key = await keyWith(policy, { MultiRegion: true });
    expect(key.arn).toMatch(/:key\/mrk-[0-9a-f]{32}$/);
    const err = await failure(auditKmsKey(role, key.arn));
    expect(err.code).toBe('ERR_KMS_KEY_UNSAFE');
    expect(err.message).toBe(
      `KMS key ${key.arn} is not safe to trust with a Trusted Session Key: it is a multi-Region key: each replica lives in another Region under its own key policy, which this enclave cannot read, and decrypts the same blobs. Use a single-Region key (or, knowingly, set allowMultiRegionKey)`,
    );
    const optedIn = await failure(auditKmsKey(role, key.arn, { allowMultiRegionKey: true }));
    expect(optedIn.message).toBe(`KMS key ${key.arn} is not safe to trust with a Trusted Session Key: kms:ReplicateKey is allowed without attestation via "Enable IAM User Permissions" (for arn:aws:iam::${account}:root)`);
    const closed = auditablePolicy(account, enclave.imageSha384, { extra: [{ Sid: 'Deny Replication', Effect: 'Deny', Principal: { AWS: '*' }, Action: 'kms:ReplicateKey', Resource: '*' }] });
    await admin.send(new PutKeyPolicyCommand({ KeyId: key.id, PolicyName: 'default', Policy: JSON.stringify(closed) }));
    expect(await auditKmsKey(role, key.arn, { allowMultiRegionKey: true })).toEqual({ keyArn: key.arn, grants: 0 });
  });

  it('refuses a key whose material is imported (Origin EXTERNAL), and a disabled key', async () => {
    const imported = await keyWith(auditablePolicy(account, enclave.imageSha384), { Origin: 'EXTERNAL' });
    const err = await failure(auditKmsKey(role, imported.arn));
    expect(err.code).toBe('ERR_KMS_KEY_UNSAFE');
    expect(err.message).toBe(`KMS key ${imported.arn} is not safe to trust with a Trusted Session Key: its key material was imported (Origin EXTERNAL): whoever kept a copy of it can decrypt every blob of this key outside KMS, where no key policy applies`);
    const key = await keyWith(auditablePolicy(account, enclave.imageSha384));
    await admin.send(new DisableKeyCommand({ KeyId: key.id }));
    expect((await failure(auditKmsKey(role, key.arn))).message).toBe(`KMS key ${key.arn} is not safe to trust with a Trusted Session Key: it is not enabled (KeyState Disabled)`);
    await admin.send(new EnableKeyCommand({ KeyId: key.id }));
    expect(await auditKmsKey(role, key.arn)).toEqual({ keyArn: key.arn, grants: 0 });
  });

  it('reads every page of grants: a grant the Deny statements do not close is named, even on the second page', async () => {
    const policy = auditablePolicy(account, enclave.imageSha384);
    const key = await keyWith(policy);
    const grantee = `arn:aws:iam::${account}:user/other`;
    for (let i = 0; i < 100; i++) await admin.send(new CreateGrantCommand({ KeyId: key.id, GranteePrincipal: grantee, Operations: ['Decrypt', 'DescribeKey'], Name: `closed-${i}` }));
    expect(await auditKmsKey(role, key.arn)).toEqual({ keyArn: key.arn, grants: 100 });
    // The 101st grant (page 2) gives Encrypt; with the policy's minting Deny gone, nothing closes it.
    const last = (await admin.send(new CreateGrantCommand({ KeyId: key.id, GranteePrincipal: grantee, Operations: ['Encrypt'], Name: 'mint' }))).GrantId!;
    const open = { ...policy, Statement: policy.Statement.filter((s) => s.Sid !== 'Deny Minting') };
    await admin.send(new PutKeyPolicyCommand({ KeyId: key.id, PolicyName: 'default', Policy: JSON.stringify(open) }));
    const err = await failure(auditKmsKey(role, key.arn));
    expect(err.code).toBe('ERR_KMS_KEY_UNSAFE');
    expect(err.message).toContain(`grant ${last} ("mint") gives kms:Encrypt to ${grantee} without attestation, and no Deny statement of the key policy closes it`);
    expect(err.message).not.toContain('closed-');
  });

  it('fails with ERR_KMS_KEY_MISMATCH when KMS describes another key than the pinned one', async () => {
    const key = await keyWith(auditablePolicy(account, enclave.imageSha384));
    const other = await keyWith(auditablePolicy(account, enclave.imageSha384));
    const forged = new KMSClient(kmsClientConfig(sim, sim.principal('EnclaveInstanceRole')));
    forged.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        const out = result.output as { KeyMetadata?: { Arn?: string } };
        if (out.KeyMetadata) out.KeyMetadata.Arn = other.arn;
        return result;
      },
      { step: 'initialize', name: 'describeAnotherKey' },
    );
    const err = await failure(auditKmsKey(forged, key.arn));
    expect(err.code).toBe('ERR_KMS_KEY_MISMATCH');
    expect(err.message).toBe(`KMS DescribeKey answered for key ${other.arn}, not the pinned ${key.arn}`);
    forged.destroy();
  });

  it('refuses a bare key id or alias with a TypeError, before any request', async () => {
    await expect(auditKmsKey(role, 'alias/audit-ok')).rejects.toThrow(TypeError);
    await expect(auditKmsKey(role, `arn:aws:kms:us-east-1:${account}:alias/audit-ok`, { allowMultiRegionKey: 'yes' as never })).rejects.toThrow('allowMultiRegionKey must be a boolean');
  });
});
