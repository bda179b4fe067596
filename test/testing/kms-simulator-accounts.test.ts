import {
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  GetKeyPolicyCommand,
  ListAliasesCommand,
  ListKeysCommand,
  PutKeyPolicyCommand,
  type KMSClient,
} from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKmsSimulator, type KmsSimulator } from '../../src/testing/index.js';
import { client, errorOf } from '../helpers/kms.js';

const HOME = '111122223333';
const PARENT = '444455556666'; // the parent's own account, in hostile-parent stories

let sim: KmsSimulator;
let homeAdmin: KMSClient;
let parentAdmin: KMSClient;
let parentOther: KMSClient;

beforeAll(async () => {
  sim = await startKmsSimulator({ accounts: [HOME, PARENT] });
  homeAdmin = client(sim, sim.principal('user/admin'));
  parentAdmin = client(sim, sim.principal('user/admin', PARENT));
  parentOther = client(sim, sim.principal('user/other', PARENT));
});
afterAll(() => sim.close());

const crossAccountPolicy = (owner: string, guest: string) =>
  JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${owner}:root` }, Action: 'kms:*', Resource: '*' },
      { Sid: 'Guest account', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${guest}:root` }, Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:DescribeKey', 'kms:GetKeyPolicy'], Resource: '*' },
    ],
  });

describe('one simulator, several AWS accounts', () => {
  it('serves both accounts with their own principals, and creates keys in the caller’s account', async () => {
    expect(sim.accounts).toEqual([HOME, PARENT]);
    expect(sim.principal('user/admin', PARENT).arn).toBe(`arn:aws:iam::${PARENT}:user/admin`);
    expect(sim.principal('user/admin').accessKeyId).not.toBe(sim.principal('user/admin', PARENT).accessKeyId);
    const home = (await homeAdmin.send(new CreateKeyCommand({}))).KeyMetadata!;
    const parent = (await parentAdmin.send(new CreateKeyCommand({}))).KeyMetadata!;
    expect(home).toMatchObject({ AWSAccountId: HOME, Arn: `arn:aws:kms:us-east-1:${HOME}:key/${home.KeyId}` });
    expect(parent).toMatchObject({ AWSAccountId: PARENT, Arn: `arn:aws:kms:us-east-1:${PARENT}:key/${parent.KeyId}` });
    const listed = (await parentAdmin.send(new ListKeysCommand({}))).Keys!.map((k) => k.KeyId);
    expect(listed).toContain(parent.KeyId);
    expect(listed).not.toContain(home.KeyId);
  });

  it('keeps one alias namespace per account: a bare alias resolves in the caller’s own account only', async () => {
    const home = (await homeAdmin.send(new CreateKeyCommand({}))).KeyMetadata!;
    const parent = (await parentAdmin.send(new CreateKeyCommand({}))).KeyMetadata!;
    await homeAdmin.send(new CreateAliasCommand({ AliasName: 'alias/confidential-workflow-tsk', TargetKeyId: home.KeyId }));
    await parentAdmin.send(new CreateAliasCommand({ AliasName: 'alias/confidential-workflow-tsk', TargetKeyId: parent.KeyId }));
    expect((await homeAdmin.send(new DescribeKeyCommand({ KeyId: 'alias/confidential-workflow-tsk' }))).KeyMetadata!.Arn).toBe(home.Arn);
    expect((await parentAdmin.send(new DescribeKeyCommand({ KeyId: 'alias/confidential-workflow-tsk' }))).KeyMetadata!.Arn).toBe(parent.Arn);
    const aliases = (await parentAdmin.send(new ListAliasesCommand({}))).Aliases!;
    expect(aliases.map((a) => a.AliasArn)).toEqual([`arn:aws:kms:us-east-1:${PARENT}:alias/confidential-workflow-tsk`]);
    // A bare key id names a key of the caller's account only.
    expect(await errorOf(parentAdmin.send(new DescribeKeyCommand({ KeyId: home.KeyId })))).toEqual({
      name: 'NotFoundException',
      message: `Key 'arn:aws:kms:us-east-1:${PARENT}:key/${home.KeyId}' does not exist`,
    });
  });

  it('routes a key or alias ARN to its account, and refuses another account’s key unless its key policy allows', async () => {
    const home = (await homeAdmin.send(new CreateKeyCommand({}))).KeyMetadata!;
    await homeAdmin.send(new CreateAliasCommand({ AliasName: 'alias/routed', TargetKeyId: home.KeyId }));
    const aliasArn = `arn:aws:kms:us-east-1:${HOME}:alias/routed`;
    // The default key policy trusts only the owner account.
    for (const id of [home.Arn!, aliasArn]) {
      expect(await errorOf(parentAdmin.send(new DescribeKeyCommand({ KeyId: id })))).toEqual({
        name: 'AccessDeniedException',
        message: `User: arn:aws:iam::${PARENT}:user/admin is not authorized to perform: kms:DescribeKey on resource: ${home.Arn} because no resource-based policy allows the kms:DescribeKey action`,
      });
    }
    await homeAdmin.send(new PutKeyPolicyCommand({ KeyId: home.KeyId, Policy: crossAccountPolicy(HOME, PARENT) }));
    for (const id of [home.Arn!, aliasArn]) expect((await parentAdmin.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata!.AWSAccountId).toBe(HOME);
    const { CiphertextBlob } = await parentAdmin.send(new EncryptCommand({ KeyId: home.Arn, Plaintext: Buffer.from('shared') }));
    expect(Buffer.from((await homeAdmin.send(new DecryptCommand({ CiphertextBlob }))).Plaintext!).toString()).toBe('shared');
    expect(Buffer.from((await parentAdmin.send(new DecryptCommand({ CiphertextBlob }))).Plaintext!).toString()).toBe('shared');
  });

  it('needs the caller’s own IAM policy too for a key of another account', async () => {
    const home = (await homeAdmin.send(new CreateKeyCommand({ Policy: crossAccountPolicy(HOME, PARENT) }))).KeyMetadata!;
    const { CiphertextBlob } = await homeAdmin.send(new EncryptCommand({ KeyId: home.KeyId, Plaintext: Buffer.from('x') }));
    expect(await errorOf(parentOther.send(new DecryptCommand({ CiphertextBlob })))).toEqual({
      name: 'AccessDeniedException',
      message: `User: arn:aws:iam::${PARENT}:user/other is not authorized to perform: kms:Decrypt on resource: ${home.Arn} because no identity-based policy allows the kms:Decrypt action`,
    });
    // Naming the guest user directly in the key policy is not enough across accounts either.
    const direct = JSON.parse(crossAccountPolicy(HOME, PARENT));
    direct.Statement[1].Principal.AWS = `arn:aws:iam::${PARENT}:user/other`;
    await homeAdmin.send(new PutKeyPolicyCommand({ KeyId: home.KeyId, Policy: JSON.stringify(direct) }));
    expect((await errorOf(parentOther.send(new DecryptCommand({ CiphertextBlob })))).message).toMatch(/because no identity-based policy allows the kms:Decrypt action$/);
  });

  it('does not let another account manage a key, even when the key policy allows it (no cross-account use)', async () => {
    const home = (await homeAdmin.send(new CreateKeyCommand({ Policy: crossAccountPolicy(HOME, PARENT) }))).KeyMetadata!;
    expect(await errorOf(parentAdmin.send(new GetKeyPolicyCommand({ KeyId: home.Arn, PolicyName: 'default' })))).toEqual({
      name: 'NotFoundException',
      message: `Key '${home.Arn}' does not exist`,
    });
    expect((await errorOf(parentAdmin.send(new CreateAliasCommand({ AliasName: 'alias/stolen', TargetKeyId: home.Arn }))))).toMatchObject({ name: 'NotFoundException' });
  });

  it('never resolves an ARN of another region or of an unknown account to a local key', async () => {
    const home = (await homeAdmin.send(new CreateKeyCommand({}))).KeyMetadata!;
    await homeAdmin.send(new CreateAliasCommand({ AliasName: 'alias/regional', TargetKeyId: home.KeyId }));
    const elsewhere = [home.Arn!.replace('us-east-1', 'eu-west-1'), `arn:aws:kms:eu-west-1:${HOME}:alias/regional`, home.Arn!.replace(HOME, '999988887777')];
    for (const id of elsewhere) {
      expect(await errorOf(homeAdmin.send(new DescribeKeyCommand({ KeyId: id })))).toMatchObject({ name: 'NotFoundException', message: expect.stringContaining('does not exist') });
      expect(await errorOf(homeAdmin.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('x') })))).toMatchObject({ name: 'NotFoundException' });
    }
  });
});
