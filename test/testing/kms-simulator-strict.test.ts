import { generateKeyPairSync } from 'node:crypto';
import { request } from 'node:https';
import {
  CancelKeyDeletionCommand,
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DeriveSharedSecretCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateDataKeyPairCommand,
  GenerateDataKeyWithoutPlaintextCommand,
  GenerateRandomCommand,
  GetKeyPolicyCommand,
  KMSClient,
  ListAliasesCommand,
  ListKeyPoliciesCommand,
  ListKeysCommand,
  PutKeyPolicyCommand,
  ReEncryptCommand,
  ScheduleKeyDeletionCommand,
} from '@aws-sdk/client-kms';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimulatedEnclave, defaultPrincipals, kmsClientConfig, startKmsSimulator, type KmsSimulator, type SimulatedPrincipal } from '../../src/testing/index.js';
import { NodeSha256 } from '../../src/testing/kms/sigv4.js';
import { client, errorOf } from '../helpers/kms.js';

const enclave = createSimulatedEnclave();
const HOUR = 3600_000;
let offsetMs = 0; // the simulator's clock, moved by tests (clients sign with the same offset)
let sim: KmsSimulator;
let admin: KMSClient;
let other: KMSClient;
let account: string;

beforeAll(async () => {
  sim = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor], clock: () => new Date(Date.now() + offsetMs), iamArns: ['arn:aws:iam::111122223333:role/Auditor'] });
  account = sim.accountId;
  admin = client(sim, sim.principal('user/admin'));
  other = client(sim, sim.principal('user/other'));
});
afterAll(() => sim.close());

const newKey = async (Policy?: string) => (await admin.send(new CreateKeyCommand(Policy ? { Policy } : {}))).KeyMetadata!;
const root = (a: string) => ({ Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${a}:root` }, Action: 'kms:*', Resource: '*' });
const policyOf = (...Statement: object[]) => JSON.stringify({ Version: '2012-10-17', Statement });

describe('KeyId forms, per operation as in the API reference', () => {
  it('takes only a key id or key ARN for key management (PutKeyPolicy, GetKeyPolicy, EnableKey, DisableKey, CreateAlias, ListKeyPolicies, ScheduleKeyDeletion, CancelKeyDeletion)', async () => {
    const key = await newKey();
    await admin.send(new CreateAliasCommand({ AliasName: 'alias/forms', TargetKeyId: key.KeyId }));
    const policy = policyOf(root(account));
    for (const alias of ['alias/forms', `arn:aws:kms:us-east-1:${account}:alias/forms`]) {
      const calls = [
        new PutKeyPolicyCommand({ KeyId: alias, PolicyName: 'default', Policy: policy }),
        new GetKeyPolicyCommand({ KeyId: alias, PolicyName: 'default' }),
        new EnableKeyCommand({ KeyId: alias }),
        new DisableKeyCommand({ KeyId: alias }),
        new CreateAliasCommand({ AliasName: 'alias/forms-2', TargetKeyId: alias }),
        new ListKeyPoliciesCommand({ KeyId: alias }),
        new ScheduleKeyDeletionCommand({ KeyId: alias }),
        new CancelKeyDeletionCommand({ KeyId: alias }),
        new ListAliasesCommand({ KeyId: alias }),
      ];
      for (const c of calls) expect(await errorOf(admin.send(c as never)), c.constructor.name).toEqual({ name: 'NotFoundException', message: `Invalid keyId ${alias}` });
    }
    for (const id of [key.KeyId!, key.Arn!]) {
      await admin.send(new PutKeyPolicyCommand({ KeyId: id, PolicyName: 'default', Policy: policy }));
      expect((await admin.send(new GetKeyPolicyCommand({ KeyId: id }))).Policy).toBe(policy);
      expect((await admin.send(new ListKeyPoliciesCommand({ KeyId: id }))).PolicyNames).toEqual(['default']);
    }
    expect((await admin.send(new DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata!.KeyState).toBe('Enabled'); // nothing above touched it
  });

  it('takes alias names and alias ARNs for cryptographic operations and DescribeKey', async () => {
    const key = await newKey();
    await admin.send(new CreateAliasCommand({ AliasName: 'alias/crypto-forms', TargetKeyId: key.Arn }));
    for (const id of [key.KeyId!, key.Arn!, 'alias/crypto-forms', `arn:aws:kms:us-east-1:${account}:alias/crypto-forms`]) {
      const { CiphertextBlob } = await admin.send(new EncryptCommand({ KeyId: id, Plaintext: Buffer.from('x') }));
      expect((await admin.send(new DecryptCommand({ CiphertextBlob, KeyId: id }))).KeyId).toBe(key.Arn);
      expect((await admin.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata!.Arn).toBe(key.Arn);
    }
  });

  it('accepts only the policy name "default"', async () => {
    const key = await newKey();
    for (const c of [new GetKeyPolicyCommand({ KeyId: key.KeyId, PolicyName: 'custom' }), new PutKeyPolicyCommand({ KeyId: key.KeyId, PolicyName: 'custom', Policy: policyOf(root(account)) })]) {
      expect(await errorOf(admin.send(c as never))).toMatchObject({ name: 'ValidationException', message: expect.stringContaining("at 'policyName'") });
    }
  });
});

describe('key policy validation', () => {
  it('refuses principals that do not exist or are not ARNs, and statements without a principal', async () => {
    const invalid = { name: 'MalformedPolicyDocumentException', message: 'Policy contains a statement with one or more invalid principals.' };
    const allow = (AWS: unknown) => ({ Effect: 'Allow', Principal: { AWS }, Action: 'kms:Decrypt', Resource: '*' });
    for (const who of [`arn:aws:iam::${account}:role/DoesNotExist`, 'EnclaveInstanceRole', `arn:aws:iam::999988887777:root`, 'admin', ['*', 'nobody']]) {
      expect(await errorOf(newKey(policyOf(root(account), allow(who)))), JSON.stringify(who)).toEqual(invalid);
    }
    expect(await errorOf(newKey(policyOf(root(account), { Effect: 'Allow', Action: 'kms:Decrypt', Resource: '*' })))).toEqual(invalid);
    // Existing principals: a user, a role (of an assumed-role session, or declared with iamArns), an account, everyone.
    for (const who of [`arn:aws:iam::${account}:user/other`, `arn:aws:iam::${account}:role/EnclaveInstanceRole`, 'arn:aws:iam::111122223333:role/Auditor', account, '*']) {
      expect((await newKey(policyOf(root(account), allow(who)))).KeyId).toBeTruthy();
    }
  });

  it('applies the lockout safety check on CreateKey and PutKeyPolicy, unless BypassPolicyLockoutSafetyCheck', async () => {
    const lockout = { name: 'MalformedPolicyDocumentException', message: 'The new key policy will not allow you to update the key policy in the future.' };
    const roleOnly = policyOf({ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:role/EnclaveInstanceRole` }, Action: 'kms:Decrypt', Resource: '*' });
    expect(await errorOf(newKey(roleOnly))).toEqual(lockout);
    const denyPut = policyOf(root(account), { Effect: 'Deny', Principal: '*', Action: 'kms:PutKeyPolicy', Resource: '*' });
    expect(await errorOf(newKey(denyPut))).toEqual(lockout);
    const key = await newKey();
    expect(await errorOf(admin.send(new PutKeyPolicyCommand({ KeyId: key.KeyId, Policy: roleOnly })))).toEqual(lockout);
    await admin.send(new PutKeyPolicyCommand({ KeyId: key.KeyId, Policy: roleOnly, BypassPolicyLockoutSafetyCheck: true }));
    // And the admin is now locked out, as the check warned.
    expect(await errorOf(admin.send(new PutKeyPolicyCommand({ KeyId: key.KeyId, Policy: policyOf(root(account)) })))).toMatchObject({ name: 'AccessDeniedException' });
    expect((await admin.send(new CreateKeyCommand({ Policy: roleOnly, BypassPolicyLockoutSafetyCheck: true }))).KeyMetadata!.KeyId).toBeTruthy();
  });
});

describe('IAM-only operations', () => {
  it('need an identity-based policy: CreateKey, ListKeys, ListAliases and GenerateRandom are denied to a principal without one', async () => {
    const arn = sim.principal('user/other').arn;
    const calls: Array<[string, Promise<unknown>]> = [
      ['kms:CreateKey', other.send(new CreateKeyCommand({}))],
      ['kms:ListKeys', other.send(new ListKeysCommand({}))],
      ['kms:ListAliases', other.send(new ListAliasesCommand({}))],
      ['kms:GenerateRandom', other.send(new GenerateRandomCommand({ NumberOfBytes: 8 }))],
    ];
    for (const [action, call] of calls) {
      expect(await errorOf(call)).toEqual({ name: 'AccessDeniedException', message: `User: ${arn} is not authorized to perform: ${action} on resource: * because no identity-based policy allows the ${action} action` });
    }
  });

  it('honour an explicit deny in an identity policy', async () => {
    const p: SimulatedPrincipal = {
      accessKeyId: 'AKIATESTDENIED000001',
      secretAccessKey: 'test-denied-secret',
      arn: `arn:aws:iam::${account}:user/denied`,
      identityPolicies: [{ Statement: [{ Effect: 'Allow', Action: 'kms:*', Resource: '*' }, { Effect: 'Deny', Action: 'kms:GenerateRandom', Resource: '*' }] }],
    };
    const s = await startKmsSimulator({ principals: [...defaultPrincipals(), p] });
    try {
      expect(await errorOf(client(s, p).send(new GenerateRandomCommand({ NumberOfBytes: 8 })))).toMatchObject({ message: expect.stringMatching(/with an explicit deny in an identity-based policy$/) });
      expect((await client(s, p).send(new ListKeysCommand({}))).Keys).toEqual([]);
    } finally {
      await s.close();
    }
  });
});

describe('credentials', () => {
  it('refuses a long-term AKIA key sent with a session token, and principals AWS would never issue', async () => {
    const p = sim.principal('user/admin');
    const withToken = new KMSClient({ ...kmsClientConfig(sim, p), credentials: { accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey, sessionToken: 'made-up' } });
    expect(await errorOf(withToken.send(new ListKeysCommand({})))).toEqual({ name: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' });
    const base = { secretAccessKey: 's', arn: `arn:aws:iam::${account}:user/x` };
    await expect(startKmsSimulator({ principals: [{ ...base, accessKeyId: 'AKIATESTBADTOKEN0001', sessionToken: 't' }] })).rejects.toThrow(/long-term keys \(AKIA…\) never have a sessionToken/);
    await expect(startKmsSimulator({ principals: [{ ...base, accessKeyId: 'ASIATESTNOTOKEN00001' }] })).rejects.toThrow(/need a sessionToken/);
    await expect(startKmsSimulator({ principals: [{ ...base, accessKeyId: 'AKIATESTNOTARN000001', arn: 'admin' }] })).rejects.toThrow(TypeError);
  });

  it('expires session tokens by the simulator clock (ExpiredTokenException)', async () => {
    const p = sim.principal('EnclaveInstanceRole');
    expect(p.expiration!.getTime() - Date.now()).toBeGreaterThan(5 * HOUR); // default: 6 hours after start
    const at = (offset: number) => new KMSClient({ ...kmsClientConfig(sim, p), systemClockOffset: offset });
    const call = (c: KMSClient) => c.send(new DecryptCommand({ CiphertextBlob: Buffer.alloc(80, 1) }));
    expect((await errorOf(call(at(0)))).name).toBe('InvalidCiphertextException'); // authenticated
    offsetMs = 7 * HOUR;
    try {
      expect(await errorOf(call(at(offsetMs)))).toEqual({ name: 'ExpiredTokenException', message: 'The security token included in the request is expired' });
    } finally {
      offsetMs = 0;
    }
  });
});

describe('ReEncrypt', () => {
  it('needs kms:ReEncryptFrom on the source key and kms:ReEncryptTo on the destination, and moves the ciphertext', async () => {
    const source = await newKey();
    const destination = await newKey();
    const { CiphertextBlob } = await admin.send(new EncryptCommand({ KeyId: source.KeyId, Plaintext: Buffer.from('moved'), EncryptionContext: { a: '1' } }));
    const out = await admin.send(new ReEncryptCommand({ CiphertextBlob, SourceEncryptionContext: { a: '1' }, DestinationKeyId: destination.Arn }));
    expect(out).toMatchObject({ SourceKeyId: source.Arn, KeyId: destination.Arn, SourceEncryptionAlgorithm: 'SYMMETRIC_DEFAULT', DestinationEncryptionAlgorithm: 'SYMMETRIC_DEFAULT' });
    expect(Buffer.from((await admin.send(new DecryptCommand({ CiphertextBlob: out.CiphertextBlob }))).Plaintext!).toString()).toBe('moved');
    expect((await errorOf(admin.send(new ReEncryptCommand({ CiphertextBlob, DestinationKeyId: destination.KeyId })))).name).toBe('InvalidCiphertextException'); // wrong source context
    expect((await errorOf(admin.send(new ReEncryptCommand({ CiphertextBlob, SourceEncryptionContext: { a: '1' }, SourceKeyId: destination.KeyId, DestinationKeyId: destination.KeyId })))).name).toBe('IncorrectKeyException');

    const user = sim.principal('user/other').arn;
    const only = (action: string) => policyOf(root(account), { Effect: 'Allow', Principal: { AWS: user }, Action: action, Resource: '*' });
    const src = await newKey(only('kms:ReEncryptTo'));
    const dst = await newKey(only('kms:ReEncryptTo'));
    const blob = (await admin.send(new EncryptCommand({ KeyId: src.KeyId, Plaintext: Buffer.from('x') }))).CiphertextBlob;
    expect(await errorOf(other.send(new ReEncryptCommand({ CiphertextBlob: blob, DestinationKeyId: dst.Arn })))).toEqual({
      name: 'AccessDeniedException',
      message: `User: ${user} is not authorized to perform: kms:ReEncryptFrom on resource: ${src.Arn} because no identity-based policy allows the kms:ReEncryptFrom action`,
    });
    await admin.send(new PutKeyPolicyCommand({ KeyId: src.KeyId, Policy: only('kms:ReEncryptFrom') }));
    await admin.send(new PutKeyPolicyCommand({ KeyId: dst.KeyId, Policy: only('kms:ReEncryptFrom') }));
    expect((await errorOf(other.send(new ReEncryptCommand({ CiphertextBlob: blob, DestinationKeyId: dst.Arn })))).message).toMatch(/perform: kms:ReEncryptTo on resource: .* because no identity-based policy allows/);
    await admin.send(new PutKeyPolicyCommand({ KeyId: dst.KeyId, Policy: only('kms:ReEncryptTo') }));
    expect((await other.send(new ReEncryptCommand({ CiphertextBlob: blob, DestinationKeyId: dst.Arn }))).KeyId).toBe(dst.Arn);
  });
});

describe('key deletion', () => {
  it('ScheduleKeyDeletion makes the key PendingDeletion: every use fails with KMSInvalidStateException; CancelKeyDeletion leaves it Disabled', async () => {
    const key = await newKey();
    const { CiphertextBlob } = await admin.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.from('x') }));
    expect(await errorOf(admin.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId, PendingWindowInDays: 6 })))).toMatchObject({ name: 'ValidationException' });
    const scheduled = await admin.send(new ScheduleKeyDeletionCommand({ KeyId: key.Arn, PendingWindowInDays: 7 }));
    expect(scheduled).toMatchObject({ KeyId: key.Arn, KeyState: 'PendingDeletion', PendingWindowInDays: 7 });
    expect(scheduled.DeletionDate!.getTime() - Date.now()).toBeGreaterThan(7 * 24 * HOUR - 60_000);
    expect((await admin.send(new DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata).toMatchObject({ KeyState: 'PendingDeletion', Enabled: false });
    const invalid = { name: 'KMSInvalidStateException', message: `${key.Arn} is pending deletion.` };
    expect(await errorOf(admin.send(new DecryptCommand({ CiphertextBlob })))).toEqual(invalid);
    expect(await errorOf(admin.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.from('x') })))).toEqual(invalid);
    expect(await errorOf(admin.send(new GenerateDataKeyCommand({ KeyId: key.KeyId, KeySpec: 'AES_256' })))).toEqual(invalid);
    expect(await errorOf(admin.send(new EnableKeyCommand({ KeyId: key.KeyId })))).toEqual(invalid);
    expect(await errorOf(admin.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId })))).toEqual(invalid);
    expect((await admin.send(new CancelKeyDeletionCommand({ KeyId: key.KeyId }))).KeyId).toBe(key.Arn);
    expect((await admin.send(new DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata!.KeyState).toBe('Disabled');
    expect((await errorOf(admin.send(new CancelKeyDeletionCommand({ KeyId: key.KeyId })))).name).toBe('KMSInvalidStateException');
    await admin.send(new EnableKeyCommand({ KeyId: key.KeyId }));
    expect((await admin.send(new DecryptCommand({ CiphertextBlob }))).Plaintext).toHaveLength(1);
  });

  it('deletes the key (and its aliases) when the waiting period is over', async () => {
    const key = await newKey();
    await admin.send(new CreateAliasCommand({ AliasName: 'alias/doomed', TargetKeyId: key.KeyId }));
    await admin.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId, PendingWindowInDays: 7 }));
    offsetMs = 7 * 24 * HOUR + 60_000;
    try {
      const later = new KMSClient({ ...kmsClientConfig(sim, sim.principal('user/admin')), systemClockOffset: offsetMs });
      expect((await errorOf(later.send(new DescribeKeyCommand({ KeyId: key.KeyId })))).name).toBe('NotFoundException');
      expect((await later.send(new ListAliasesCommand({}))).Aliases!.map((a) => a.AliasName)).not.toContain('alias/doomed');
      expect((await later.send(new ListKeysCommand({}))).Keys!.map((k) => k.KeyId)).not.toContain(key.KeyId);
    } finally {
      offsetMs = 0;
    }
  });
});

describe('DryRun', () => {
  it('answers DryRunOperationException when the call would succeed, and the real error otherwise, with no result', async () => {
    const key = await newKey();
    const { CiphertextBlob } = await admin.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.from('x') }));
    const dest = await newKey();
    const wouldSucceed = { name: 'DryRunOperationException', message: 'The request would have succeeded, but the DryRun option is set.' };
    expect(await errorOf(admin.send(new DecryptCommand({ CiphertextBlob, DryRun: true })))).toEqual(wouldSucceed);
    expect(await errorOf(admin.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.from('x'), DryRun: true })))).toEqual(wouldSucceed);
    expect(await errorOf(admin.send(new GenerateDataKeyCommand({ KeyId: key.KeyId, KeySpec: 'AES_256', DryRun: true })))).toEqual(wouldSucceed);
    expect(await errorOf(admin.send(new ReEncryptCommand({ CiphertextBlob, DestinationKeyId: dest.KeyId, DryRun: true })))).toEqual(wouldSucceed);
    expect((await errorOf(other.send(new DecryptCommand({ CiphertextBlob, DryRun: true })))).name).toBe('AccessDeniedException');
    expect((await errorOf(admin.send(new DecryptCommand({ CiphertextBlob, EncryptionContext: { a: 'b' }, DryRun: true })))).name).toBe('InvalidCiphertextException');
    expect((await admin.send(new DecryptCommand({ CiphertextBlob, DryRun: false }))).Plaintext).toHaveLength(1);
  });

  it('covers GenerateDataKeyWithoutPlaintext, GenerateDataKeyPair and DeriveSharedSecret too', async () => {
    const key = await newKey();
    const wouldSucceed = { name: 'DryRunOperationException', message: 'The request would have succeeded, but the DryRun option is set.' };
    expect(await errorOf(admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: key.KeyId, KeySpec: 'AES_256', DryRun: true })))).toEqual(wouldSucceed);
    expect(await errorOf(admin.send(new GenerateDataKeyPairCommand({ KeyId: key.KeyId, KeyPairSpec: 'ECC_NIST_P256', DryRun: true })))).toEqual(wouldSucceed);
    expect((await errorOf(admin.send(new GenerateDataKeyPairCommand({ KeyId: key.KeyId, KeyPairSpec: 'RSA_1024' as never, DryRun: true })))).name).toBe('ValidationException');
    const agreement = (await admin.send(new CreateKeyCommand({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'KEY_AGREEMENT' }))).KeyMetadata!;
    const peer = new Uint8Array(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' }));
    expect(await errorOf(admin.send(new DeriveSharedSecretCommand({ KeyId: agreement.KeyId, KeyAgreementAlgorithm: 'ECDH', PublicKey: peer, DryRun: true })))).toEqual(wouldSucceed);
    expect((await admin.send(new DeriveSharedSecretCommand({ KeyId: agreement.KeyId, KeyAgreementAlgorithm: 'ECDH', PublicKey: peer }))).SharedSecret).toHaveLength(32);
  });
});

/** A raw signed request, to see the body exactly as the simulator sends it. */
async function raw(target: string, body: object, sent?: object, applyChecksum = true): Promise<{ status: number; headers: Record<string, unknown>; body: unknown }> {
  const p = sim.principal('user/admin');
  const signer = new SignatureV4({ service: 'kms', region: sim.region, credentials: { accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey }, sha256: NodeSha256, applyChecksum });
  const text = JSON.stringify(body);
  const signed = await signer.sign({
    method: 'POST',
    protocol: 'https:',
    hostname: 'localhost',
    port: sim.port,
    path: '/',
    headers: { host: `localhost:${sim.port}`, 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `TrentService.${target}`, 'content-length': String(Buffer.byteLength(text)) },
    body: text,
  });
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: sim.port, servername: 'localhost', ca: sim.caPem, method: 'POST', path: '/', headers: signed.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    req.end(sent === undefined ? text : JSON.stringify(sent).padEnd(text.length));
  });
}

describe('error bodies', () => {
  it('are shaped as KMS sends them: __type and message, the type in x-amzn-errortype', async () => {
    const res = await raw('DescribeKey', { KeyId: 'alias/never-made' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ __type: 'NotFoundException', message: `Alias 'arn:aws:kms:us-east-1:${account}:alias/never-made' does not exist` });
    expect(String(res.headers['x-amzn-errortype'])).toMatch(/^NotFoundException:/);
    const denied = await raw('Decrypt', { CiphertextBlob: Buffer.alloc(80, 1).toString('base64') });
    expect(Object.keys(denied.body as object)).toEqual(['__type', 'message']);
  });

  it('verify the SigV4 signature over the body: a body changed after signing is refused', async () => {
    expect((await raw('GenerateRandom', { NumberOfBytes: 16 })).status).toBe(200);
    // The signer sent x-amz-content-sha256 (signed): the body no longer matches it.
    const tampered = await raw('GenerateRandom', { NumberOfBytes: 16 }, { NumberOfBytes: 99 });
    expect(tampered.body).toEqual({ __type: 'InvalidSignatureException', message: "The provided 'x-amz-content-sha256' header does not match what was computed." });
    // Without that header, the body's own hash enters the signature.
    expect((await raw('GenerateRandom', { NumberOfBytes: 16 }, undefined, false)).status).toBe(200);
    const unsignedHash = await raw('GenerateRandom', { NumberOfBytes: 16 }, { NumberOfBytes: 99 }, false);
    expect(unsignedHash.body).toMatchObject({ __type: 'InvalidSignatureException', message: expect.stringMatching(/^The request signature we calculated does not match/) });
  });
});
