import { CreateKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTrustedSessionKeyClient, getTrustedSessionKey, type TrustedSessionKeyClientOptions } from '../../src/kms/index.js';
import { buildKeyPolicy } from '../../src/parent/key-policy.js';
import { createSimulatedEnclave, createSimulatedNsm, kmsClientConfig, startKmsSimulator, type KmsSimulator } from '../../src/testing/index.js';
import { client, knownDataKey } from '../helpers/kms.js';

const enclave = createSimulatedEnclave();
let sim: KmsSimulator;
let admin: KMSClient;
let blob: Uint8Array;
let tskPlaintext: Uint8Array;
let keyArn: string;

beforeAll(async () => {
  sim = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor] });
  admin = client(sim, sim.principal('user/admin'));
  const policy = buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384 });
  keyArn = (await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(policy) }))).KeyMetadata!.Arn!;
  const dk = await knownDataKey(admin, enclave, { KeyId: keyArn });
  tskPlaintext = dk.Plaintext!;
  blob = dk.CiphertextBlob!;
});
afterAll(() => sim.close());

const decrypts = () => sim.audit.filter((e) => e.eventName === 'Decrypt').length;

/** Client options as an enclave service would give them: region, the role's credentials, a request handler, the NSM. */
function clientOptions(overrides: Partial<TrustedSessionKeyClientOptions> = {}): TrustedSessionKeyClientOptions {
  const config = kmsClientConfig(sim, sim.principal('EnclaveInstanceRole'));
  return {
    region: sim.region,
    credentials: config.credentials,
    requestHandler: config.requestHandler,
    nsm: createSimulatedNsm(enclave),
    attestationTrustAnchors: [enclave.trustAnchor],
    retry: { baseDelayMs: 5, maxDelayMs: 20 },
    ...overrides,
  };
}

describe('createTrustedSessionKeyClient', () => {
  it('get() returns the TSK with the timings of its KMS round trip on the result', async () => {
    const tskClient = createTrustedSessionKeyClient(clientOptions());
    await tskClient.prepare();
    const tsk = await tskClient.get({ ciphertextBlob: blob, keyId: keyArn });
    expect(tsk.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
    expect(tsk.metadata).toMatchObject({ keyArn, pcr0: enclave.imageSha384 });
    const t = tsk.metadata.timings!;
    expect(t.attempts).toBe(1);
    for (const step of ['keyPairMs', 'attestationMs', 'verifyMs', 'kmsMs', 'cmsMs'] as const) expect(t[step]).toBeGreaterThanOrEqual(0);
    expect(Object.isFrozen(t)).toBe(true);
    tsk.dispose();
    await tskClient.close();
  });

  it('keeps all state in the instance: two clients share no cache, and clear() empties only its own', async () => {
    const a = createTrustedSessionKeyClient(clientOptions({ cacheTtlMs: 60_000 }));
    const b = createTrustedSessionKeyClient(clientOptions({ cacheTtlMs: 60_000 }));
    const count = decrypts();
    (await a.get({ ciphertextBlob: blob, keyId: keyArn })).dispose();
    (await a.get({ ciphertextBlob: blob, keyId: keyArn })).dispose(); // a's cache
    expect(decrypts() - count).toBe(1);
    (await b.get({ ciphertextBlob: blob, keyId: keyArn })).dispose(); // b has its own
    expect(decrypts() - count).toBe(2);
    // The module-level convenience function has its own (default) state too.
    const role = kmsClientConfig(sim, sim.principal('EnclaveInstanceRole'));
    (await getTrustedSessionKey({ ...clientOptions(), requestHandler: role.requestHandler, ciphertextBlob: blob, keyId: keyArn })).dispose();
    expect(decrypts() - count).toBe(3);
    b.clear();
    (await b.get({ ciphertextBlob: blob, keyId: keyArn })).dispose();
    (await a.get({ ciphertextBlob: blob, keyId: keyArn })).dispose(); // still cached in a
    expect(decrypts() - count).toBe(4);
    (await b.get({ ciphertextBlob: blob, keyId: keyArn })).dispose(); // b is still open, and caches again
    expect(decrypts() - count).toBe(4);
    await a.close();
    await b.close();
  });

  it('close() zeroes cached keys, destroys the KMS client it built, and refuses later calls with ERR_TSK_CLIENT_CLOSED', async () => {
    const options = clientOptions({ cacheTtlMs: 60_000 });
    const destroy = vi.spyOn(options.requestHandler as { destroy(): void }, 'destroy');
    const tskClient = createTrustedSessionKeyClient(options);
    const fill = vi.spyOn(Uint8Array.prototype, 'fill');
    let zeroedOnClose: Uint8Array[] = [];
    try {
      (await tskClient.get({ ciphertextBlob: blob, keyId: keyArn })).dispose();
      fill.mockClear();
      await tskClient.close();
      zeroedOnClose = fill.mock.contexts.filter((buf, i) => (buf as Uint8Array).length === 32 && fill.mock.calls[i]![0] === 0) as Uint8Array[];
    } finally {
      fill.mockRestore();
    }
    expect(zeroedOnClose).toHaveLength(1); // the cached copy
    expect(destroy).toHaveBeenCalled();
    await expect(tskClient.get({ ciphertextBlob: blob, keyId: keyArn })).rejects.toMatchObject({ code: 'ERR_TSK_CLIENT_CLOSED' });
    await expect(tskClient.prepare()).rejects.toMatchObject({ code: 'ERR_TSK_CLIENT_CLOSED' });
    await tskClient.close(); // idempotent
  });

  it('does not destroy a KMS client it was given', async () => {
    const kms = client(sim, sim.principal('EnclaveInstanceRole'));
    const destroy = vi.spyOn(kms, 'destroy');
    const tskClient = createTrustedSessionKeyClient({ kms, nsm: createSimulatedNsm(enclave), attestationTrustAnchors: [enclave.trustAnchor] });
    (await tskClient.get({ ciphertextBlob: blob, keyId: keyArn })).dispose();
    await tskClient.close();
    expect(destroy).not.toHaveBeenCalled();
    kms.destroy();
  });

  describe('one clock for the cache, the deadline, retries and the self-check', () => {
    it('the cache expires by the clock (a later clock reading goes to KMS even before the timer fires)', async () => {
      let now = Date.now();
      const timers = { setTimeout: () => ({}), clearTimeout: () => {} }; // the expiry timer never fires here
      const tskClient = createTrustedSessionKeyClient(clientOptions({ cacheTtlMs: 60_000, clock: () => new Date(now), timers }));
      const count = decrypts();
      (await tskClient.get({ ciphertextBlob: blob, keyId: keyArn })).dispose();
      now += 59_000;
      const cached = await tskClient.get({ ciphertextBlob: blob, keyId: keyArn });
      expect(decrypts() - count).toBe(1);
      expect(cached.metadata.obtainedAt.getTime()).toBe(now - 59_000);
      cached.dispose();
      now += 2_000;
      (await tskClient.get({ ciphertextBlob: blob, keyId: keyArn })).dispose();
      expect(decrypts() - count).toBe(2);
      await tskClient.close();
    });

    it('the self-check reads the clock: a clock past the certificates\' validity fails with the attestation code', async () => {
      const tskClient = createTrustedSessionKeyClient(clientOptions({ clock: () => new Date(Date.now() + 400 * 86_400_000) }));
      await expect(tskClient.get({ ciphertextBlob: blob, keyId: keyArn })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_CERT_EXPIRED' });
      await tskClient.close();
    });

    it('retries stop at the deadline measured on the clock', async () => {
      // The clock runs 10 s per reading: the 15 s deadline is gone after the first failure, whatever the wall clock says.
      let now = Date.now();
      const clock = () => new Date((now += 10_000));
      sim.faults.internalError(50, 500, 'Decrypt');
      try {
        const options = clientOptions({ clock, timeoutMs: 15_000, retry: { baseDelayMs: 1, maxDelayMs: 1, maxAttempts: 40 } });
        const sent = vi.spyOn(options.requestHandler as { handle(...args: unknown[]): unknown }, 'handle');
        const tskClient = createTrustedSessionKeyClient(options);
        await expect(tskClient.get({ ciphertextBlob: blob, keyId: keyArn })).rejects.toMatchObject({ code: 'ERR_KMS_TIMEOUT' });
        // Decrypt attempts only (the key audit's three reads go through the same handler).
        const decrypts = sent.mock.calls.filter(([request]) => Object.values((request as { headers: Record<string, string> }).headers).includes('TrentService.Decrypt')).length;
        expect(decrypts).toBeGreaterThanOrEqual(1);
        expect(decrypts).toBeLessThanOrEqual(2); // a wall-clock deadline would have allowed all 40
        await tskClient.close();
      } finally {
        sim.faults.clear();
      }
    });
  });

  it('validates options at construction, and names the renamed ones', () => {
    expect(() => createTrustedSessionKeyClient({ region: 'Mars' })).toThrow(TypeError);
    expect(() => createTrustedSessionKeyClient(clientOptions({ cacheTtlMs: -1 }))).toThrow(/cacheTtlMs/);
    expect(() => createTrustedSessionKeyClient(clientOptions({ timeoutMs: 0 }))).toThrow(/timeoutMs/);
    expect(() => createTrustedSessionKeyClient({ ...clientOptions(), cacheTtl: 5 } as never)).toThrow(/cacheTtl was renamed cacheTtlMs/);
    expect(() => createTrustedSessionKeyClient({ ...clientOptions(), timeout: 5 } as never)).toThrow(/timeout was renamed timeoutMs/);
    expect(() => createTrustedSessionKeyClient(clientOptions({ rsaModulusLength: 1024 as never }))).toThrow(TypeError);
  });
});

describe('close() while a get is in flight', () => {
  it('a get started just before close() gets ERR_TSK_CLIENT_CLOSED, and nothing is opened after close', async () => {
    const options = clientOptions();
    const handle = vi.spyOn(options.requestHandler as { handle(...args: unknown[]): unknown }, 'handle');
    const tskClient = createTrustedSessionKeyClient(options);
    const pending = tskClient.get({ ciphertextBlob: blob, keyId: keyArn });
    await tskClient.close();
    await expect(pending).rejects.toMatchObject({ code: 'ERR_TSK_CLIENT_CLOSED' });
    expect(handle).not.toHaveBeenCalled();
  });

  it('the caller gets ERR_TSK_CLIENT_CLOSED instead of a key (before, a closed client still handed one out)', async () => {
    const tskClient = createTrustedSessionKeyClient(clientOptions({ cacheTtlMs: 60_000 }));
    sim.faults.latency(300);
    try {
      const pending = tskClient.get({ ciphertextBlob: blob, keyId: keyArn });
      await new Promise((r) => setTimeout(r, 50));
      await tskClient.close();
      await expect(pending).rejects.toMatchObject({ code: 'ERR_TSK_CLIENT_CLOSED' });
    } finally {
      sim.faults.clear();
    }
  });
});
