import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateDataKeyPairCommand,
  GenerateDataKeyWithoutPlaintextCommand,
  GenerateRandomCommand,
  GetKeyPolicyCommand,
  KMSClient,
  ListAliasesCommand,
  PutKeyPolicyCommand,
} from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptCiphertextForRecipient, parseEnvelopedData } from '../../src/kms/cms.js';
import { buildKeyPolicy } from '../../src/parent/key-policy.js';
import { createSimulatedEnclave, kmsClientConfig, startKmsSimulator, startVsockProxyStandIn, type KmsSimulator } from '../../src/testing/index.js';
import { client, recipient, rsaPair } from '../helpers/kms.js';
import { seedAvailable, seedInstanceRolePolicy, seedKeyPolicy } from '../helpers/seed.js';

const enclave = createSimulatedEnclave();
const debugEnclave = createSimulatedEnclave({ debugMode: true, pki: enclave.pki });
const otherImage = createSimulatedEnclave({ pcrs: { 0: 'ab'.repeat(48) }, pki: enclave.pki });
const foreignEnclave = createSimulatedEnclave({ pcrs: { 0: enclave.imageSha384 } }); // same PCR0, untrusted PKI

let sim: KmsSimulator;
let admin: KMSClient;
let role: KMSClient;
let other: KMSClient;
const tmp = mkdtempSync(join(tmpdir(), 'nes-kms-'));

beforeAll(async () => {
  sim = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor] });
  admin = client(sim, sim.principal('user/admin'));
  role = client(sim, sim.principal('EnclaveInstanceRole'));
  other = client(sim, sim.principal('user/other'));
});
afterAll(async () => {
  await sim.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function errorOf(p: Promise<unknown>): Promise<{ name: string; message: string; status?: number }> {
  try {
    await p;
  } catch (err) {
    const e = err as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, message: e.message, status: e.$metadata?.httpStatusCode };
  }
  throw new Error('expected the call to fail');
}

async function newKey(policy?: string): Promise<string> {
  const { KeyMetadata } = await admin.send(new CreateKeyCommand({ Description: 'test', ...(policy ? { Policy: policy } : {}) }));
  return KeyMetadata!.KeyId!;
}

describe('KMS simulator with the real @aws-sdk/client-kms', () => {
  it('serves key management: CreateKey, CreateAlias, ListAliases, DescribeKey, Put/GetKeyPolicy', async () => {
    const { KeyMetadata } = await admin.send(new CreateKeyCommand({ Description: 'Trusted Session Key', KeyUsage: 'ENCRYPT_DECRYPT', KeySpec: 'SYMMETRIC_DEFAULT' }));
    expect(KeyMetadata).toMatchObject({ Description: 'Trusted Session Key', KeyState: 'Enabled', KeySpec: 'SYMMETRIC_DEFAULT', AWSAccountId: sim.accountId });
    expect(KeyMetadata!.Arn).toBe(`arn:aws:kms:us-east-1:${sim.accountId}:key/${KeyMetadata!.KeyId}`);
    expect(KeyMetadata!.CreationDate).toBeInstanceOf(Date);
    await admin.send(new CreateAliasCommand({ AliasName: 'alias/sim-test', TargetKeyId: KeyMetadata!.KeyId }));
    expect((await errorOf(admin.send(new CreateAliasCommand({ AliasName: 'alias/sim-test', TargetKeyId: KeyMetadata!.KeyId })))).name).toBe('AlreadyExistsException');
    const { Aliases } = await admin.send(new ListAliasesCommand({ KeyId: KeyMetadata!.KeyId }));
    expect(Aliases!.map((a) => a.AliasName)).toEqual(['alias/sim-test']);
    for (const id of ['alias/sim-test', KeyMetadata!.Arn!, `arn:aws:kms:us-east-1:${sim.accountId}:alias/sim-test`]) {
      expect((await admin.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata!.KeyId).toBe(KeyMetadata!.KeyId);
    }
    const policy = buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384 });
    await admin.send(new PutKeyPolicyCommand({ KeyId: KeyMetadata!.KeyId, PolicyName: 'default', Policy: JSON.stringify(policy) }));
    expect(JSON.parse((await admin.send(new GetKeyPolicyCommand({ KeyId: KeyMetadata!.Arn, PolicyName: 'default' }))).Policy!)).toEqual(policy);
    expect(await errorOf(admin.send(new PutKeyPolicyCommand({ KeyId: KeyMetadata!.KeyId, Policy: '{"Statement":[{"Effect":"Allow","Action":"kms:*","Condition":{"NumericLessThan":{"a":"1"}}}]}' })))).toMatchObject({
      name: 'MalformedPolicyDocumentException',
    });
    expect(await errorOf(admin.send(new DescribeKeyCommand({ KeyId: 'alias/missing' })))).toMatchObject({
      name: 'NotFoundException',
      message: `Alias 'arn:aws:kms:us-east-1:${sim.accountId}:alias/missing' does not exist`,
    });
  });

  it('Encrypt/Decrypt bind ciphertext to the key and the encryption context', async () => {
    const keyId = await newKey();
    const context = { purpose: 'test', tenant: 'a' };
    const { CiphertextBlob } = await admin.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from('hello'), EncryptionContext: context }));
    const out = await admin.send(new DecryptCommand({ CiphertextBlob, EncryptionContext: { tenant: 'a', purpose: 'test' } }));
    expect(Buffer.from(out.Plaintext!).toString()).toBe('hello');
    expect(out.KeyId).toContain(keyId);
    expect((await errorOf(admin.send(new DecryptCommand({ CiphertextBlob, EncryptionContext: { purpose: 'test' } })))).name).toBe('InvalidCiphertextException');
    expect((await errorOf(admin.send(new DecryptCommand({ CiphertextBlob: Buffer.from('not a blob at all, but long enough to look like one......') })))).name).toBe('InvalidCiphertextException');
    const otherKey = await newKey();
    expect((await errorOf(admin.send(new DecryptCommand({ CiphertextBlob, KeyId: otherKey, EncryptionContext: context })))).name).toBe('IncorrectKeyException');
    const tampered = Buffer.from(CiphertextBlob!);
    tampered[tampered.length - 1]! ^= 1;
    expect((await errorOf(admin.send(new DecryptCommand({ CiphertextBlob: tampered, EncryptionContext: context })))).name).toBe('InvalidCiphertextException');
  });

  it('GenerateDataKey, GenerateDataKeyWithoutPlaintext, GenerateDataKeyPair and GenerateRandom without Recipient', async () => {
    const keyId = await newKey();
    const dk = await admin.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256' }));
    expect(dk.Plaintext).toHaveLength(32);
    const back = await admin.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob }));
    expect(Buffer.from(back.Plaintext!).equals(Buffer.from(dk.Plaintext!))).toBe(true);
    const wp = await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId, NumberOfBytes: 16 }));
    expect(wp).not.toHaveProperty('Plaintext');
    expect((await admin.send(new DecryptCommand({ CiphertextBlob: wp.CiphertextBlob }))).Plaintext).toHaveLength(16);
    const pair = await admin.send(new GenerateDataKeyPairCommand({ KeyId: keyId, KeyPairSpec: 'ECC_NIST_P256' }));
    expect(pair.PublicKey!.length).toBeGreaterThan(50);
    expect(pair.PrivateKeyPlaintext!.length).toBeGreaterThan(50);
    expect((await admin.send(new GenerateRandomCommand({ NumberOfBytes: 40 }))).Plaintext).toHaveLength(40);
    expect((await errorOf(admin.send(new GenerateDataKeyCommand({ KeyId: keyId })))).name).toBe('ValidationException');
  });

  it('answers Recipient calls with a KMS-shaped envelope and no plaintext, for every Recipient operation', async () => {
    const keyId = await newKey();
    const { privateKey, spki } = rsaPair();
    const r = () => recipient(enclave, spki);
    const dk = await admin.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', Recipient: r() }));
    expect(dk.Plaintext).toBeUndefined();
    const dataKey = await decryptCiphertextForRecipient(dk.CiphertextForRecipient!, privateKey);
    expect((await admin.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob }))).Plaintext).toEqual(dataKey);

    const dec = await admin.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, Recipient: r() }));
    expect(dec.Plaintext).toBeUndefined();
    expect(await decryptCiphertextForRecipient(dec.CiphertextForRecipient!, privateKey)).toEqual(dataKey);

    const env = parseEnvelopedData(dec.CiphertextForRecipient!);
    expect(env).toMatchObject({ version: 2, contentEncryptionAlgorithm: 'AES_256_CBC' });
    expect(env.recipients).toHaveLength(1);
    expect(env.recipients[0]).toMatchObject({ version: 2, keyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', recipientId: { type: 'subjectKeyIdentifier' } });
    expect((env.recipients[0]!.recipientId as { keyIdentifier: Uint8Array }).keyIdentifier).toHaveLength(32);
    expect(env.iv).toHaveLength(16);
    expect(Buffer.from(dec.CiphertextForRecipient!.subarray(0, 2)).toString('hex')).toBe('3080'); // BER, indefinite length

    const pair = await admin.send(new GenerateDataKeyPairCommand({ KeyId: keyId, KeyPairSpec: 'RSA_2048', Recipient: r() }));
    expect(pair.PrivateKeyPlaintext).toBeUndefined();
    const pkcs8 = await decryptCiphertextForRecipient(pair.CiphertextForRecipient!, privateKey);
    expect(Buffer.from(pkcs8).subarray(0, 1).toString('hex')).toBe('30');

    const rnd = await admin.send(new GenerateRandomCommand({ NumberOfBytes: 64, Recipient: r() }));
    expect(rnd.Plaintext).toBeUndefined();
    expect(await decryptCiphertextForRecipient(rnd.CiphertextForRecipient!, privateKey)).toHaveLength(64);
  });

  it('produces envelopes that the OpenSSL CLI opens (openssl cms -decrypt)', async () => {
    const { privateKey, spki } = rsaPair();
    const rnd = await admin.send(new GenerateRandomCommand({ NumberOfBytes: 48, Recipient: recipient(enclave, spki) }));
    writeFileSync(join(tmp, 'env.ber'), rnd.CiphertextForRecipient!);
    writeFileSync(join(tmp, 'key.pem'), privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const out = execFileSync('openssl', ['cms', '-decrypt', '-inform', 'DER', '-in', join(tmp, 'env.ber'), '-inkey', join(tmp, 'key.pem'), '-binary']);
    expect(new Uint8Array(out)).toEqual(await decryptCiphertextForRecipient(rnd.CiphertextForRecipient!, privateKey));
  });

  it('rejects Recipient documents that do not verify, are stale, or carry no usable RSA key', async () => {
    const keyId = await newKey();
    const { spki } = rsaPair();
    const bad = async (Recipient: { KeyEncryptionAlgorithm: string; AttestationDocument: Uint8Array }) =>
      errorOf(admin.send(new GenerateRandomCommand({ NumberOfBytes: 8, Recipient: Recipient as never })));
    expect(await bad(recipient(foreignEnclave, spki))).toMatchObject({ name: 'ValidationException', message: expect.stringMatching(/ERR_ATTESTATION_UNTRUSTED_ROOT/) });
    const staleEnclave = createSimulatedEnclave({ pki: enclave.pki, clock: () => new Date(Date.now() - 10 * 60_000) });
    expect(await bad(recipient(staleEnclave, spki))).toMatchObject({ name: 'ValidationException', message: expect.stringMatching(/ERR_ATTESTATION_STALE/) });
    expect(await bad({ KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: enclave.attest() })).toMatchObject({ message: 'The attestation document does not contain a public key' });
    const ec = new Uint8Array(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' }));
    expect(await bad(recipient(enclave, ec))).toMatchObject({ message: expect.stringMatching(/must be an RSA key of 2048, 3072 or 4096 bits/) });
    const small = new Uint8Array(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'der', type: 'spki' }));
    expect(await bad(recipient(enclave, small))).toMatchObject({ message: expect.stringMatching(/must be an RSA key of 2048/) });
    expect(await bad({ KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_1', AttestationDocument: enclave.attest({ publicKey: spki }) })).toMatchObject({ name: 'ValidationException' });
    expect(keyId).toBeTruthy();
  });

  it('reports a disabled key as DisabledException', async () => {
    const keyId = await newKey();
    const { CiphertextBlob } = await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId, KeySpec: 'AES_256' }));
    await admin.send(new DisableKeyCommand({ KeyId: keyId }));
    expect(await errorOf(admin.send(new DecryptCommand({ CiphertextBlob })))).toMatchObject({ name: 'DisabledException', message: expect.stringContaining('is disabled.') });
  });
});

describe.skipIf(!seedAvailable)("the seed's key policy, enforced", () => {
  let blob: Uint8Array;
  let keyArn: string;
  beforeAll(async () => {
    const keyId = await newKey(seedKeyPolicy(sim.accountId, enclave.imageSha384));
    keyArn = `arn:aws:kms:us-east-1:${sim.accountId}:key/${keyId}`;
    blob = (await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId, KeySpec: 'AES_256' }))).CiphertextBlob!;
  });
  const decryptAs = (c: KMSClient, e?: typeof enclave) => c.send(new DecryptCommand({ CiphertextBlob: blob, ...(e ? { Recipient: recipient(e, rsaPair().spki) } : {}) }));

  it('allows the enclave role with the right image', async () => {
    const out = await decryptAs(role, enclave);
    expect(await decryptCiphertextForRecipient(out.CiphertextForRecipient!, rsaPair().privateKey)).toHaveLength(32);
  });

  it('denies another PCR0, a debug-mode enclave, an unattested call, with KMS wording', async () => {
    // The seed's root statement delegates to IAM, so what is missing for the role is an identity-based policy.
    const denied = (arn: string) => `User: ${arn} is not authorized to perform: kms:Decrypt on resource: ${keyArn} because no identity-based policy allows the kms:Decrypt action`;
    const roleArn = sim.principal('EnclaveInstanceRole').arn;
    for (const e of [otherImage, debugEnclave, undefined]) {
      expect(await errorOf(decryptAs(role, e))).toMatchObject({ name: 'AccessDeniedException', status: 400, message: denied(roleArn) });
    }
  });

  it('denies another principal even with the right enclave', async () => {
    expect(await errorOf(decryptAs(other, enclave))).toMatchObject({ name: 'AccessDeniedException', message: expect.stringContaining('user/other is not authorized') });
  });

  it('is weakened by the seed’s own step 4: an IAM grant makes unattested Decrypt succeed; the hardened policy closes it', async () => {
    const weak = await startKmsSimulator({
      trustAnchors: [enclave.trustAnchor],
      principals: sim.principals.map((p) => (p.arn.includes('EnclaveInstanceRole') ? { ...p, identityPolicies: [seedInstanceRolePolicy('*') as never] } : p)),
    });
    try {
      const a = client(weak, weak.principal('user/admin'));
      const r = client(weak, weak.principal('EnclaveInstanceRole'));
      const seedKey = (await a.send(new CreateKeyCommand({ Policy: seedKeyPolicy(weak.accountId, enclave.imageSha384) }))).KeyMetadata!.KeyId!;
      const seedBlob = (await a.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: seedKey, KeySpec: 'AES_256' }))).CiphertextBlob!;
      expect((await r.send(new DecryptCommand({ CiphertextBlob: seedBlob }))).Plaintext).toHaveLength(32); // the seed's verification step would FAIL here
      expect((await a.send(new DecryptCommand({ CiphertextBlob: seedBlob }))).Plaintext).toHaveLength(32); // and so would an admin's call

      const hardened = buildKeyPolicy({ accountId: weak.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384, enclaveActions: ['kms:Decrypt'] });
      await a.send(new PutKeyPolicyCommand({ KeyId: seedKey, Policy: JSON.stringify(hardened) }));
      for (const c of [r, a]) {
        expect(await errorOf(c.send(new DecryptCommand({ CiphertextBlob: seedBlob })))).toMatchObject({ name: 'AccessDeniedException', message: expect.stringMatching(/with an explicit deny in a resource-based policy$/) });
      }
      const ok = await r.send(new DecryptCommand({ CiphertextBlob: seedBlob, Recipient: recipient(enclave, rsaPair().spki) }));
      expect(ok.CiphertextForRecipient).toBeDefined();
    } finally {
      await weak.close();
    }
  });
});

describe('authentication', () => {
  it('rejects a wrong secret, an unknown access key, a missing session token and an unsigned request', async () => {
    const p = sim.principal('EnclaveInstanceRole');
    const mk = (creds: object) => new KMSClient({ ...kmsClientConfig(sim, p), credentials: creds as never });
    const call = (c: KMSClient) => errorOf(c.send(new GenerateRandomCommand({ NumberOfBytes: 8 })));
    expect(await call(mk({ accessKeyId: p.accessKeyId, secretAccessKey: 'wrong', sessionToken: p.sessionToken }))).toMatchObject({
      name: 'InvalidSignatureException',
      message: expect.stringMatching(/^The request signature we calculated does not match/),
    });
    expect(await call(mk({ accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: 'x' }))).toMatchObject({ name: 'UnrecognizedClientException' });
    expect(await call(mk({ accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey }))).toMatchObject({ name: 'UnrecognizedClientException' });
    const res = await fetch(`${sim.url}/`, { method: 'POST', headers: { 'x-amz-target': 'TrentService.GenerateRandom' }, body: '{}' }).catch((e: Error) => e);
    expect(res).toBeInstanceOf(Error); // untrusted test CA: a plain client cannot even connect
  });

  it('rejects a request signed more than 5 minutes away from the server clock', async () => {
    const skewed = await startKmsSimulator({ clock: () => new Date(Date.now() + 10 * 60_000) });
    try {
      const c = new KMSClient({ ...kmsClientConfig(skewed, skewed.principal('user/admin')), maxAttempts: 1, systemClockOffset: 0 });
      expect(await errorOf(c.send(new GenerateRandomCommand({ NumberOfBytes: 8 })))).toMatchObject({ name: 'InvalidSignatureException', message: expect.stringMatching(/^Signature expired/) });
    } finally {
      await skewed.close();
    }
  });
});

describe('fault injection', () => {
  it('throttles, fails, resets and truncates the next N requests, then recovers', async () => {
    const call = () => admin.send(new GenerateRandomCommand({ NumberOfBytes: 8 }));
    sim.faults.throttle(2);
    expect(await errorOf(call())).toMatchObject({ name: 'ThrottlingException', status: 400, message: 'Rate exceeded' });
    expect(await errorOf(call())).toMatchObject({ name: 'ThrottlingException' });
    sim.faults.internalError(1, 503);
    expect(await errorOf(call())).toMatchObject({ name: 'KMSInternalException', status: 503 });
    sim.faults.resetConnection(1);
    expect((await errorOf(call())).message).toMatch(/socket hang up|ECONNRESET|aborted|closed/i);
    sim.faults.truncateBody(1);
    expect((await errorOf(call())).message.length).toBeGreaterThan(0);
    expect((await call()).Plaintext).toHaveLength(8);
  });

  it('retries throttling through the SDK retry strategy and only for the targeted operation', async () => {
    const retrying = new KMSClient({ ...kmsClientConfig(sim, sim.principal('user/admin')), maxAttempts: 3 });
    sim.faults.throttle(2, 'GenerateRandom');
    const out = await retrying.send(new GenerateRandomCommand({ NumberOfBytes: 8 }));
    expect(out.$metadata.attempts).toBe(3);
  });

  it('adds latency', async () => {
    sim.faults.latency(150);
    const t = Date.now();
    await admin.send(new GenerateRandomCommand({ NumberOfBytes: 8 }));
    expect(Date.now() - t).toBeGreaterThanOrEqual(140);
    sim.faults.clear();
  });
});

describe('audit trail', () => {
  const b64 = (i: number) => Buffer.from(enclave.pcrs.get(i)!).toString('base64');

  it('records an attested Decrypt as CloudTrail does: AssumedRole identity, no request blobs, responseElements null, the recipient fields in base64', async () => {
    const keyId = await newKey(JSON.stringify(buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384 })));
    const { CiphertextBlob } = await admin.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: { purpose: 'tsk' } }));
    const start = sim.audit.length;
    const answer = await role.send(new DecryptCommand({ CiphertextBlob, EncryptionContext: { purpose: 'tsk' }, Recipient: recipient(enclave, rsaPair().spki) }));
    await errorOf(role.send(new DecryptCommand({ CiphertextBlob, EncryptionContext: { purpose: 'tsk' } })));
    const [ok, denied] = sim.audit.slice(start);
    const keyArn = `arn:aws:kms:us-east-1:${sim.accountId}:key/${keyId}`;
    const roleArn = `arn:aws:iam::${sim.accountId}:role/EnclaveInstanceRole`;
    expect(ok).toEqual({
      eventVersion: '1.11',
      userIdentity: {
        type: 'AssumedRole',
        principalId: expect.stringMatching(/^AROA[A-Z2-7]{17}:i-0123456789abcdef0$/),
        arn: sim.principal('EnclaveInstanceRole').arn,
        accountId: sim.accountId,
        accessKeyId: 'ASIATESTENCLAVEROLE1',
        sessionContext: {
          sessionIssuer: { type: 'Role', principalId: expect.stringMatching(/^AROA[A-Z2-7]{17}$/), arn: roleArn, accountId: sim.accountId, userName: 'EnclaveInstanceRole' },
          webIdFederationData: {},
          attributes: { creationDate: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/), mfaAuthenticated: 'false' },
          ec2RoleDelivery: '2.0',
        },
      },
      eventTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
      eventSource: 'kms.amazonaws.com',
      eventName: 'Decrypt',
      awsRegion: 'us-east-1',
      sourceIPAddress: '127.0.0.1',
      userAgent: expect.stringContaining('aws-sdk-js'),
      requestParameters: { encryptionAlgorithm: 'SYMMETRIC_DEFAULT', keyId: keyArn, encryptionContext: { purpose: 'tsk' } },
      responseElements: null,
      additionalEventData: {
        recipient: {
          attestationDocumentModuleId: enclave.moduleId,
          attestationDocumentEnclaveImageDigest: b64(0),
          attestationDocumentEnclavePCR1: b64(1),
          attestationDocumentEnclavePCR2: b64(2),
          attestationDocumentEnclavePCR3: b64(3),
          attestationDocumentEnclavePCR4: b64(4),
          attestationDocumentEnclavePCR8: b64(8),
        },
      },
      requestID: answer.$metadata.requestId,
      eventID: expect.stringMatching(/^[0-9a-f-]{36}$/),
      readOnly: true,
      resources: [{ accountId: sim.accountId, type: 'AWS::KMS::Key', ARN: keyArn }],
      eventType: 'AwsApiCall',
      managementEvent: true,
      recipientAccountId: sim.accountId,
      eventCategory: 'Management',
      tlsDetails: { tlsVersion: expect.stringMatching(/^TLSv1\.[23]$/), cipherSuite: expect.any(String), clientProvidedHostHeader: expect.any(String) },
    });
    expect(denied).toMatchObject({ eventName: 'Decrypt', errorCode: 'AccessDeniedException', errorMessage: expect.stringContaining('kms:Decrypt'), responseElements: null, resources: [{ ARN: keyArn }] });
    expect(denied!.additionalEventData).toBeUndefined();
    const text = JSON.stringify(sim.audit);
    expect(text).not.toContain(Buffer.from(CiphertextBlob!).toString('base64'));
    expect(text).not.toContain(Buffer.from(answer.CiphertextForRecipient!).toString('base64'));
  });

  it('records a PutKeyPolicy with the policy text, IAMUser identity, readOnly false', async () => {
    const keyId = await newKey();
    const policy = JSON.stringify(buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384 }));
    const start = sim.audit.length;
    await admin.send(new PutKeyPolicyCommand({ KeyId: keyId, Policy: policy }));
    const [put] = sim.audit.slice(start);
    expect(put).toMatchObject({
      userIdentity: { type: 'IAMUser', principalId: expect.stringMatching(/^AIDA[A-Z2-7]{17}$/), arn: `arn:aws:iam::${sim.accountId}:user/admin`, accessKeyId: 'AKIATESTADMIN0000001', userName: 'admin' },
      eventName: 'PutKeyPolicy',
      requestParameters: { keyId, policyName: 'default', policy, bypassPolicyLockoutSafetyCheck: false },
      responseElements: null,
      readOnly: false,
    });
    expect(put!.userIdentity!.sessionContext).toBeUndefined();
  });
});

describe('vsock-proxy stand-in and persistence', () => {
  it('relays the same TLS session through an AF_UNIX path', async () => {
    const path = join(tmp, 'proxy.sock');
    const proxy = await startVsockProxyStandIn({ listen: { path }, target: { port: sim.port } });
    try {
      const { createStreamHttpsAgent, unixConnector } = await import('../../src/vsock/agent.js');
      const { NodeHttpHandler } = await import('@smithy/node-http-handler');
      const agent = createStreamHttpsAgent({ connect: unixConnector(path), servername: sim.hostname, ca: sim.caPem });
      const c = new KMSClient({ ...kmsClientConfig(sim, sim.principal('user/admin')), requestHandler: new NodeHttpHandler({ httpsAgent: agent }) });
      expect((await c.send(new GenerateRandomCommand({ NumberOfBytes: 8 }))).Plaintext).toHaveLength(8);
      expect(proxy.connections).toBe(1);
      agent.destroy();
    } finally {
      await proxy.close();
    }
  });

  it('persists keys, aliases and policies to a JSON file written atomically, across restarts', async () => {
    const stateFile = join(tmp, 'state', 'kms.json');
    const first = await startKmsSimulator({ stateFile });
    const a1 = client(first, first.principal('user/admin'));
    const keyId = (await a1.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    await a1.send(new CreateAliasCommand({ AliasName: 'alias/persisted', TargetKeyId: keyId }));
    const { CiphertextBlob } = await a1.send(new EncryptCommand({ KeyId: 'alias/persisted', Plaintext: Buffer.from('kept') }));
    await first.close();
    expect(statSync(stateFile).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(tmp, 'state'))).toEqual(['kms.json']);
    expect(JSON.parse(readFileSync(stateFile, 'utf8')).aliases).toEqual({ [`arn:aws:kms:us-east-1:${first.accountId}:alias/persisted`]: keyId });
    const second = await startKmsSimulator({ stateFile });
    try {
      const out = await client(second, second.principal('user/admin')).send(new DecryptCommand({ CiphertextBlob }));
      expect(Buffer.from(out.Plaintext!).toString()).toBe('kept');
    } finally {
      await second.close();
    }
  });
});
