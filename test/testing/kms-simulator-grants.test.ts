/**
 * Grants as KMS serves them: CreateGrant's validation, grant tokens and
 * eventual consistency, ListGrants / ListRetirableGrants, who may retire,
 * RevokeGrant, and KMS's evaluation order (an explicit Deny in the key
 * policy is never re-opened by a grant). DescribeKey's Origin / MultiRegion
 * fields are checked here too.
 */
import {
  CreateGrantCommand,
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateDataKeyWithoutPlaintextCommand,
  KMSClient,
  type GrantOperation,
  ListGrantsCommand,
  ListRetirableGrantsCommand,
  PutKeyPolicyCommand,
  RetireGrantCommand,
  RevokeGrantCommand,
} from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKeyPolicy } from '../../src/parent/key-policy.js';
import { createSimulatedEnclave, kmsClientConfig, startKmsSimulator, type KmsSimulator } from '../../src/testing/index.js';
import { errorOf } from '../helpers/kms.js';

const enclave = createSimulatedEnclave();
let offsetMs = 0;
let sim: KmsSimulator;
let account: string;
let roleArn: string;
let otherArn: string;

beforeAll(async () => {
  sim = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor], clock: () => new Date(Date.now() + offsetMs) });
  account = sim.accountId;
  roleArn = `arn:aws:iam::${account}:role/EnclaveInstanceRole`;
  otherArn = sim.principal('user/other').arn;
});
afterAll(() => sim.close());

/** Clients sign by the simulator's clock (moved by tests for eventual consistency). */
const at = (suffix: string) => new KMSClient({ ...kmsClientConfig(sim, sim.principal(suffix)), systemClockOffset: offsetMs });
const admin = () => at('user/admin');
const role = () => at('EnclaveInstanceRole');
const other = () => at('user/other');

const newKey = async (input: ConstructorParameters<typeof CreateKeyCommand>[0] = {}) => (await admin().send(new CreateKeyCommand(input))).KeyMetadata!;
const blob = async (keyId: string, ctx?: Record<string, string>) =>
  (await admin().send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId, KeySpec: 'AES_256', ...(ctx ? { EncryptionContext: ctx } : {}) }))).CiphertextBlob!;

describe('DescribeKey', () => {
  it('reports Origin, KeyManager, MultiRegion and MultiRegionConfiguration as they are', async () => {
    const plain = await newKey();
    expect(plain).toMatchObject({ Origin: 'AWS_KMS', KeyManager: 'CUSTOMER', MultiRegion: false, KeyState: 'Enabled' });
    expect(plain.MultiRegionConfiguration).toBeUndefined();
    const external = await newKey({ Origin: 'EXTERNAL' });
    expect(external).toMatchObject({ Origin: 'EXTERNAL', KeyState: 'PendingImport', Enabled: false });
    const mrk = await newKey({ MultiRegion: true });
    expect(mrk.KeyId).toMatch(/^mrk-[0-9a-f]{32}$/);
    const described = (await admin().send(new DescribeKeyCommand({ KeyId: mrk.Arn }))).KeyMetadata!;
    expect(described).toMatchObject({ MultiRegion: true, MultiRegionConfiguration: { MultiRegionKeyType: 'PRIMARY', PrimaryKey: { Arn: mrk.Arn, Region: 'us-east-1' }, ReplicaKeys: [] } });
  });
});

describe('CreateGrant and ListGrants', () => {
  it('returns a GrantToken and a 64-hex GrantId; ListGrants shows every field KMS lists', async () => {
    const key = await newKey();
    const created = await admin().send(
      new CreateGrantCommand({
        KeyId: key.KeyId,
        GranteePrincipal: roleArn,
        RetiringPrincipal: otherArn,
        Operations: ['Decrypt', 'DescribeKey'],
        Constraints: { EncryptionContextSubset: { purpose: 'test' } },
        Name: 'my-grant',
      }),
    );
    expect(created.GrantId).toMatch(/^[0-9a-f]{64}$/);
    expect(created.GrantToken!.length).toBeGreaterThan(64);
    const listed = await admin().send(new ListGrantsCommand({ KeyId: key.Arn }));
    expect(listed.Truncated).toBe(false);
    expect(listed.NextMarker).toBeUndefined();
    expect(listed.Grants).toHaveLength(1);
    const [g] = listed.Grants!;
    expect(g).toEqual({
      KeyId: key.Arn,
      GrantId: created.GrantId,
      Name: 'my-grant',
      CreationDate: expect.any(Date),
      GranteePrincipal: roleArn,
      RetiringPrincipal: otherArn,
      IssuingAccount: `arn:aws:iam::${account}:root`,
      Operations: ['Decrypt', 'DescribeKey'],
      Constraints: { EncryptionContextSubset: { purpose: 'test' } },
    });
  });

  it('is idempotent by Name: the same parameters give the same GrantId (and a new token that works too)', async () => {
    const key = await newKey();
    const input = { KeyId: key.KeyId, GranteePrincipal: roleArn, Operations: ['Encrypt' as const], Name: 'idem' };
    const a = await admin().send(new CreateGrantCommand(input));
    const b = await admin().send(new CreateGrantCommand(input));
    expect(b.GrantId).toBe(a.GrantId);
    expect(b.GrantToken).not.toBe(a.GrantToken);
    const c = await admin().send(new CreateGrantCommand({ ...input, Operations: ['Encrypt', 'Decrypt'] }));
    expect(c.GrantId).not.toBe(a.GrantId);
    for (const token of [a.GrantToken!, b.GrantToken!]) await role().send(new EncryptCommand({ KeyId: key.Arn, Plaintext: new Uint8Array(8), GrantTokens: [token] }));
    expect((await admin().send(new ListGrantsCommand({ KeyId: key.KeyId }))).Grants).toHaveLength(2);
  });

  it('validates as KMS does: operation names, operations the key type supports, constraints, principals, grant tokens', async () => {
    const key = await newKey();
    const base = { KeyId: key.KeyId, GranteePrincipal: roleArn };
    expect(await errorOf(admin().send(new CreateGrantCommand({ ...base, Operations: ['Sign'] })))).toEqual({
      name: 'ValidationException',
      message: 'Grant operations Sign are not valid for a KMS key with key usage ENCRYPT_DECRYPT and key spec SYMMETRIC_DEFAULT.',
    });
    expect((await errorOf(admin().send(new CreateGrantCommand({ ...base, Operations: ['Frobnicate' as never] })))).name).toBe('ValidationException');
    expect((await errorOf(admin().send(new CreateGrantCommand({ ...base, Operations: [] })))).name).toBe('ValidationException');
    expect(await errorOf(admin().send(new CreateGrantCommand({ ...base, GranteePrincipal: `arn:aws:iam::${account}:role/NoSuchRole`, Operations: ['Decrypt'] })))).toEqual({
      name: 'ValidationException',
      message: `Invalid principal: arn:aws:iam::${account}:role/NoSuchRole`,
    });
    const kaKey = await newKey({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'KEY_AGREEMENT' });
    expect(await errorOf(admin().send(new CreateGrantCommand({ KeyId: kaKey.KeyId, GranteePrincipal: roleArn, Operations: ['DeriveSharedSecret'], Constraints: { EncryptionContextEquals: { a: 'b' } } })))).toEqual({
      name: 'ValidationException',
      message: 'Encryption context grant constraints are supported only for symmetric encryption KMS keys.',
    });
    expect(await errorOf(admin().send(new CreateGrantCommand({ ...base, KeyId: 'alias/whatever', Operations: ['Decrypt'] })))).toEqual({ name: 'NotFoundException', message: 'Invalid keyId alias/whatever' });
    expect(await errorOf(admin().send(new DescribeKeyCommand({ KeyId: key.KeyId, GrantTokens: ['not-a-token'] })))).toEqual({ name: 'InvalidGrantTokenException', message: 'Grant token is invalid.' });
    expect((await errorOf(admin().send(new DescribeKeyCommand({ KeyId: key.KeyId, GrantTokens: Array(11).fill('x') })))).name).toBe('ValidationException');
  });

  it('a grant works at once with its token, and without it only after eventual consistency (5 minutes by the clock)', async () => {
    const key = await newKey();
    const b = await blob(key.KeyId!);
    const { GrantToken } = await admin().send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: roleArn, Operations: ['Decrypt'] }));
    expect(await errorOf(role().send(new DecryptCommand({ CiphertextBlob: b })))).toEqual({
      name: 'AccessDeniedException',
      message: `User: ${sim.principal('EnclaveInstanceRole').arn} is not authorized to perform: kms:Decrypt on resource: ${key.Arn} because no identity-based policy allows the kms:Decrypt action`,
    });
    expect((await role().send(new DecryptCommand({ CiphertextBlob: b, GrantTokens: [GrantToken!] }))).Plaintext).toHaveLength(32);
    offsetMs += 5 * 60_000;
    try {
      expect((await role().send(new DecryptCommand({ CiphertextBlob: b }))).Plaintext).toHaveLength(32);
    } finally {
      offsetMs -= 5 * 60_000;
    }
    // Only the operations it names, only to its grantee.
    expect((await errorOf(role().send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: new Uint8Array(4), GrantTokens: [GrantToken!] })))).name).toBe('AccessDeniedException');
    expect((await errorOf(other().send(new DecryptCommand({ CiphertextBlob: b, GrantTokens: [GrantToken!] })))).name).toBe('AccessDeniedException');
  });

  it('constraints: EncryptionContextEquals needs exactly that context, EncryptionContextSubset at least it (keys case-insensitive, values exact)', async () => {
    const key = await newKey();
    const eq = await admin().send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: roleArn, Operations: ['Decrypt'], Constraints: { EncryptionContextEquals: { app: 'a' } } }));
    const decrypt = (ctx: Record<string, string> | undefined, token: string) =>
      blob(key.KeyId!, ctx).then((b) => role().send(new DecryptCommand({ CiphertextBlob: b, GrantTokens: [token], ...(ctx ? { EncryptionContext: ctx } : {}) })));
    await decrypt({ app: 'a' }, eq.GrantToken!);
    await decrypt({ APP: 'a' }, eq.GrantToken!);
    for (const ctx of [undefined, { app: 'A' }, { app: 'a', more: 'x' }] as Array<Record<string, string> | undefined>) expect((await errorOf(decrypt(ctx, eq.GrantToken!))).name).toBe('AccessDeniedException');
    const sub = await admin().send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: otherArn, Operations: ['Encrypt'], Constraints: { EncryptionContextSubset: { app: 'a' } } }));
    await other().send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: new Uint8Array(4), EncryptionContext: { app: 'a', more: 'x' }, GrantTokens: [sub.GrantToken!] }));
    expect((await errorOf(other().send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: new Uint8Array(4), EncryptionContext: { more: 'x' }, GrantTokens: [sub.GrantToken!] })))).name).toBe('AccessDeniedException');
  });

  it('a grantee with CreateGrant may only create narrower grants', async () => {
    const key = await newKey();
    const parent = await admin().send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: roleArn, Operations: ['CreateGrant', 'Decrypt'], Constraints: { EncryptionContextSubset: { app: 'a' } } }));
    const tokens = [parent.GrantToken!];
    await role().send(new CreateGrantCommand({ KeyId: key.Arn, GranteePrincipal: otherArn, Operations: ['Decrypt'], Constraints: { EncryptionContextEquals: { app: 'a', x: 'y' } }, GrantTokens: tokens }));
    const wider: Array<{ Operations: GrantOperation[]; Constraints?: { EncryptionContextSubset: Record<string, string> } }> = [
      { Operations: ['Decrypt', 'Encrypt'], Constraints: { EncryptionContextSubset: { app: 'a' } } },
      { Operations: ['Decrypt'] },
      { Operations: ['Decrypt'], Constraints: { EncryptionContextSubset: { other: 'b' } } },
    ];
    for (const w of wider) {
      const e = await errorOf(role().send(new CreateGrantCommand({ KeyId: key.Arn, GranteePrincipal: otherArn, ...w, GrantTokens: tokens })));
      expect(e.name).toBe('AccessDeniedException');
    }
  });
});

describe('retiring and revoking', () => {
  it('RetireGrant: by token or key+id; by the retiring principal, or the grantee only if the grant allows RetireGrant; the token stops working', async () => {
    const key = await newKey();
    const g1 = await admin().send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: roleArn, RetiringPrincipal: otherArn, Operations: ['Decrypt'] }));
    // The grantee may not retire a grant that does not include RetireGrant; neither may a key administrator (no kms:RetireGrant route).
    for (const who of [role(), admin()]) expect((await errorOf(who.send(new RetireGrantCommand({ GrantToken: g1.GrantToken })))).name).toBe('AccessDeniedException');
    expect((await admin().send(new ListRetirableGrantsCommand({ RetiringPrincipal: otherArn }))).Grants!.map((g) => g.GrantId)).toContain(g1.GrantId);
    expect((await errorOf(other().send(new ListRetirableGrantsCommand({ RetiringPrincipal: otherArn })))).name).toBe('AccessDeniedException'); // IAM only
    await other().send(new RetireGrantCommand({ GrantToken: g1.GrantToken }));
    expect((await admin().send(new ListGrantsCommand({ KeyId: key.KeyId }))).Grants).toEqual([]);
    expect(await errorOf(role().send(new DescribeKeyCommand({ KeyId: key.KeyId, GrantTokens: [g1.GrantToken!] })))).toEqual({ name: 'InvalidGrantTokenException', message: 'Grant token is invalid.' });
    const g2 = await admin().send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: roleArn, Operations: ['Decrypt', 'RetireGrant'] }));
    await role().send(new RetireGrantCommand({ KeyId: key.Arn, GrantId: g2.GrantId }));
    expect(await errorOf(role().send(new RetireGrantCommand({ KeyId: key.Arn, GrantId: g2.GrantId })))).toEqual({ name: 'NotFoundException', message: `Grant ID ${g2.GrantId} not found` });
    expect((await errorOf(role().send(new RetireGrantCommand({ KeyId: key.Arn, GrantId: 'nope' })))).name).toBe('InvalidGrantIdException');
  });

  it('RevokeGrant needs kms:RevokeGrant from the key policy or IAM (a grant cannot give it); the grant stops working at once', async () => {
    const key = await newKey();
    const b = await blob(key.KeyId!);
    const g = await admin().send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: roleArn, Operations: ['Decrypt', 'RetireGrant', 'CreateGrant'] }));
    expect(await errorOf(role().send(new RevokeGrantCommand({ KeyId: key.Arn, GrantId: g.GrantId })))).toEqual({
      name: 'AccessDeniedException',
      message: `User: ${sim.principal('EnclaveInstanceRole').arn} is not authorized to perform: kms:RevokeGrant on resource: ${key.Arn} because no identity-based policy allows the kms:RevokeGrant action`,
    });
    offsetMs += 10 * 60_000;
    try {
      await role().send(new DecryptCommand({ CiphertextBlob: b }));
      await admin().send(new RevokeGrantCommand({ KeyId: key.Arn, GrantId: g.GrantId }));
      expect((await errorOf(role().send(new DecryptCommand({ CiphertextBlob: b })))).name).toBe('AccessDeniedException');
    } finally {
      offsetMs -= 10 * 60_000;
    }
  });

  it('ListGrants pages with Limit and Marker; a bad Marker is InvalidMarkerException', async () => {
    const key = await newKey();
    for (let i = 0; i < 3; i++) await admin().send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: roleArn, Operations: ['Decrypt'], Name: `g${i}` }));
    const first = await admin().send(new ListGrantsCommand({ KeyId: key.KeyId, Limit: 2 }));
    expect(first).toMatchObject({ Truncated: true, NextMarker: expect.any(String) });
    expect(first.Grants!.map((g) => g.Name)).toEqual(['g0', 'g1']);
    const second = await admin().send(new ListGrantsCommand({ KeyId: key.KeyId, Limit: 2, Marker: first.NextMarker }));
    expect(second.Truncated).toBe(false);
    expect(second.Grants!.map((g) => g.Name)).toEqual(['g2']);
    expect((await errorOf(admin().send(new ListGrantsCommand({ KeyId: key.KeyId, Marker: 'garbage' })))).name).toBe('InvalidMarkerException');
    expect((await errorOf(other().send(new ListGrantsCommand({ KeyId: key.KeyId })))).name).toBe('AccessDeniedException');
  });
});

describe("KMS's evaluation order: an explicit Deny in the key policy beats any grant", () => {
  it("a grant for Decrypt/Encrypt/GenerateDataKey to the parent's role is useless under buildKeyPolicy's Deny statements", async () => {
    const key = await newKey();
    const b = await blob(key.KeyId!);
    const policy = buildKeyPolicy({ accountId: account, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384 });
    await admin().send(new PutKeyPolicyCommand({ KeyId: key.KeyId, Policy: JSON.stringify(policy) }));
    const { GrantToken } = await admin().send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: roleArn, Operations: ['Decrypt', 'Encrypt', 'GenerateDataKey', 'ReEncryptFrom'] }));
    const parent = sim.principal('EnclaveInstanceRole').arn;
    expect(await errorOf(role().send(new DecryptCommand({ CiphertextBlob: b, GrantTokens: [GrantToken!] })))).toEqual({
      name: 'AccessDeniedException',
      message: `User: ${parent} is not authorized to perform: kms:Decrypt on resource: ${key.Arn} with an explicit deny in a resource-based policy`,
    });
    // Long after eventual consistency too.
    offsetMs += 10 * 60_000;
    try {
      expect((await errorOf(role().send(new DecryptCommand({ CiphertextBlob: b })))).message).toContain('with an explicit deny in a resource-based policy');
    } finally {
      offsetMs -= 10 * 60_000;
    }
    // Where the policy has no Deny, the same grant opens the operation: the grant itself is live.
    const gdk = await role().send(new GenerateDataKeyCommand({ KeyId: key.KeyId, KeySpec: 'AES_256', GrantTokens: [GrantToken!] })).catch((e: Error) => e);
    const denies = policy.Statement.filter((s) => s.Effect === 'Deny').flatMap((s) => [s.Action].flat());
    if (denies.some((a) => /GenerateDataKey/.test(String(a)))) expect((gdk as Error).name).toBe('AccessDeniedException');
    else expect((gdk as { Plaintext: Uint8Array }).Plaintext).toHaveLength(32);
  });

  it('without a Deny, the same grant opens Decrypt (so the test above proves the Deny, not a dead grant)', async () => {
    const key = await newKey();
    const b = await blob(key.KeyId!);
    const { GrantToken } = await admin().send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: roleArn, Operations: ['Decrypt'] }));
    expect((await role().send(new DecryptCommand({ CiphertextBlob: b, GrantTokens: [GrantToken!] }))).Plaintext).toHaveLength(32);
  });
});
