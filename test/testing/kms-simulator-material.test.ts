/**
 * The ways key material leaves a key, as KMS serves them: multi-Region keys
 * (ReplicateKey: a replica in another Region, with its own policy, shares the
 * material and decrypts the primary's blobs; UpdatePrimaryRegion) and
 * imported material (Origin EXTERNAL, GetParametersForImport,
 * ImportKeyMaterial, DeleteImportedKeyMaterial).
 */
import { constants, createCipheriv, createPublicKey, publicEncrypt, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CancelKeyDeletionCommand,
  CreateGrantCommand,
  CreateKeyCommand,
  DecryptCommand,
  DeleteImportedKeyMaterialCommand,
  DescribeKeyCommand,
  EnableKeyCommand,
  EncryptCommand,
  GenerateDataKeyWithoutPlaintextCommand,
  GetKeyPolicyCommand,
  GetParametersForImportCommand,
  ImportKeyMaterialCommand,
  KMSClient,
  ReplicateKeyCommand,
  ScheduleKeyDeletionCommand,
  UpdatePrimaryRegionCommand,
  type AlgorithmSpec,
} from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimulatedEnclave, kmsClientConfig, startKmsSimulator, type KmsSimulator } from '../../src/testing/index.js';
import { errorOf } from '../helpers/kms.js';

const enclave = createSimulatedEnclave();
let offsetMs = 0;
let sim: KmsSimulator;
let account: string;

beforeAll(async () => {
  sim = await startKmsSimulator({ regions: ['eu-west-1'], trustAnchors: [enclave.trustAnchor], clock: () => new Date(Date.now() + offsetMs) });
  account = sim.accountId;
});
afterAll(() => sim.close());

const at = (suffix: string, region = 'us-east-1') => new KMSClient({ ...kmsClientConfig(sim, sim.principal(suffix), undefined, region), systemClockOffset: offsetMs });
const admin = (region?: string) => at('user/admin', region);
const role = (region?: string) => at('EnclaveInstanceRole', region);
const policyOf = (...Statement: object[]) => JSON.stringify({ Version: '2012-10-17', Statement });
const rootStatement = { Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::111122223333:root` }, Action: 'kms:*', Resource: '*' };

describe('multi-Region keys', () => {
  it('ReplicateKey: the replica, under its own policy, decrypts the primary blobs; MultiRegionConfiguration names both', async () => {
    const primary = (await admin().send(new CreateKeyCommand({ MultiRegion: true, Description: 'primary' }))).KeyMetadata!;
    const { CiphertextBlob } = await admin().send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: primary.KeyId, KeySpec: 'AES_256' }));
    // The replica's policy lets the role decrypt, which the primary's (default) policy never did.
    const replicaPolicy = policyOf(rootStatement, { Sid: 'Role decrypts', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:role/EnclaveInstanceRole` }, Action: 'kms:Decrypt', Resource: '*' });
    expect((await errorOf(role().send(new DecryptCommand({ CiphertextBlob })))).name).toBe('AccessDeniedException');
    const replicated = await admin().send(new ReplicateKeyCommand({ KeyId: primary.Arn, ReplicaRegion: 'eu-west-1', Policy: replicaPolicy }));
    const replicaArn = `arn:aws:kms:eu-west-1:${account}:key/${primary.KeyId}`;
    expect(replicated.ReplicaKeyMetadata).toMatchObject({ Arn: replicaArn, KeyId: primary.KeyId, MultiRegion: true, KeyState: 'Creating', Description: '' });
    expect(replicated.ReplicaPolicy).toBe(replicaPolicy);
    expect(replicated.ReplicaTags).toEqual([]);
    const decrypted = await role('eu-west-1').send(new DecryptCommand({ CiphertextBlob }));
    expect(decrypted.KeyId).toBe(replicaArn);
    expect(decrypted.Plaintext).toHaveLength(32);
    expect((await admin('eu-west-1').send(new GetKeyPolicyCommand({ KeyId: primary.KeyId }))).Policy).toBe(replicaPolicy);
    const config = (await admin().send(new DescribeKeyCommand({ KeyId: primary.KeyId }))).KeyMetadata!.MultiRegionConfiguration;
    expect(config).toEqual({ MultiRegionKeyType: 'PRIMARY', PrimaryKey: { Arn: primary.Arn, Region: 'us-east-1' }, ReplicaKeys: [{ Arn: replicaArn, Region: 'eu-west-1' }] });
    const replicaConfig = (await admin('eu-west-1').send(new DescribeKeyCommand({ KeyId: replicaArn }))).KeyMetadata!;
    expect(replicaConfig).toMatchObject({ KeyState: 'Enabled', MultiRegionConfiguration: { MultiRegionKeyType: 'REPLICA', PrimaryKey: { Arn: primary.Arn, Region: 'us-east-1' } } });
    // The replica's blobs decrypt at the primary too (same key id, same material).
    const back = await admin('eu-west-1').send(new EncryptCommand({ KeyId: primary.KeyId, Plaintext: Buffer.from('hi') }));
    expect(Buffer.from((await admin().send(new DecryptCommand({ CiphertextBlob: back.CiphertextBlob }))).Plaintext!).toString()).toBe('hi');
    // A second replica in the same Region is refused; the key is not usable by its replica ARN in the home Region.
    expect(await errorOf(admin().send(new ReplicateKeyCommand({ KeyId: primary.Arn, ReplicaRegion: 'eu-west-1' })))).toEqual({
      name: 'AlreadyExistsException',
      message: `Multi-Region key ${primary.KeyId} already has a replica in eu-west-1.`,
    });
    expect((await errorOf(admin().send(new DescribeKeyCommand({ KeyId: replicaArn })))).name).toBe('NotFoundException');
  });

  it('refuses what KMS refuses: a single-Region key, a replica as source, its own Region, the lockout check; needs kms:ReplicateKey on the primary', async () => {
    const single = (await admin().send(new CreateKeyCommand({}))).KeyMetadata!;
    expect(await errorOf(admin().send(new ReplicateKeyCommand({ KeyId: single.KeyId, ReplicaRegion: 'eu-west-1' })))).toEqual({ name: 'UnsupportedOperationException', message: `${single.Arn} is not a multi-Region key.` });
    const primary = (await admin().send(new CreateKeyCommand({ MultiRegion: true }))).KeyMetadata!;
    expect((await errorOf(admin().send(new ReplicateKeyCommand({ KeyId: primary.KeyId, ReplicaRegion: 'us-east-1' })))).name).toBe('ValidationException');
    expect(await errorOf(role().send(new ReplicateKeyCommand({ KeyId: primary.KeyId, ReplicaRegion: 'eu-west-1' })))).toEqual({
      name: 'AccessDeniedException',
      message: `User: ${sim.principal('EnclaveInstanceRole').arn} is not authorized to perform: kms:ReplicateKey on resource: ${primary.Arn} because no identity-based policy allows the kms:ReplicateKey action`,
    });
    const lockedOut = policyOf({ Sid: 'only decrypt', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: 'kms:Decrypt', Resource: '*' });
    expect(await errorOf(admin().send(new ReplicateKeyCommand({ KeyId: primary.KeyId, ReplicaRegion: 'eu-west-1', Policy: lockedOut })))).toEqual({
      name: 'MalformedPolicyDocumentException',
      message: 'The new key policy will not allow you to update the key policy in the future.',
    });
    await admin().send(new ReplicateKeyCommand({ KeyId: primary.KeyId, ReplicaRegion: 'eu-west-1' }));
    expect(await errorOf(admin('eu-west-1').send(new ReplicateKeyCommand({ KeyId: primary.KeyId, ReplicaRegion: 'us-east-1' })))).toEqual({
      name: 'UnsupportedOperationException',
      message: `arn:aws:kms:eu-west-1:${account}:key/${primary.KeyId} is not a multi-Region primary key.`,
    });
  });

  it('UpdatePrimaryRegion swaps the roles; a primary with replicas waits in PendingReplicaDeletion', async () => {
    const primary = (await admin().send(new CreateKeyCommand({ MultiRegion: true }))).KeyMetadata!;
    await admin().send(new ReplicateKeyCommand({ KeyId: primary.KeyId, ReplicaRegion: 'eu-west-1' }));
    await admin().send(new UpdatePrimaryRegionCommand({ KeyId: primary.KeyId, PrimaryRegion: 'eu-west-1' }));
    expect((await admin().send(new DescribeKeyCommand({ KeyId: primary.KeyId }))).KeyMetadata!.MultiRegionConfiguration!.MultiRegionKeyType).toBe('REPLICA');
    const eu = (await admin('eu-west-1').send(new DescribeKeyCommand({ KeyId: primary.KeyId }))).KeyMetadata!;
    expect(eu.MultiRegionConfiguration).toMatchObject({ MultiRegionKeyType: 'PRIMARY', PrimaryKey: { Region: 'eu-west-1' }, ReplicaKeys: [{ Region: 'us-east-1' }] });
    expect((await errorOf(admin().send(new UpdatePrimaryRegionCommand({ KeyId: primary.KeyId, PrimaryRegion: 'eu-west-1' })))).name).toBe('UnsupportedOperationException');
    const scheduled = await admin('eu-west-1').send(new ScheduleKeyDeletionCommand({ KeyId: primary.KeyId, PendingWindowInDays: 7 }));
    expect(scheduled).toMatchObject({ KeyState: 'PendingReplicaDeletion', PendingWindowInDays: 7 });
    expect(scheduled.DeletionDate).toBeUndefined();
    await admin('eu-west-1').send(new CancelKeyDeletionCommand({ KeyId: primary.KeyId }));
    await admin('eu-west-1').send(new EnableKeyCommand({ KeyId: primary.KeyId }));
  });
});

/** Wraps 32 bytes of material as a key owner would for `algorithm`, with the SPKI GetParametersForImport returned. */
function wrap(material: Buffer, spki: Uint8Array, algorithm: AlgorithmSpec): Buffer {
  const publicKey = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  const oaepHash = algorithm.endsWith('SHA_1') ? 'sha1' : 'sha256';
  if (algorithm.startsWith('RSAES_OAEP')) return publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, material);
  const aesKey = randomBytes(32);
  const cipher = createCipheriv('id-aes256-wrap-pad', aesKey, Buffer.from('a65959a6', 'hex'));
  return Buffer.concat([publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, aesKey), cipher.update(material), cipher.final()]);
}

async function importInto(keyId: string, material: Buffer, algorithm: AlgorithmSpec = 'RSAES_OAEP_SHA_256', region?: string) {
  const params = await admin(region).send(new GetParametersForImportCommand({ KeyId: keyId, WrappingAlgorithm: algorithm, WrappingKeySpec: 'RSA_2048' }));
  return admin(region).send(
    new ImportKeyMaterialCommand({ KeyId: keyId, ImportToken: params.ImportToken, EncryptedKeyMaterial: wrap(material, params.PublicKey!, algorithm), ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE' }),
  );
}

describe('imported key material (Origin EXTERNAL)', () => {
  it('PendingImport until material is imported; the material is really the imported bytes: a blob still opens after delete + re-import', async () => {
    const key = (await admin().send(new CreateKeyCommand({ Origin: 'EXTERNAL' }))).KeyMetadata!;
    expect(key).toMatchObject({ Origin: 'EXTERNAL', KeyState: 'PendingImport', Enabled: false });
    expect(await errorOf(admin().send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.from('x') })))).toEqual({ name: 'KMSInvalidStateException', message: `${key.Arn} is pending import.` });
    const material = randomBytes(32);
    const imported = await importInto(key.KeyId!, material);
    expect(imported.KeyId).toBe(key.Arn);
    expect(imported.KeyMaterialId).toMatch(/^[0-9a-f]{64}$/);
    const event = sim.audit.filter((e) => e.eventName === 'ImportKeyMaterial').at(-1)!;
    expect(event.requestParameters).toEqual({ keyId: key.KeyId, expirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE' }); // no wrapped material, no import token
    expect(event.resources).toEqual([{ accountId: key.AWSAccountId, type: 'AWS::KMS::Key', ARN: key.Arn }]); // CloudTrail's resource entry
    const described = (await admin().send(new DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata!;
    expect(described).toMatchObject({ KeyState: 'Enabled', Origin: 'EXTERNAL', ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE', CurrentKeyMaterialId: imported.KeyMaterialId });
    const { CiphertextBlob } = await admin().send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.from('secret') }));
    const deleted = await admin().send(new DeleteImportedKeyMaterialCommand({ KeyId: key.KeyId }));
    expect(deleted).toMatchObject({ KeyId: key.Arn, KeyMaterialId: imported.KeyMaterialId });
    expect((await admin().send(new DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata!.KeyState).toBe('PendingImport');
    expect((await errorOf(admin().send(new DecryptCommand({ CiphertextBlob })))).name).toBe('KMSInvalidStateException');
    // Other material is refused; the same material (by another wrapping algorithm) brings the blob back.
    expect(await errorOf(importInto(key.KeyId!, randomBytes(32)))).toEqual({
      name: 'IncorrectKeyMaterialException',
      message: 'The key material is not the same as the key material previously imported into this key.',
    });
    await importInto(key.KeyId!, material, 'RSA_AES_KEY_WRAP_SHA_256');
    expect(Buffer.from((await admin().send(new DecryptCommand({ CiphertextBlob }))).Plaintext!).toString()).toBe('secret');
  });

  it('every wrapping algorithm KMS lists for symmetric keys unwraps; RSAES_PKCS1_V1_5 and SM2 are refused', async () => {
    for (const algorithm of ['RSAES_OAEP_SHA_1', 'RSAES_OAEP_SHA_256', 'RSA_AES_KEY_WRAP_SHA_1', 'RSA_AES_KEY_WRAP_SHA_256'] as AlgorithmSpec[]) {
      const key = (await admin().send(new CreateKeyCommand({ Origin: 'EXTERNAL' }))).KeyMetadata!;
      expect((await importInto(key.KeyId!, randomBytes(32), algorithm)).KeyId, algorithm).toBe(key.Arn);
    }
    const key = (await admin().send(new CreateKeyCommand({ Origin: 'EXTERNAL' }))).KeyMetadata!;
    expect(await errorOf(admin().send(new GetParametersForImportCommand({ KeyId: key.KeyId, WrappingAlgorithm: 'RSAES_PKCS1_V1_5', WrappingKeySpec: 'RSA_2048' })))).toEqual({
      name: 'ValidationException',
      message: 'The RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported.',
    });
    expect((await errorOf(admin().send(new GetParametersForImportCommand({ KeyId: key.KeyId, WrappingAlgorithm: 'SM2PKE', WrappingKeySpec: 'SM2' })))).name).toBe('ValidationException');
  });

  it('import tokens: bound to their key, expire after 24 hours; wrong wrapping is InvalidCiphertextException; ValidTo rules', async () => {
    const key = (await admin().send(new CreateKeyCommand({ Origin: 'EXTERNAL' }))).KeyMetadata!;
    const other = (await admin().send(new CreateKeyCommand({ Origin: 'EXTERNAL' }))).KeyMetadata!;
    const params = await admin().send(new GetParametersForImportCommand({ KeyId: key.KeyId, WrappingAlgorithm: 'RSAES_OAEP_SHA_256', WrappingKeySpec: 'RSA_2048' }));
    expect(params.ParametersValidTo!.getTime() - Date.now() - offsetMs).toBeGreaterThan(23 * 3600_000);
    const material = randomBytes(32);
    const good = wrap(material, params.PublicKey!, 'RSAES_OAEP_SHA_256');
    const send = (KeyId: string, EncryptedKeyMaterial: Uint8Array, extra: object = { ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE' }) =>
      admin().send(new ImportKeyMaterialCommand({ KeyId, ImportToken: params.ImportToken, EncryptedKeyMaterial, ...extra }));
    expect(await errorOf(send(other.KeyId!, good))).toEqual({ name: 'InvalidImportTokenException', message: 'The import token is invalid for the specified key.' });
    expect((await errorOf(send(key.KeyId!, wrap(material, params.PublicKey!, 'RSAES_OAEP_SHA_1')))).name).toBe('InvalidCiphertextException');
    expect(await errorOf(send(key.KeyId!, good, {}))).toEqual({ name: 'ValidationException', message: 'A ValidTo date is required when ExpirationModel is KEY_MATERIAL_EXPIRES.' });
    expect((await errorOf(send(key.KeyId!, good, { ValidTo: new Date(Date.now() + 400 * 86_400_000) }))).name).toBe('ValidationException');
    offsetMs += 25 * 3600_000;
    try {
      expect(await errorOf(send(key.KeyId!, good))).toEqual({ name: 'ExpiredImportTokenException', message: 'The import token has expired.' });
    } finally {
      offsetMs -= 25 * 3600_000;
    }
    // Material that expires: at ValidTo KMS deletes it and the key is PendingImport again.
    await send(key.KeyId!, good, { ValidTo: new Date(Date.now() + offsetMs + 3600_000) });
    expect((await admin().send(new DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata!).toMatchObject({ KeyState: 'Enabled', ExpirationModel: 'KEY_MATERIAL_EXPIRES', ValidTo: expect.any(Date) });
    offsetMs += 2 * 3600_000;
    try {
      expect((await admin().send(new DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata!.KeyState).toBe('PendingImport');
    } finally {
      offsetMs -= 2 * 3600_000;
    }
  });

  it('only EXTERNAL keys take material; a replica of an EXTERNAL multi-Region key starts without material and takes only the same material', async () => {
    const generated = (await admin().send(new CreateKeyCommand({}))).KeyMetadata!;
    expect(await errorOf(admin().send(new GetParametersForImportCommand({ KeyId: generated.KeyId, WrappingAlgorithm: 'RSAES_OAEP_SHA_256', WrappingKeySpec: 'RSA_2048' })))).toEqual({
      name: 'UnsupportedOperationException',
      message: `${generated.Arn} origin is AWS_KMS which is not valid for this operation.`,
    });
    const mrk = (await admin().send(new CreateKeyCommand({ Origin: 'EXTERNAL', MultiRegion: true }))).KeyMetadata!;
    const material = randomBytes(32);
    await importInto(mrk.KeyId!, material);
    const { CiphertextBlob } = await admin().send(new EncryptCommand({ KeyId: mrk.KeyId, Plaintext: Buffer.from('mrk') }));
    const replica = await admin().send(new ReplicateKeyCommand({ KeyId: mrk.KeyId, ReplicaRegion: 'eu-west-1' }));
    expect(replica.ReplicaKeyMetadata).toMatchObject({ Origin: 'EXTERNAL', KeyState: 'PendingImport' });
    expect((await errorOf(importInto(mrk.KeyId!, randomBytes(32), 'RSAES_OAEP_SHA_256', 'eu-west-1'))).name).toBe('IncorrectKeyMaterialException');
    await importInto(mrk.KeyId!, material, 'RSAES_OAEP_SHA_256', 'eu-west-1');
    expect(Buffer.from((await admin('eu-west-1').send(new DecryptCommand({ CiphertextBlob }))).Plaintext!).toString()).toBe('mrk');
  });
});

describe('state file', () => {
  it('keeps Regions, replicas (sharing material), grants and imported material across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nes-kms-state-'));
    const stateFile = join(dir, 'kms.json');
    try {
      const first = await startKmsSimulator({ regions: ['eu-west-1'], stateFile });
      const c = (s: KmsSimulator, suffix: string, region?: string) => new KMSClient(kmsClientConfig(s, s.principal(suffix), undefined, region));
      const mrk = (await c(first, 'user/admin').send(new CreateKeyCommand({ MultiRegion: true }))).KeyMetadata!;
      await c(first, 'user/admin').send(new ReplicateKeyCommand({ KeyId: mrk.KeyId, ReplicaRegion: 'eu-west-1' }));
      const mrkBlob = (await c(first, 'user/admin').send(new EncryptCommand({ KeyId: mrk.KeyId, Plaintext: Buffer.from('mrk') }))).CiphertextBlob;
      const grant = await c(first, 'user/admin').send(
        new CreateGrantCommand({ KeyId: mrk.KeyId, GranteePrincipal: `arn:aws:iam::${first.accountId}:role/EnclaveInstanceRole`, Operations: ['Decrypt'] }),
      );
      const ext = (await c(first, 'user/admin').send(new CreateKeyCommand({ Origin: 'EXTERNAL' }))).KeyMetadata!;
      const params = await c(first, 'user/admin').send(new GetParametersForImportCommand({ KeyId: ext.KeyId, WrappingAlgorithm: 'RSAES_OAEP_SHA_256', WrappingKeySpec: 'RSA_2048' }));
      const material = randomBytes(32);
      await c(first, 'user/admin').send(
        new ImportKeyMaterialCommand({ KeyId: ext.KeyId, ImportToken: params.ImportToken, EncryptedKeyMaterial: wrap(material, params.PublicKey!, 'RSAES_OAEP_SHA_256'), ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE' }),
      );
      const extBlob = (await c(first, 'user/admin').send(new EncryptCommand({ KeyId: ext.KeyId, Plaintext: Buffer.from('ext') }))).CiphertextBlob;
      await first.close();

      const second = await startKmsSimulator({ regions: ['eu-west-1'], stateFile });
      try {
        expect(Buffer.from((await c(second, 'user/admin', 'eu-west-1').send(new DecryptCommand({ CiphertextBlob: mrkBlob }))).Plaintext!).toString()).toBe('mrk');
        expect((await c(second, 'EnclaveInstanceRole').send(new DecryptCommand({ CiphertextBlob: mrkBlob, GrantTokens: [grant.GrantToken!] }))).Plaintext).toBeDefined();
        expect(Buffer.from((await c(second, 'user/admin').send(new DecryptCommand({ CiphertextBlob: extBlob }))).Plaintext!).toString()).toBe('ext');
        const described = (await c(second, 'user/admin', 'eu-west-1').send(new DescribeKeyCommand({ KeyId: mrk.KeyId }))).KeyMetadata!;
        expect(described.MultiRegionConfiguration).toMatchObject({ MultiRegionKeyType: 'REPLICA', PrimaryKey: { Arn: mrk.Arn } });
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
