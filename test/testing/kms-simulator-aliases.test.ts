/** UpdateAlias and DeleteAlias as KMS answers them. */
import { CreateAliasCommand, CreateKeyCommand, DeleteAliasCommand, DescribeKeyCommand, KMSClient, ListAliasesCommand, PutKeyPolicyCommand, UpdateAliasCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kmsClientConfig, startKmsSimulator, type KmsSimulator } from '../../src/testing/index.js';
import { client, errorOf } from '../helpers/kms.js';

const OTHER = '444455556666';
let sim: KmsSimulator;
let admin: KMSClient;
let foreign: KMSClient;
let account: string;

beforeAll(async () => {
  sim = await startKmsSimulator({ accounts: ['111122223333', OTHER], regions: ['eu-west-1'] });
  account = sim.accountId;
  admin = client(sim, sim.principal('user/admin'));
  foreign = client(sim, sim.principal('user/admin', OTHER));
});
afterAll(() => sim.close());

const newKey = async (input: ConstructorParameters<typeof CreateKeyCommand>[0] = {}, who = admin) => (await who.send(new CreateKeyCommand(input))).KeyMetadata!;

describe('UpdateAlias', () => {
  it('re-points an existing alias to another key of the same type and usage', async () => {
    const [a, b] = [await newKey(), await newKey()];
    await admin.send(new CreateAliasCommand({ AliasName: 'alias/moving', TargetKeyId: a.KeyId }));
    await admin.send(new UpdateAliasCommand({ AliasName: 'alias/moving', TargetKeyId: b.Arn }));
    expect((await admin.send(new DescribeKeyCommand({ KeyId: 'alias/moving' }))).KeyMetadata!.KeyId).toBe(b.KeyId);
    expect((await admin.send(new ListAliasesCommand({ KeyId: b.KeyId }))).Aliases!.map((x) => x.AliasName)).toEqual(['alias/moving']);
  });

  it('refuses what KMS refuses: no such alias, another key type or usage, an alias as target, another account', async () => {
    const sym = await newKey();
    const ecdh = await newKey({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'KEY_AGREEMENT' });
    expect(await errorOf(admin.send(new UpdateAliasCommand({ AliasName: 'alias/none', TargetKeyId: sym.KeyId })))).toEqual({
      name: 'NotFoundException',
      message: `Alias arn:aws:kms:us-east-1:${account}:alias/none is not found.`,
    });
    await admin.send(new CreateAliasCommand({ AliasName: 'alias/typed', TargetKeyId: sym.KeyId }));
    expect((await errorOf(admin.send(new UpdateAliasCommand({ AliasName: 'alias/typed', TargetKeyId: ecdh.KeyId })))).name).toBe('ValidationException');
    expect(await errorOf(admin.send(new UpdateAliasCommand({ AliasName: 'alias/typed', TargetKeyId: 'alias/typed' })))).toEqual({ name: 'NotFoundException', message: 'Invalid keyId alias/typed' });
    const theirs = await newKey({}, foreign);
    expect(await errorOf(admin.send(new UpdateAliasCommand({ AliasName: 'alias/typed', TargetKeyId: theirs.Arn })))).toEqual({ name: 'NotFoundException', message: `Key '${theirs.Arn}' does not exist` });
    // An alias of the same name in another Region is another alias.
    const eu = new KMSClient(kmsClientConfig(sim, sim.principal('user/admin'), undefined, 'eu-west-1'));
    expect(await errorOf(eu.send(new DeleteAliasCommand({ AliasName: 'alias/typed' })))).toEqual({ name: 'NotFoundException', message: `Alias arn:aws:kms:eu-west-1:${account}:alias/typed is not found.` });
    expect((await admin.send(new DescribeKeyCommand({ KeyId: 'alias/typed' }))).KeyMetadata!.KeyId).toBe(sym.KeyId);
  });

  it('needs kms:UpdateAlias on the key the alias leaves and on the key it joins (key policies)', async () => {
    const [a, b] = [await newKey(), await newKey()];
    await admin.send(new CreateAliasCommand({ AliasName: 'alias/guarded', TargetKeyId: a.KeyId }));
    const admin1 = sim.principal('user/admin').arn;
    const locked = JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        { Sid: 'root', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: 'kms:*', Resource: '*' },
        { Sid: 'no alias moves', Effect: 'Deny', Principal: { AWS: '*' }, Action: 'kms:UpdateAlias', Resource: '*' },
      ],
    });
    await admin.send(new PutKeyPolicyCommand({ KeyId: b.KeyId, Policy: locked }));
    expect(await errorOf(admin.send(new UpdateAliasCommand({ AliasName: 'alias/guarded', TargetKeyId: b.KeyId })))).toEqual({
      name: 'AccessDeniedException',
      message: `User: ${admin1} is not authorized to perform: kms:UpdateAlias on resource: ${b.Arn} with an explicit deny in a resource-based policy`,
    });
    await admin.send(new PutKeyPolicyCommand({ KeyId: a.KeyId, Policy: locked }));
    const c = await newKey();
    expect((await errorOf(admin.send(new UpdateAliasCommand({ AliasName: 'alias/guarded', TargetKeyId: c.KeyId })))).message).toContain(`kms:UpdateAlias on resource: ${a.Arn} with an explicit deny`);
  });
});

describe('DeleteAlias', () => {
  it('deletes an existing alias (then it no longer resolves); a missing one is NotFoundException; needs kms:DeleteAlias', async () => {
    const key = await newKey();
    await admin.send(new CreateAliasCommand({ AliasName: 'alias/gone', TargetKeyId: key.KeyId }));
    const other = client(sim, sim.principal('user/other'));
    expect((await errorOf(other.send(new DeleteAliasCommand({ AliasName: 'alias/gone' })))).name).toBe('AccessDeniedException');
    await admin.send(new DeleteAliasCommand({ AliasName: 'alias/gone' }));
    expect(await errorOf(admin.send(new DescribeKeyCommand({ KeyId: 'alias/gone' })))).toEqual({ name: 'NotFoundException', message: `Alias 'arn:aws:kms:us-east-1:${account}:alias/gone' does not exist` });
    expect(await errorOf(admin.send(new DeleteAliasCommand({ AliasName: 'alias/gone' })))).toEqual({ name: 'NotFoundException', message: `Alias arn:aws:kms:us-east-1:${account}:alias/gone is not found.` });
    expect((await admin.send(new DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata!.KeyState).toBe('Enabled');
  });
});
