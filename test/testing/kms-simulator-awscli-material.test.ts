/**
 * Grants, multi-Region keys, imported material and alias changes driven by
 * the AWS CLI (botocore signs and serializes independently of our code)
 * against the simulator; OpenSSL wraps the imported material, as KMS's
 * documentation does it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKmsSimulator, type KmsSimulator } from '../../src/testing/index.js';
import { awsAvailable, awsKms, cliError } from '../helpers/aws-cli.js';

const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'nes-awscli-material-'));
let sim: KmsSimulator;
let aws: ReturnType<typeof awsKms>;

beforeAll(async () => {
  sim = await startKmsSimulator({ regions: ['eu-west-1'] });
  aws = awsKms(sim, tmp);
});
afterAll(async () => {
  await sim?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const admin = () => sim.principal('user/admin');
const role = () => sim.principal('EnclaveInstanceRole');
const other = () => sim.principal('user/other');
const json = (r: { code: number; stdout: string; stderr: string }) => {
  if (r.code !== 0) throw new Error(`aws failed (${r.code}): ${r.stderr}`);
  return r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, any>) : {};
};
/** A plaintext file for `--plaintext fileb://…` (AWS CLI v1 would base64-encode a literal argument once more). */
const plaintextFile = (text: string) => {
  writeFileSync(join(tmp, 'plain.txt'), text);
  return 'fileb://plain.txt';
};
const createKey = async (...args: string[]) => json(await aws(admin(), ['create-key', ...args])).KeyMetadata as Record<string, any>;

describe.skipIf(!awsAvailable)('with the AWS CLI', { timeout: 240_000 }, () => {
  it('create-grant, list-grants, retire-grant, revoke-grant; a grant token works at once', async () => {
    const { KeyId, Arn } = await createKey();
    const roleArn = `arn:aws:iam::${sim.accountId}:role/EnclaveInstanceRole`;
    const grant = json(await aws(admin(), ['create-grant', '--key-id', KeyId, '--grantee-principal', roleArn, '--retiring-principal', other().arn, '--operations', 'Encrypt', 'Decrypt', '--name', 'cli-grant']));
    expect(grant.GrantId).toMatch(/^[0-9a-f]{64}$/);
    const listed = json(await aws(admin(), ['list-grants', '--key-id', Arn]));
    expect(listed.Grants).toEqual([
      expect.objectContaining({ KeyId: Arn, GrantId: grant.GrantId, Name: 'cli-grant', GranteePrincipal: roleArn, RetiringPrincipal: other().arn, IssuingAccount: `arn:aws:iam::${sim.accountId}:root`, Operations: ['Encrypt', 'Decrypt'] }),
    ]);
    const encrypted = await aws(role(), ['encrypt', '--key-id', Arn, '--plaintext', plaintextFile('hello'), `--grant-tokens=${grant.GrantToken}`]);
    expect(json(encrypted).KeyId).toBe(Arn);
    expect(cliError(await aws(role(), ['encrypt', '--key-id', Arn, '--plaintext', plaintextFile('hello')]))).toEqual({
      code: 'AccessDeniedException',
      operation: 'Encrypt',
      message: `User: ${role().arn} is not authorized to perform: kms:Encrypt on resource: ${Arn} because no identity-based policy allows the kms:Encrypt action`,
    });
    expect(cliError(await aws(role(), ['retire-grant', `--grant-token=${grant.GrantToken}`])).code).toBe('AccessDeniedException');
    expect((await aws(other(), ['retire-grant', `--grant-token=${grant.GrantToken}`])).code).toBe(0);
    expect(json(await aws(admin(), ['list-grants', '--key-id', KeyId])).Grants).toEqual([]);
    const second = json(await aws(admin(), ['create-grant', '--key-id', KeyId, '--grantee-principal', roleArn, '--operations', 'Decrypt']));
    // No --dry-run here: Debian bookworm's AWS CLI (2.9.19, what .ci/run installs) predates RevokeGrant's DryRun;
    // the simulator's DryRun on RevokeGrant is checked against the SDK's model in kms-simulator-model.test.ts.
    expect((await aws(admin(), ['revoke-grant', '--key-id', KeyId, '--grant-id', second.GrantId])).code).toBe(0);
    expect(cliError(await aws(role(), ['decrypt', '--ciphertext-blob', `fileb://${writeBlob('g.bin', json(encrypted).CiphertextBlob)}`, `--grant-tokens=${second.GrantToken}`])).code).toBe('InvalidGrantTokenException');
  });

  it('create-key --multi-region, replicate-key with its own policy, decrypt in the replica Region, update-primary-region', async () => {
    const primary = await createKey('--multi-region');
    expect(primary.KeyId).toMatch(/^mrk-/);
    const blob = json(await aws(admin(), ['encrypt', '--key-id', primary.KeyId, '--plaintext', plaintextFile('secret')]));
    writeFileSync(join(tmp, 'replica-policy.json'), JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        { Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${sim.accountId}:root` }, Action: 'kms:*', Resource: '*' },
        { Sid: 'Role', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${sim.accountId}:role/EnclaveInstanceRole` }, Action: 'kms:Decrypt', Resource: '*' },
      ],
    }));
    const replica = json(await aws(admin(), ['replicate-key', '--key-id', primary.Arn, '--replica-region', 'eu-west-1', '--policy', 'file://replica-policy.json']));
    expect(replica.ReplicaKeyMetadata).toMatchObject({ Arn: `arn:aws:kms:eu-west-1:${sim.accountId}:key/${primary.KeyId}`, MultiRegion: true });
    const file = writeBlob('mrk.bin', blob.CiphertextBlob);
    expect(cliError(await aws(role(), ['decrypt', '--ciphertext-blob', `fileb://${file}`])).code).toBe('AccessDeniedException');
    const opened = json(await aws(role(), ['decrypt', '--ciphertext-blob', `fileb://${file}`], 'eu-west-1'));
    expect(Buffer.from(opened.Plaintext, 'base64').toString()).toBe('secret');
    expect((await aws(admin(), ['update-primary-region', '--key-id', primary.KeyId, '--primary-region', 'eu-west-1'])).code).toBe(0);
    const described = json(await aws(admin(), ['describe-key', '--key-id', primary.KeyId], 'eu-west-1')).KeyMetadata;
    expect(described.MultiRegionConfiguration).toMatchObject({ MultiRegionKeyType: 'PRIMARY', ReplicaKeys: [{ Region: 'us-east-1' }] });
  });

  it('get-parameters-for-import, material wrapped by openssl (RSAES_OAEP_SHA_256), import-key-material; delete + re-import of the same bytes opens old blobs', async () => {
    const key = await createKey('--origin', 'EXTERNAL');
    expect(key).toMatchObject({ Origin: 'EXTERNAL', KeyState: 'PendingImport' });
    await run('openssl', ['rand', '-out', join(tmp, 'material.bin'), '32']);
    const importMaterial = async () => {
      const params = json(await aws(admin(), ['get-parameters-for-import', '--key-id', key.KeyId, '--wrapping-algorithm', 'RSAES_OAEP_SHA_256', '--wrapping-key-spec', 'RSA_2048']));
      writeBlob('wrapping-key.der', params.PublicKey);
      writeBlob('import-token.bin', params.ImportToken);
      await run('openssl', ['pkeyutl', '-encrypt', '-pubin', '-keyform', 'DER', '-inkey', join(tmp, 'wrapping-key.der'), '-in', join(tmp, 'material.bin'), '-out', join(tmp, 'wrapped.bin'),
        '-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', 'rsa_oaep_md:sha256', '-pkeyopt', 'rsa_mgf1_md:sha256']);
      return aws(admin(), ['import-key-material', '--key-id', key.KeyId, '--import-token', 'fileb://import-token.bin', '--encrypted-key-material', 'fileb://wrapped.bin', '--expiration-model', 'KEY_MATERIAL_DOES_NOT_EXPIRE']);
    };
    expect((await importMaterial()).code).toBe(0);
    const blob = writeBlob('ext.bin', json(await aws(admin(), ['encrypt', '--key-id', key.KeyId, '--plaintext', plaintextFile('imported')])).CiphertextBlob);
    expect((await aws(admin(), ['delete-imported-key-material', '--key-id', key.KeyId])).code).toBe(0);
    expect(cliError(await aws(admin(), ['decrypt', '--ciphertext-blob', `fileb://${blob}`]))).toEqual({ code: 'KMSInvalidStateException', operation: 'Decrypt', message: `${key.Arn} is pending import.` });
    expect((await importMaterial()).code).toBe(0);
    expect(Buffer.from(json(await aws(admin(), ['decrypt', '--ciphertext-blob', `fileb://${blob}`])).Plaintext, 'base64').toString()).toBe('imported');
    // The same import token does not work twice (it was consumed), nor for another key.
    expect(cliError(await aws(admin(), ['import-key-material', '--key-id', key.KeyId, '--import-token', 'fileb://import-token.bin', '--encrypted-key-material', 'fileb://wrapped.bin', '--expiration-model', 'KEY_MATERIAL_DOES_NOT_EXPIRE'])).code).toBe('KMSInvalidStateException');
  });

  it('update-alias and delete-alias as KMS answers them', async () => {
    const [a, b] = [await createKey(), await createKey()];
    expect((await aws(admin(), ['create-alias', '--alias-name', 'alias/cli-moving', '--target-key-id', a.KeyId])).code).toBe(0);
    expect((await aws(admin(), ['update-alias', '--alias-name', 'alias/cli-moving', '--target-key-id', b.KeyId])).code).toBe(0);
    expect(json(await aws(admin(), ['describe-key', '--key-id', 'alias/cli-moving'])).KeyMetadata.KeyId).toBe(b.KeyId);
    expect(cliError(await aws(admin(), ['update-alias', '--alias-name', 'alias/cli-none', '--target-key-id', b.KeyId]))).toEqual({
      code: 'NotFoundException',
      operation: 'UpdateAlias',
      message: `Alias arn:aws:kms:us-east-1:${sim.accountId}:alias/cli-none is not found.`,
    });
    expect((await aws(admin(), ['delete-alias', '--alias-name', 'alias/cli-moving'])).code).toBe(0);
    expect(cliError(await aws(admin(), ['delete-alias', '--alias-name', 'alias/cli-moving']))).toEqual({
      code: 'NotFoundException',
      operation: 'DeleteAlias',
      message: `Alias arn:aws:kms:us-east-1:${sim.accountId}:alias/cli-moving is not found.`,
    });
  });
});

/** Writes a base64 blob the CLI printed into the working directory, as bytes for `fileb://`. */
function writeBlob(name: string, base64: string): string {
  writeFileSync(join(tmp, name), Buffer.from(base64, 'base64'));
  expect(readFileSync(join(tmp, name)).length).toBeGreaterThan(0);
  return name;
}
