import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto';
import { CreateKeyCommand, DecryptCommand, GetPublicKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRecipientClient } from '../../src/kms/recipient.js';
import { createNsmClient } from '../../src/nsm/client.js';
import { createSimulatedEnclave, createSimulatedNsm, kmsClientConfig, startKmsSimulator, type KmsSimulator } from '../../src/testing/index.js';
import { NitroEnclaveError } from '../../src/errors.js';
import { interceptedClient, untilAborted } from '../helpers/kms.js';

const enclave = createSimulatedEnclave();
let sim: KmsSimulator;
let admin: KMSClient;
let symmetricKey: string;
let agreementKey: string;

beforeAll(async () => {
  sim = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor] });
  admin = new KMSClient(kmsClientConfig(sim, sim.principal('user/admin')));
  // Key ARNs: the client refuses bare key ids and aliases (see the pinning tests below).
  symmetricKey = (await admin.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
  agreementKey = (await admin.send(new CreateKeyCommand({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'KEY_AGREEMENT' }))).KeyMetadata!.Arn!;
});
afterAll(() => sim.close());

const recipientClient = (kms = admin, nsm = createNsmClient(createSimulatedNsm(enclave))) => createRecipientClient({ kms, nsm, trustAnchors: [enclave.trustAnchor], retry: { baseDelayMs: 1 } });

describe('attested Recipient operations through createRecipientClient (admin principal, default key policy)', () => {
  it('generateDataKey: the plaintext arrives only inside, and matches what the blob decrypts to', async () => {
    const r = await recipientClient().generateDataKey({ keyId: symmetricKey, encryptionContext: { purpose: 'x' } });
    expect(r.plaintext).toHaveLength(32);
    expect(r.response.Plaintext).toBeUndefined();
    const back = await admin.send(new DecryptCommand({ CiphertextBlob: r.response.CiphertextBlob, EncryptionContext: { purpose: 'x' } }));
    expect(back.Plaintext).toEqual(r.plaintext);
    expect(r.attestation.pcrsHex[0]).toBe(enclave.imageSha384);
    expect(r.timings.attempts).toBe(1);
    const sixteen = await recipientClient().generateDataKey({ keyId: symmetricKey, numberOfBytes: 16 });
    expect(sixteen.plaintext).toHaveLength(16);
  });

  it('generateDataKeyPair: the private key (PKCS#8) matches the returned public key', async () => {
    const r = await recipientClient().generateDataKeyPair({ keyId: symmetricKey, keyPairSpec: 'ECC_NIST_P384' });
    const priv = createPrivateKey({ key: Buffer.from(r.plaintext), format: 'der', type: 'pkcs8' });
    expect(createPublicKey(priv).export({ format: 'der', type: 'spki' })).toEqual(Buffer.from(r.response.PublicKey!));
  });

  it('generateRandom: KMS randomness only this enclave can read', async () => {
    const r = await recipientClient().generateRandom({ numberOfBytes: 48 });
    expect(r.plaintext).toHaveLength(48);
    expect(r.response.Plaintext).toBeUndefined();
  });

  it('deriveSharedSecret: ECDH with a KMS key agreement key, equal to the peer side', async () => {
    const peer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const r = await recipientClient().deriveSharedSecret({ keyId: agreementKey, publicKey: new Uint8Array(peer.publicKey.export({ format: 'der', type: 'spki' })) });
    const kmsPublic = createPublicKey({ key: Buffer.from((await admin.send(new GetPublicKeyCommand({ KeyId: agreementKey }))).PublicKey!), format: 'der', type: 'spki' });
    expect(Buffer.from(r.plaintext)).toEqual(diffieHellman({ privateKey: peer.privateKey, publicKey: kmsPublic }));
    await expect(recipientClient().deriveSharedSecret({ keyId: symmetricKey, publicKey: new Uint8Array(peer.publicKey.export({ format: 'der', type: 'spki' })) })).rejects.toMatchObject({
      code: 'ERR_KMS_VALIDATION',
    });
  });

  it('refuses a response that carries plaintext despite Recipient, and zeroes it', async () => {
    const kms = new KMSClient(kmsClientConfig(sim, sim.principal('user/admin')));
    let leaked: Uint8Array | undefined;
    kms.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        leaked = new Uint8Array(32).fill(7);
        (result.output as { Plaintext?: Uint8Array }).Plaintext = leaked;
        return result;
      },
      { step: 'initialize', name: 'leakPlaintext' },
    );
    await expect(recipientClient(kms).generateRandom({ numberOfBytes: 32 })).rejects.toMatchObject({ code: 'ERR_KMS_PROTOCOL', message: expect.stringContaining('returned Plaintext despite Recipient') });
    expect(leaked!.every((b) => b === 0)).toBe(true);
  });

  it('the self-check catches a broken NSM or clock, with the attestation code', async () => {
    const liar = createSimulatedNsm(enclave);
    const broken = { request: liar.request, attestation: async () => enclave.attest({ publicKey: new Uint8Array([1, 2, 3]) }) } as never;
    await expect(recipientClient(admin, broken).generateRandom({ numberOfBytes: 8 })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_PUBLIC_KEY_MISMATCH', message: expect.stringMatching(/our own attestation document failed the offline check/) });
    const stale = createSimulatedEnclave({ pki: enclave.pki, clock: () => new Date(Date.now() - 4 * 3_600_000) });
    await expect(recipientClient(admin, createNsmClient(createSimulatedNsm(stale))).generateRandom({ numberOfBytes: 8 })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_CERT_EXPIRED' });
  });

  it('runs the self-check during the KMS request; when it fails after KMS answered, the released envelope is zeroed unopened', async () => {
    const kms = new KMSClient(kmsClientConfig(sim, sim.principal('user/admin')));
    let released: Uint8Array | undefined;
    let answered!: () => void;
    const kmsAnswered = new Promise<void>((r) => (answered = r));
    let verifyStartedBeforeAnswer = false;
    kms.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        released = (result.output as { CiphertextForRecipient?: Uint8Array }).CiphertextForRecipient;
        answered();
        return result;
      },
      { step: 'initialize', name: 'watchEnvelope' },
    );
    // A verifier that fails only once KMS has released the envelope: the worst case for a concurrent check.
    const verifier = {
      async verify() {
        verifyStartedBeforeAnswer = released === undefined;
        await kmsAnswered;
        throw new NitroEnclaveError('ERR_ATTESTATION_CERT_EXPIRED', 'the leaf certificate expired');
      },
    } as never;
    const client = createRecipientClient({ kms, nsm: createNsmClient(createSimulatedNsm(enclave)), trustAnchors: [enclave.trustAnchor], verifier });
    await expect(client.generateDataKey({ keyId: symmetricKey })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_CERT_EXPIRED', message: expect.stringMatching(/nothing KMS answered was used/) });
    expect(verifyStartedBeforeAnswer).toBe(true); // concurrent: the check began while the request was in flight
    expect(released!.length).toBeGreaterThan(0);
    expect(released!.every((b) => b === 0)).toBe(true); // KMS did release it (the simulator accepted the document); it was zeroed unopened
  });

  it('a self-check that fails first cancels the KMS request, at once and with the check\'s error as the reason', async () => {
    let reason: unknown;
    const kms = interceptedClient(sim, sim.principal('user/admin'), async (_operation, _forward, signal) => {
      await untilAborted(signal).catch((err) => {
        reason = signal?.reason;
        throw err;
      });
      throw new Error('unreachable');
    });
    const verifier = { verify: async () => Promise.reject(new NitroEnclaveError('ERR_ATTESTATION_SIGNATURE_INVALID', 'bad signature')) } as never;
    const client = createRecipientClient({ kms, nsm: createNsmClient(createSimulatedNsm(enclave)), trustAnchors: [enclave.trustAnchor], verifier, timeoutMs: 10_000 });
    const started = Date.now();
    await expect(client.decrypt({ ciphertextBlob: new Uint8Array(8), keyId: symmetricKey })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_SIGNATURE_INVALID' });
    expect(Date.now() - started).toBeLessThan(3000); // not the 10 s deadline
    expect(reason).toMatchObject({ code: 'ERR_ATTESTATION_SIGNATURE_INVALID' });
  });

  it('fails closed, never hangs, whatever the verifier does: throws, rejects with a non-Error, or never answers', async () => {
    const nsm = () => createNsmClient(createSimulatedNsm(enclave));
    const throwing = { verify: () => { throw new Error('boom'); } } as never;
    await expect(createRecipientClient({ kms: admin, nsm: nsm(), verifier: throwing }).generateRandom({ numberOfBytes: 8 })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_MALFORMED', message: expect.stringContaining('boom') });
    const undefinedRejection = { verify: () => Promise.reject(undefined) } as never;
    await expect(createRecipientClient({ kms: admin, nsm: nsm(), verifier: undefinedRejection }).generateRandom({ numberOfBytes: 8 })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_MALFORMED' });
    // A verifier that never answers: the call ends at its deadline, and the envelope KMS released is zeroed unopened.
    // The deadline leaves KMS time to answer on a loaded 2-core CI machine (1.5 s did not, once).
    const kms = new KMSClient(kmsClientConfig(sim, sim.principal('user/admin')));
    let released: Uint8Array | undefined;
    kms.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        released = (result.output as { CiphertextForRecipient?: Uint8Array }).CiphertextForRecipient;
        return result;
      },
      { step: 'initialize', name: 'watchEnvelope' },
    );
    const silent = { verify: () => new Promise(() => {}) } as never;
    await expect(createRecipientClient({ kms, nsm: nsm(), verifier: silent, timeoutMs: 5000 }).generateDataKey({ keyId: symmetricKey })).rejects.toMatchObject({ code: 'ERR_KMS_TIMEOUT' });
    expect(released!.length).toBeGreaterThan(0);
    expect(released!.every((b) => b === 0)).toBe(true);
  });

  it('validates its construction', () => {
    expect(() => createRecipientClient({ kms: {} as never, nsm: createNsmClient(createSimulatedNsm(enclave)) })).toThrow(TypeError);
    expect(() => createRecipientClient({ kms: admin, nsm: createNsmClient(createSimulatedNsm(enclave)), rsaModulusLength: 1024 as never })).toThrow(TypeError);
    expect(() => createRecipientClient({ kms: admin, nsm: createNsmClient(createSimulatedNsm(enclave)), timeout: 5 } as never)).toThrow(/timeout was renamed timeoutMs/);
  });
});

describe('the client pins the key it names', () => {
  const peerSpki = () => new Uint8Array(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' }));

  it('refuses a bare alias, a bare key id or no key with a TypeError explaining the substitution risk, before anything is sent', async () => {
    const calls = sim.audit.length;
    const keyIdOnly = symmetricKey.split('/').at(-1)!;
    const client = recipientClient();
    for (const keyId of ['alias/confidential-workflow-tsk', keyIdOnly, undefined, '', `arn:aws-cn:kms:us-east-1:${sim.accountId}:key/${keyIdOnly}`, `arn:aws:kms:us-east-1:${sim.accountId}:key/*`]) {
      await expect(client.generateDataKey({ keyId: keyId as string })).rejects.toThrow(TypeError);
      await expect(client.generateDataKeyPair({ keyId: keyId as string, keyPairSpec: 'ECC_NIST_P256' })).rejects.toThrow(TypeError);
      await expect(client.decrypt({ keyId: keyId as string, ciphertextBlob: new Uint8Array(8) })).rejects.toThrow(TypeError);
      await expect(client.deriveSharedSecret({ keyId: keyId as string, publicKey: peerSpki() })).rejects.toThrow(TypeError);
    }
    await expect(client.generateDataKey({ keyId: 'alias/confidential-workflow-tsk' })).rejects.toThrow(/bare alias or key id is resolved in whatever account the credentials belong to, and the parent serves those credentials/);
    await expect(client.generateDataKey({ keyId: `arn:aws-cn:kms:us-east-1:${sim.accountId}:key/${keyIdOnly}` })).rejects.toThrow(/region us-east-1 belongs to partition aws, not aws-cn/);
    expect(sim.audit.length).toBe(calls); // KMS never saw these
  });

  it('fails with ERR_KMS_WRONG_REGION when the ARN names another region than the client', async () => {
    const west = symmetricKey.replace(':us-east-1:', ':us-west-2:');
    await expect(recipientClient().generateDataKey({ keyId: west })).rejects.toMatchObject({ code: 'ERR_KMS_WRONG_REGION' });
  });

  it('sends the ARN as KeyId and refuses an answer for another key (ERR_KMS_KEY_MISMATCH), zeroing the envelope unopened', async () => {
    const other = (await admin.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
    const foreign = [other, symmetricKey.replace(`:${sim.accountId}:`, ':444455556666:'), symmetricKey.replace(':us-east-1:', ':us-west-2:'), symmetricKey.replace('arn:aws:', 'arn:aws-cn:'), 'alias/whatever', undefined];
    for (const keyId of foreign) {
      const kms = new KMSClient(kmsClientConfig(sim, sim.principal('user/admin')));
      let sent: string | undefined;
      let envelope: Uint8Array | undefined;
      kms.middlewareStack.add(
        (next) => async (args) => {
          sent = (args.input as { KeyId?: string }).KeyId;
          const result = await next(args);
          const out = result.output as { KeyId?: string; CiphertextForRecipient?: Uint8Array };
          envelope = out.CiphertextForRecipient;
          out.KeyId = keyId;
          return result;
        },
        { step: 'initialize', name: 'answerForAnotherKey' },
      );
      await expect(recipientClient(kms).generateDataKey({ keyId: symmetricKey })).rejects.toMatchObject({ code: 'ERR_KMS_KEY_MISMATCH', message: expect.stringContaining(`not the pinned ${symmetricKey}`) });
      expect(sent).toBe(symmetricKey);
      expect(envelope!.length).toBeGreaterThan(100);
      expect(envelope!.every((b) => b === 0)).toBe(true);
    }
  });

  it('accepts an alias ARN: KMS resolves it, and the answer must name the same partition, region and account', async () => {
    const alias = `alias/pinned-${Date.now()}`;
    const { CreateAliasCommand } = await import('@aws-sdk/client-kms');
    await admin.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: symmetricKey.split('/').at(-1)! }));
    const r = await recipientClient().generateDataKey({ keyId: `arn:aws:kms:us-east-1:${sim.accountId}:${alias}` });
    expect(r.response.KeyId).toBe(symmetricKey);
    r.plaintext.fill(0);
  });
});

describe('renamed options', () => {
  it('a call with the old `timeout` is a TypeError naming `timeoutMs`, before anything is sent', async () => {
    const calls = sim.audit.length;
    await expect(recipientClient().generateRandom({ numberOfBytes: 8 }, { timeout: 5 } as never)).rejects.toThrow(/timeout was renamed timeoutMs/);
    expect(sim.audit.length).toBe(calls);
  });
});
