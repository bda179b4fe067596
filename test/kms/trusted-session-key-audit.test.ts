import { constants, createPublicKey, publicEncrypt, randomBytes } from 'node:crypto';
import { CreateAliasCommand, CreateKeyCommand, GenerateDataKeyCommand, GetParametersForImportCommand, ImportKeyMaterialCommand, PutKeyPolicyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTrustedSessionKeyClient, getTrustedSessionKey, NitroEnclaveError, type TrustedSessionKeyClientOptions } from '../../src/kms/index.js';
import type { PolicyDocument } from '../../src/internal/iam-policy.js';
import { createSimulatedEnclave, createSimulatedNsm, defaultPrincipals, kmsClientConfig, startKmsSimulator, type KmsSimulator } from '../../src/testing/index.js';
import { auditablePolicy } from '../helpers/audited-policy.js';
import { answerForKey, client, gate, interceptedClient, type Intercept } from '../helpers/kms.js';
import { seedAvailable, seedInstanceRolePolicy, seedKeyPolicy } from '../helpers/seed.js';

const enclave = createSimulatedEnclave();
const account = '111122223333';
let sim: KmsSimulator;
let admin: KMSClient;

/** A provisioned TSK: the key, its blob, and (for the test only) the plaintext. */
interface Provisioned {
  keyArn: string;
  keyId: string;
  blob: Uint8Array;
  plaintext: Uint8Array;
}

/**
 * Creates a key, learns a data key under the simulator's default policy (only so the test can
 * compare), then puts `policy`: under a policy that passes the audit nobody but the enclave could
 * have learnt it.
 */
async function provision(policy: PolicyDocument | string, extra: { MultiRegion?: boolean; Origin?: 'EXTERNAL' } = {}): Promise<Provisioned> {
  const m = (await admin.send(new CreateKeyCommand(extra))).KeyMetadata!;
  if (extra.Origin === 'EXTERNAL') {
    // The importer wraps 32 bytes of its own for KMS, and keeps them: it can open every blob of this key offline.
    const params = await admin.send(new GetParametersForImportCommand({ KeyId: m.KeyId!, WrappingAlgorithm: 'RSAES_OAEP_SHA_256', WrappingKeySpec: 'RSA_2048' }));
    const material = randomBytes(32);
    const wrapped = publicEncrypt({ key: createPublicKey({ key: Buffer.from(params.PublicKey!), format: 'der', type: 'spki' }), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, material);
    await admin.send(new ImportKeyMaterialCommand({ KeyId: m.KeyId!, ImportToken: params.ImportToken, EncryptedKeyMaterial: wrapped, ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE' }));
  }
  const dk = await admin.send(new GenerateDataKeyCommand({ KeyId: m.Arn!, KeySpec: 'AES_256' }));
  await admin.send(new PutKeyPolicyCommand({ KeyId: m.KeyId!, PolicyName: 'default', Policy: typeof policy === 'string' ? policy : JSON.stringify(policy) }));
  return { keyArn: m.Arn!, keyId: m.KeyId!, blob: dk.CiphertextBlob!, plaintext: dk.Plaintext! };
}

let good: Provisioned;
let aliasArn: string;

beforeAll(async () => {
  const principals = defaultPrincipals(account);
  // The enclave role as the seed's step 4 configures it (IAM: kms:Decrypt), plus the audit's reads.
  const role = principals.find((p) => p.arn.includes('EnclaveInstanceRole'))!;
  role.identityPolicies = [{ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:GetKeyPolicy', 'kms:ListGrants'], Resource: '*' }] }];
  sim = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor], principals });
  admin = client(sim, sim.principal('user/admin'));
  good = await provision(auditablePolicy(account, enclave.imageSha384));
  await admin.send(new CreateAliasCommand({ AliasName: 'alias/audited-tsk', TargetKeyId: good.keyId }));
  aliasArn = `arn:aws:kms:us-east-1:${account}:alias/audited-tsk`;
});
afterAll(async () => {
  admin.destroy();
  await sim.close();
});

const events = (name: string) => sim.audit.filter((e) => e.eventName === name).length;
const auditCalls = () => events('DescribeKey') + events('GetKeyPolicy') + events('ListGrants');

function clientOptions(overrides: Partial<TrustedSessionKeyClientOptions> = {}): TrustedSessionKeyClientOptions {
  const config = kmsClientConfig(sim, sim.principal('EnclaveInstanceRole'));
  return { region: sim.region, credentials: config.credentials, requestHandler: config.requestHandler, nsm: createSimulatedNsm(enclave), attestationTrustAnchors: [enclave.trustAnchor], retry: { baseDelayMs: 5, maxDelayMs: 20 }, ...overrides };
}

async function failure(p: Promise<unknown>): Promise<NitroEnclaveError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof NitroEnclaveError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

describe('the TSK client audits its key before trusting what KMS releases', () => {
  it('passes the legitimate key, pinned by key ARN and by alias ARN, and audits once per client (three reads)', async () => {
    for (const keyId of [good.keyArn, aliasArn]) {
      const tskClient = createTrustedSessionKeyClient(clientOptions());
      const before = auditCalls();
      for (let i = 0; i < 3; i++) {
        const tsk = await tskClient.get({ ciphertextBlob: good.blob, keyId });
        expect(tsk.keyObject.export()).toEqual(Buffer.from(good.plaintext));
        expect(tsk.metadata.keyArn).toBe(good.keyArn);
        tsk.dispose();
      }
      expect(auditCalls() - before).toBe(3);
      await tskClient.close();
    }
  });

  it('audits again once keyAuditIntervalMs has passed on the clock, and a cached key is not served past it', async () => {
    let now = Date.now();
    const tskClient = createTrustedSessionKeyClient(clientOptions({ clock: () => new Date(now), keyAuditIntervalMs: 10_000, cacheTtlMs: 60_000 }));
    const audits = events('GetKeyPolicy');
    const decrypts = events('Decrypt');
    (await tskClient.get({ ciphertextBlob: good.blob, keyId: good.keyArn })).dispose();
    now += 9_000;
    (await tskClient.get({ ciphertextBlob: good.blob, keyId: good.keyArn })).dispose(); // cached, audit fresh
    expect([events('GetKeyPolicy') - audits, events('Decrypt') - decrypts]).toEqual([1, 1]);
    now += 2_000;
    (await tskClient.get({ ciphertextBlob: good.blob, keyId: good.keyArn })).dispose(); // audit stale: audit and Decrypt again
    expect([events('GetKeyPolicy') - audits, events('Decrypt') - decrypts]).toEqual([2, 2]);
    await tskClient.close();
  });

  it.skipIf(!seedAvailable)("refuses a key under the seed's verbatim policy with ERR_KMS_KEY_UNSAFE, after KMS released it: the envelope is zeroed unopened", async () => {
    const seed = await provision(seedKeyPolicy(account, enclave.imageSha384));
    // The seed's own step-4 role policy, plus the audit's reads.
    expect(seedInstanceRolePolicy(seed.keyArn)).toMatchObject({ Statement: [{ Action: ['kms:Decrypt'] }] });
    const kms = client(sim, sim.principal('EnclaveInstanceRole'));
    const seen = answerForKey(kms, seed.keyArn); // names the same key: only keeps the envelope for the check below
    const tskClient = createTrustedSessionKeyClient({ kms, nsm: createSimulatedNsm(enclave), attestationTrustAnchors: [enclave.trustAnchor] });
    const decrypts = events('Decrypt');
    const err = await failure(tskClient.get({ ciphertextBlob: seed.blob, keyId: seed.keyArn }));
    expect(err.code).toBe('ERR_KMS_KEY_UNSAFE');
    expect(err.message).toMatch(new RegExp(`^KMS key ${seed.keyArn} is not safe to trust with a Trusted Session Key: kms:\\w+ is allowed without attestation via "Enable IAM User Permissions" \\(for arn:aws:iam::${account}:root\\)`));
    expect(err.message).toContain(`kms:Decrypt is allowed without attestation via "Enable IAM User Permissions" (for arn:aws:iam::${account}:root)`);
    expect(err.message).toContain(`kms:Encrypt is allowed without attestation via "Enable IAM User Permissions"`);
    expect(events('Decrypt') - decrypts).toBe(1); // KMS did release it…
    expect(seen.envelope!.length).toBeGreaterThan(0);
    expect(seen.envelope!.every((b) => b === 0)).toBe(true); // …and it was zeroed, never opened
    // keyAudit: false (dangerous, documented) adopts the same key: the audit is what refuses it.
    const unaudited = createTrustedSessionKeyClient({ kms, nsm: createSimulatedNsm(enclave), attestationTrustAnchors: [enclave.trustAnchor], keyAudit: false });
    const tsk = await unaudited.get({ ciphertextBlob: seed.blob, keyId: seed.keyArn });
    expect(tsk.keyObject.export()).toEqual(Buffer.from(seed.plaintext));
    tsk.dispose();
    await unaudited.close();
    await tskClient.close();
    kms.destroy();
  });

  it('refuses a multi-Region key; allowMultiRegionKey with a policy that denies replication accepts it', async () => {
    const mrk = await provision(auditablePolicy(account, enclave.imageSha384), { MultiRegion: true });
    const tskClient = createTrustedSessionKeyClient(clientOptions());
    const err = await failure(tskClient.get({ ciphertextBlob: mrk.blob, keyId: mrk.keyArn }));
    expect(err.code).toBe('ERR_KMS_KEY_UNSAFE');
    expect(err.message).toContain('it is a multi-Region key');
    await tskClient.close();
    const closed = auditablePolicy(account, enclave.imageSha384, { extra: [{ Sid: 'Deny Replication', Effect: 'Deny', Principal: { AWS: '*' }, Action: 'kms:ReplicateKey', Resource: '*' }] });
    await admin.send(new PutKeyPolicyCommand({ KeyId: mrk.keyId, PolicyName: 'default', Policy: JSON.stringify(closed) }));
    const optedIn = createTrustedSessionKeyClient(clientOptions({ allowMultiRegionKey: true }));
    const tsk = await optedIn.get({ ciphertextBlob: mrk.blob, keyId: mrk.keyArn });
    expect(tsk.keyObject.export()).toEqual(Buffer.from(mrk.plaintext));
    tsk.dispose();
    await optedIn.close();
  });

  it('refuses a key whose material was imported (Origin EXTERNAL): the importer kept a copy', async () => {
    const imported = await provision(auditablePolicy(account, enclave.imageSha384), { Origin: 'EXTERNAL' });
    const tskClient = createTrustedSessionKeyClient(clientOptions());
    const err = await failure(tskClient.get({ ciphertextBlob: imported.blob, keyId: imported.keyArn }));
    expect(err.code).toBe('ERR_KMS_KEY_UNSAFE');
    expect(err.message).toBe(`KMS key ${imported.keyArn} is not safe to trust with a Trusted Session Key: its key material was imported (Origin EXTERNAL): whoever kept a copy of it can decrypt every blob of this key outside KMS, where no key policy applies`);
    await tskClient.close();
    // The same key, the audit off (dangerous): adopted.
    const unaudited = createTrustedSessionKeyClient(clientOptions({ keyAudit: false }));
    const tsk = await unaudited.get({ ciphertextBlob: imported.blob, keyId: imported.keyArn });
    expect(tsk.keyObject.export()).toEqual(Buffer.from(imported.plaintext));
    tsk.dispose();
    await unaudited.close();
  });

  it('runs alongside the Decrypt: both requests are in flight at once (either order alone would never finish)', async () => {
    const decryptSent = gate();
    const policyReadSent = gate();
    const intercept: Intercept = async (operation, forward, signal) => {
      if (operation === 'Decrypt') {
        decryptSent.open();
        await policyReadSent.wait(signal);
      }
      if (operation === 'GetKeyPolicy') {
        policyReadSent.open();
        await decryptSent.wait(signal);
      }
      return forward();
    };
    const kms = interceptedClient(sim, sim.principal('EnclaveInstanceRole'), intercept);
    const tskClient = createTrustedSessionKeyClient({ kms, nsm: createSimulatedNsm(enclave), attestationTrustAnchors: [enclave.trustAnchor], timeoutMs: 10_000 });
    const tsk = await tskClient.get({ ciphertextBlob: good.blob, keyId: good.keyArn });
    expect(tsk.keyObject.export()).toEqual(Buffer.from(good.plaintext));
    tsk.dispose();
    await tskClient.close();
    kms.destroy();
  });

  it('an answer for another key than the audited one (an alias re-pointed in between) is zeroed unopened', async () => {
    const other = await provision(auditablePolicy(account, enclave.imageSha384));
    const kms = client(sim, sim.principal('EnclaveInstanceRole'));
    const seen = answerForKey(kms, other.keyArn); // every answer names `other`: DescribeKey's metadata is untouched, Decrypt's KeyId is not
    const tskClient = createTrustedSessionKeyClient({ kms, nsm: createSimulatedNsm(enclave), attestationTrustAnchors: [enclave.trustAnchor] });
    const err = await failure(tskClient.get({ ciphertextBlob: good.blob, keyId: aliasArn }));
    expect(err.code).toBe('ERR_KMS_KEY_UNSAFE');
    expect(err.message).toBe(`KMS Decrypt answered for key ${other.keyArn}, but the audit examined ${good.keyArn} (was the alias re-pointed?): the key that answered is not audited, so what it released was zeroed unused; the next request audits again`);
    expect(seen.envelope!.every((b) => b === 0)).toBe(true);
    await tskClient.close();
    kms.destroy();
  });

  it('getTrustedSessionKey audits too, and a call without the audit never joins (or is served) one with it', async () => {
    const seed = seedAvailable ? await provision(seedKeyPolicy(account, enclave.imageSha384)) : await provision({ Version: '2012-10-17', Statement: [{ Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: 'kms:*', Resource: '*' }] });
    const options = { ...clientOptions(), ciphertextBlob: seed.blob, keyId: seed.keyArn, cacheTtlMs: 60_000 };
    const [audited, unaudited] = await Promise.allSettled([getTrustedSessionKey(options), getTrustedSessionKey({ ...options, keyAudit: false })]);
    expect(audited).toMatchObject({ status: 'rejected', reason: { code: 'ERR_KMS_KEY_UNSAFE' } });
    expect(unaudited.status).toBe('fulfilled');
    // The unaudited call cached its key; an audited call is not served from that cache.
    await expect(getTrustedSessionKey(options)).rejects.toMatchObject({ code: 'ERR_KMS_KEY_UNSAFE' });
    if (unaudited.status === 'fulfilled') unaudited.value.dispose();
  });

  it('validates the audit options with TypeError', () => {
    expect(() => createTrustedSessionKeyClient(clientOptions({ keyAudit: 'no' as never }))).toThrow('keyAudit must be a boolean');
    expect(() => createTrustedSessionKeyClient(clientOptions({ keyAuditIntervalMs: 0 }))).toThrow('keyAuditIntervalMs must be a positive number of ms');
    expect(() => createTrustedSessionKeyClient(clientOptions({ allowMultiRegionKey: 1 as never }))).toThrow('allowMultiRegionKey must be a boolean');
  });
});

describe('the audit belongs to the requests that wait for it', () => {
  it('a caller that leaves (signal) cancels the audit it started: its reads are aborted, and the next call audits afresh', async () => {
    const abort = new AbortController();
    let policySignal: AbortSignal | undefined;
    const held: Intercept = (operation, forward, signal) => {
      if (operation !== 'GetKeyPolicy' || policySignal) return forward(); // holds the first policy read only
      policySignal = signal;
      abort.abort();
      return new Promise((_, reject) => signal?.addEventListener('abort', () => reject(Object.assign(new Error('Request aborted'), { name: 'AbortError' })), { once: true }));
    };
    const kms = interceptedClient(sim, sim.principal('EnclaveInstanceRole'), held);
    const tskClient = createTrustedSessionKeyClient({ kms, nsm: createSimulatedNsm(enclave), attestationTrustAnchors: [enclave.trustAnchor] });
    const err = await failure(tskClient.get({ ciphertextBlob: good.blob, keyId: good.keyArn, signal: abort.signal }));
    expect(err.code).toBe('ERR_KMS_ABORTED');
    for (let i = 0; i < 200 && policySignal?.aborted !== true; i++) await new Promise((r) => setTimeout(r, 25));
    expect(policySignal?.aborted).toBe(true); // not left running to its 30 s deadline
    // A cancelled audit is not remembered: the same client's next call audits again, and passes.
    const before = events('GetKeyPolicy');
    (await tskClient.get({ ciphertextBlob: good.blob, keyId: good.keyArn })).dispose();
    expect(events('GetKeyPolicy') - before).toBe(1);
    await tskClient.close();
    kms.destroy();
  });
});
