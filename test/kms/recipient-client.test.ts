import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto';
import { CreateKeyCommand, DecryptCommand, GetPublicKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRecipientClient } from '../../src/kms/recipient.js';
import { createNsmClient } from '../../src/nsm/client.js';
import { createSimulatedEnclave, createSimulatedNsm, kmsClientConfig, startKmsSimulator, type KmsSimulator } from '../../src/testing/index.js';
import '../helpers/kms.js';

const enclave = createSimulatedEnclave();
let sim: KmsSimulator;
let admin: KMSClient;
let symmetricKey: string;
let agreementKey: string;

beforeAll(async () => {
  sim = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor] });
  admin = new KMSClient(kmsClientConfig(sim, sim.principal('user/admin')));
  symmetricKey = (await admin.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
  agreementKey = (await admin.send(new CreateKeyCommand({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'KEY_AGREEMENT' }))).KeyMetadata!.KeyId!;
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

  it('catches a broken NSM before calling KMS (the self-check)', async () => {
    const calls = sim.audit.length;
    const liar = createSimulatedNsm(enclave);
    const broken = { request: liar.request, attestation: async () => enclave.attest({ publicKey: new Uint8Array([1, 2, 3]) }) } as never;
    await expect(recipientClient(admin, broken).generateRandom({ numberOfBytes: 8 })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_PUBLIC_KEY_MISMATCH', message: /our own attestation document failed the offline check/ });
    const stale = createSimulatedEnclave({ pki: enclave.pki, clock: () => new Date(Date.now() - 4 * 3_600_000) });
    await expect(recipientClient(admin, createNsmClient(createSimulatedNsm(stale))).generateRandom({ numberOfBytes: 8 })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_CERT_EXPIRED' });
    expect(sim.audit.length).toBe(calls); // KMS never saw these
  });

  it('validates its construction', () => {
    expect(() => createRecipientClient({ kms: {} as never, nsm: createNsmClient(createSimulatedNsm(enclave)) })).toThrow(TypeError);
    expect(() => createRecipientClient({ kms: admin, nsm: createNsmClient(createSimulatedNsm(enclave)), rsaModulusLength: 1024 as never })).toThrow(TypeError);
  });
});
