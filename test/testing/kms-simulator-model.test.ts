/**
 * The simulator against the KMS API model that `@aws-sdk/client-kms` ships:
 * every operation whose input has `DryRun` answers DryRunOperationException
 * when the call would succeed and the real error otherwise, and every
 * operation whose input has `GrantTokens` reads them. The lists come from the
 * model, so a new SDK's operation or member fails here until the simulator
 * serves it or the gap is written down.
 */
import { generateKeyPairSync } from 'node:crypto';
import * as sdk from '@aws-sdk/client-kms';
import { CreateGrantCommand, CreateKeyCommand, GenerateDataKeyWithoutPlaintextCommand, KMSClient, ListGrantsCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATIONS } from '../../src/testing/kms/operations.js';
import { startKmsSimulator, type KmsSimulator } from '../../src/testing/index.js';
import { client, errorOf } from '../helpers/kms.js';

type Schema = [number, string, string, unknown, string[], ...unknown[]];
const model = sdk as unknown as Record<string, unknown>;
/** Every operation of the model: each `XCommand` with its operation schema `X$` ([9, ns, name, traits, input, output]). */
const modelOperations = Object.keys(model)
  .filter((k) => k.endsWith('Command') && k !== '$Command' && Array.isArray(model[`${k.slice(0, -7)}$`]))
  .map((k) => k.slice(0, -7))
  .sort();
const inputMembers = (op: string): string[] => ((model[`${op}$`] as [number, string, string, unknown, () => Schema])[4]() as Schema)[4];
const withMember = (member: string) => modelOperations.filter((op) => inputMembers(op).includes(member));
const served = Object.keys(OPERATIONS).sort();

/** Operations of the model that take DryRun or GrantTokens and that the simulator does not serve: keys it cannot create (signing, HMAC, ML-KEM). */
const NOT_SERVED = ['Decapsulate', 'Encapsulate', 'GenerateMac', 'Sign', 'Verify', 'VerifyMac'];

let sim: KmsSimulator;
let admin: KMSClient;
let other: KMSClient;
let inputs: Record<string, Record<string, unknown>>;

beforeAll(async () => {
  sim = await startKmsSimulator();
  admin = client(sim, sim.principal('user/admin'));
  other = client(sim, sim.principal('user/other'));
  const key = (await admin.send(new CreateKeyCommand({}))).KeyMetadata!;
  const destination = (await admin.send(new CreateKeyCommand({}))).KeyMetadata!;
  const ka = (await admin.send(new CreateKeyCommand({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'KEY_AGREEMENT' }))).KeyMetadata!;
  const { CiphertextBlob } = await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: key.KeyId, KeySpec: 'AES_256' }));
  const adminArn = sim.principal('user/admin').arn;
  const roleArn = `arn:aws:iam::${sim.accountId}:role/EnclaveInstanceRole`;
  const grant = await admin.send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: roleArn, RetiringPrincipal: adminArn, Operations: ['Decrypt'] }));
  const peer = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
  inputs = {
    CreateGrant: { KeyId: key.KeyId, GranteePrincipal: roleArn, Operations: ['Encrypt'] },
    Decrypt: { CiphertextBlob },
    DeriveSharedSecret: { KeyId: ka.KeyId, KeyAgreementAlgorithm: 'ECDH', PublicKey: new Uint8Array(peer) },
    DescribeKey: { KeyId: key.KeyId },
    Encrypt: { KeyId: key.KeyId, Plaintext: new Uint8Array(16) },
    GenerateDataKey: { KeyId: key.KeyId, KeySpec: 'AES_256' },
    GenerateDataKeyPair: { KeyId: key.KeyId, KeyPairSpec: 'ECC_NIST_P256' },
    GenerateDataKeyPairWithoutPlaintext: { KeyId: key.KeyId, KeyPairSpec: 'ECC_NIST_P256' },
    GenerateDataKeyWithoutPlaintext: { KeyId: key.KeyId, KeySpec: 'AES_256' },
    GetPublicKey: { KeyId: ka.KeyId },
    ReEncrypt: { CiphertextBlob, DestinationKeyId: destination.KeyId },
    RetireGrant: { KeyId: key.Arn, GrantId: grant.GrantId },
    RevokeGrant: { KeyId: key.Arn, GrantId: grant.GrantId },
  };
  inputs.grantKey = { KeyId: key.KeyId! };
});
afterAll(() => sim.close());

const command = (op: string, input: Record<string, unknown>) => new (model[`${op}Command`] as new (i: unknown) => sdk.CreateKeyCommand)(input);

describe('the model', () => {
  it('every operation the simulator serves exists in the model', () => {
    expect(served.filter((op) => !modelOperations.includes(op))).toEqual([]);
    expect(modelOperations.length).toBeGreaterThan(50);
  });

  it('the DryRun and GrantTokens operations the simulator does not serve are exactly the documented gap', () => {
    const missing = [...new Set([...withMember('DryRun'), ...withMember('GrantTokens')])].filter((op) => !served.includes(op)).sort();
    expect(missing).toEqual(NOT_SERVED);
  });
});

describe('DryRun, on every served operation whose model input has it', () => {
  const ops = withMember('DryRun').filter((op) => !NOT_SERVED.includes(op));

  it.each(ops)('%s: DryRunOperationException when the call would succeed, nothing done', async (op) => {
    const grantsBefore = (await admin.send(new ListGrantsCommand({ KeyId: inputs.grantKey!.KeyId as string }))).Grants!.length;
    expect(inputs[op], `no test input for ${op}`).toBeDefined();
    expect(await errorOf(admin.send(command(op, { ...inputs[op], DryRun: true }) as never))).toEqual({
      name: 'DryRunOperationException',
      message: 'The request would have succeeded, but the DryRun option is set.',
    });
    expect((await admin.send(new ListGrantsCommand({ KeyId: inputs.grantKey!.KeyId as string }))).Grants!.length).toBe(grantsBefore);
  });

  it.each(ops)('%s: the real error when the call would fail', async (op) => {
    expect((await errorOf(other.send(command(op, { ...inputs[op], DryRun: true }) as never))).name).toBe('AccessDeniedException');
  });
});

describe('GrantTokens, on every served operation whose model input has them', () => {
  it.each(withMember('GrantTokens').filter((op) => !NOT_SERVED.includes(op)))('%s reads them (an unknown token is InvalidGrantTokenException)', async (op) => {
    expect(inputs[op], `no test input for ${op}`).toBeDefined();
    expect(await errorOf(admin.send(command(op, { ...inputs[op], GrantTokens: ['no-such-grant-token'] }) as never))).toEqual({ name: 'InvalidGrantTokenException', message: 'Grant token is invalid.' });
  });
});
