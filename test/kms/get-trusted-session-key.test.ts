import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { CreateAliasCommand, CreateKeyCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { clearTrustedSessionKeyCache, getTrustedSessionKey, lastTrustedSessionKeyTimings, prepareTrustedSessionKey, TrustedSessionKey, type GetTrustedSessionKeyOptions } from '../../src/kms/index.js';
import { buildKeyPolicy } from '../../src/kms/key-policy.js';
import { buildRecipientEnvelope, createSimulatedEnclave, createSimulatedNsm, startKmsSimulator, startVsockProxyStandIn, type KmsSimulator, type ProxyStandIn } from '../../src/testing/index.js';
import { connectSocket } from '../../src/vsock/index.js';
import { createStreamHttpsAgent } from '../../src/vsock/agent.js';
import { client, rsaPair } from '../helpers/kms.js';

const enclave = createSimulatedEnclave();
const tmp = mkdtempSync(join(tmpdir(), 'nes-tsk-'));
const proxyPath = join(tmp, 'vsock-proxy.sock');
let sim: KmsSimulator;
let proxy: ProxyStandIn;
let tskPlaintext: Uint8Array;
let blob: Uint8Array;
let keyArn: string;

beforeAll(async () => {
  sim = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor] });
  proxy = await startVsockProxyStandIn({ listen: { path: proxyPath }, target: { port: sim.port } });
  const admin = client(sim, sim.principal('user/admin'));
  const policy = buildKeyPolicy({ accountId: sim.accountId, enclaveRole: 'EnclaveInstanceRole', pcr0: enclave.imageSha384 });
  // Let the role read the policy too, so AccessDenied diagnostics can name the failing condition.
  policy.Statement.push({ Sid: 'Let the enclave role read the policy', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${sim.accountId}:role/EnclaveInstanceRole` }, Action: 'kms:GetKeyPolicy', Resource: '*' });
  const { KeyMetadata } = await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(policy) }));
  keyArn = KeyMetadata!.Arn!;
  await admin.send(new CreateAliasCommand({ AliasName: 'alias/confidential-workflow-tsk', TargetKeyId: KeyMetadata!.KeyId }));
  // The test learns the plaintext (GenerateDataKey) only to check what the enclave receives.
  const dk = await admin.send(new GenerateDataKeyCommand({ KeyId: 'alias/confidential-workflow-tsk', KeySpec: 'AES_256', EncryptionContext: { app: 'agents' } }));
  tskPlaintext = dk.Plaintext!;
  blob = dk.CiphertextBlob!;
});
afterAll(async () => {
  await proxy.close();
  await sim.close();
  rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  clearTrustedSessionKeyCache();
  sim.faults.clear();
});

/** Production-shaped options: role credentials, the native relay to the proxy stand-in (vsock's code path), TLS to kms.<region>. */
function options(overrides: Partial<GetTrustedSessionKeyOptions> = {}, e = enclave): GetTrustedSessionKeyOptions {
  const role = sim.principal('EnclaveInstanceRole');
  return {
    ciphertextBlob: blob,
    keyId: 'alias/confidential-workflow-tsk',
    encryptionContext: { app: 'agents' },
    region: 'us-east-1',
    credentials: { accessKeyId: role.accessKeyId, secretAccessKey: role.secretAccessKey, sessionToken: role.sessionToken! },
    transport: { kind: 'custom', connect: () => connectSocket({ family: 'unix', path: proxyPath }) },
    tlsCa: sim.caPem,
    nsm: createSimulatedNsm(e),
    attestationTrustAnchors: [e.trustAnchor],
    retry: { baseDelayMs: 5, maxDelayMs: 20 },
    ...overrides,
  };
}

const decrypts = () => sim.audit.filter((e) => e.eventName === 'Decrypt').length;

async function codeOf(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('expected a rejection');
}

describe('getTrustedSessionKey against the KMS simulator, through the relay and the vsock-proxy stand-in', () => {
  it('releases the TSK to the right enclave, attested, over TLS to kms.us-east-1.amazonaws.com', async () => {
    const before = proxy.connections;
    const tsk = await getTrustedSessionKey(options());
    expect(tsk).toBeInstanceOf(TrustedSessionKey);
    expect(tsk.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
    expect(tsk.metadata).toMatchObject({ keyArn, pcr0: enclave.imageSha384, moduleId: enclave.moduleId });
    expect(proxy.connections).toBeGreaterThan(before);
    const event = sim.audit.filter((e) => e.eventName === 'Decrypt').at(-1)!;
    expect(event.additionalEventData?.recipient.attestationDocumentEnclaveImageDigest).toBe(enclave.imageSha384);
    expect(event.errorCode).toBeUndefined();
    const timings = lastTrustedSessionKeyTimings()!;
    expect(timings.attempts).toBe(1);
    tsk.dispose();
  });

  it('accepts the blob as base64 text and as a file path', async () => {
    const path = join(tmp, 'tsk.bin');
    writeFileSync(path, blob);
    for (const o of [{ ciphertextBlob: Buffer.from(blob).toString('base64') }, { ciphertextBlob: undefined, ciphertextBlobPath: path }]) {
      const tsk = await getTrustedSessionKey(options(o));
      expect(tsk.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
    }
  });

  it('encrypts and decrypts with the versioned AES-256-GCM envelope, and zeroes on dispose', async () => {
    const tsk = await getTrustedSessionKey(options());
    const aad = new TextEncoder().encode('agent-7');
    const sealed = tsk.encrypt(new TextEncoder().encode('hello agents'), aad);
    expect(sealed[0]).toBe(2); // envelope v2 (XAES-256-GCM)
    expect(Buffer.from(sealed.subarray(1, 9)).toString('hex')).toBe(tsk.metadata.keyId);
    expect(new TextDecoder().decode(tsk.decrypt(sealed, aad))).toBe('hello agents');
    expect(() => tsk.decrypt(sealed)).toThrow(expect.objectContaining({ code: 'ERR_TSK_DECRYPT_FAILED' }));
    const tampered = new Uint8Array(sealed);
    tampered[30]! ^= 1;
    expect(() => tsk.decrypt(tampered, aad)).toThrow(expect.objectContaining({ code: 'ERR_TSK_DECRYPT_FAILED' }));
    expect(() => tsk.decrypt(sealed.subarray(0, 20), aad)).toThrow(expect.objectContaining({ code: 'ERR_TSK_MALFORMED' }));
    const other = new TrustedSessionKey(new Uint8Array(32).fill(1), tsk.metadata);
    expect(() => other.decrypt(sealed, aad)).toThrow(expect.objectContaining({ code: 'ERR_TSK_WRONG_KEY' }));
    const keyBytes = tsk.keyObject.export();
    tsk.dispose();
    expect(tsk.disposed).toBe(true);
    expect(() => tsk.encrypt(new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'ERR_TSK_DISPOSED' }));
    expect(keyBytes).toHaveLength(32);
  });

  it('denies another image with ERR_KMS_ACCESS_DENIED naming this PCR0 and the condition that failed', async () => {
    const other = createSimulatedEnclave({ pcrs: { 0: 'ab'.repeat(48) }, pki: enclave.pki });
    const count = decrypts();
    const err = await codeOf(getTrustedSessionKey(options({}, other)));
    expect(err.code).toBe('ERR_KMS_ACCESS_DENIED');
    expect(err.message).toContain(`this enclave (PCR0 ${'ab'.repeat(48)})`);
    expect(err.message).toContain(`StringEqualsIgnoreCase kms:RecipientAttestation:ImageSha384 "${enclave.imageSha384}" (request: "${'ab'.repeat(48)}")`);
    expect(decrypts() - count).toBe(1); // AccessDenied is not retried
  });

  it('explains a debug-mode enclave', async () => {
    const debug = createSimulatedEnclave({ debugMode: true, pki: enclave.pki });
    const err = await codeOf(getTrustedSessionKey(options({}, debug)));
    expect(err.code).toBe('ERR_KMS_ACCESS_DENIED');
    expect(err.message).toMatch(/debug mode: its PCRs are all zero, so it can never match a kms:RecipientAttestation:ImageSha384 condition/);
  });

  it('maps invalid ciphertext, a wrong key id, a wrong region and an unreachable proxy to their own codes', async () => {
    expect((await codeOf(getTrustedSessionKey(options({ ciphertextBlob: new Uint8Array(80).fill(7) })))).code).toBe('ERR_KMS_INVALID_CIPHERTEXT');
    expect((await codeOf(getTrustedSessionKey(options({ encryptionContext: { app: 'other' } })))).code).toBe('ERR_KMS_INVALID_CIPHERTEXT');
    expect((await codeOf(getTrustedSessionKey(options({ keyId: 'alias/does-not-exist' })))).code).toBe('ERR_KMS_NOT_FOUND');
    expect((await codeOf(getTrustedSessionKey(options({ keyId: keyArn.replace('us-east-1', 'eu-west-1') })))).code).toBe('ERR_KMS_WRONG_REGION');
    const unreachable = await codeOf(getTrustedSessionKey(options({ transport: { kind: 'custom', connect: () => connectSocket({ family: 'unix', path: join(tmp, 'no-proxy.sock') }) }, retry: { maxAttempts: 2, baseDelayMs: 1 } })));
    expect(unreachable.code).toBe('ERR_VSOCK_CONNECT');
  });

  it('maps a request signed for another region to ERR_KMS_WRONG_REGION', async () => {
    const west = await startKmsSimulator({ region: 'us-west-2', trustAnchors: [enclave.trustAnchor], tlsHostnames: ['kms.us-east-1.amazonaws.com'] });
    try {
      const err = await codeOf(getTrustedSessionKey(options({ transport: { kind: 'tcp', port: west.port }, tlsCa: west.caPem })));
      expect(err.code).toBe('ERR_KMS_WRONG_REGION');
    } finally {
      await west.close();
    }
  });

  it('validates options eagerly with TypeError', async () => {
    await expect(getTrustedSessionKey(options({ region: 'mars' }))).rejects.toThrow(TypeError);
    await expect(getTrustedSessionKey(options({ rsaModulusLength: 1024 as never }))).rejects.toThrow(TypeError);
    await expect(getTrustedSessionKey(options({ ciphertextBlobPath: '/x' }))).rejects.toThrow(/exactly one/);
    await expect(getTrustedSessionKey(options({ ciphertextBlob: 'not base64!' }))).rejects.toThrow(TypeError);
  });

  it('works with 3072- and 4096-bit ephemeral keys and after prepare()', async () => {
    await prepareTrustedSessionKey({ rsaModulusLength: 3072 });
    const a = await getTrustedSessionKey(options({ rsaModulusLength: 3072 }));
    expect(a.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
    const b = await getTrustedSessionKey(options({ rsaModulusLength: 4096 }));
    expect(b.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
  });
});

describe('reliability (faults injected in the simulator)', () => {
  it('retries throttling, then succeeds', async () => {
    sim.faults.throttle(2, 'Decrypt');
    const tsk = await getTrustedSessionKey(options());
    expect(tsk.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
    expect(lastTrustedSessionKeyTimings()!.attempts).toBe(3);
  });

  it('retries 500s until the deadline and ends in ERR_KMS_TIMEOUT with bounded attempts', async () => {
    sim.faults.internalError(1000, 500, 'Decrypt');
    await prepareTrustedSessionKey(); // the deadline below is about retries, not key generation
    const count = decrypts();
    const err = await codeOf(getTrustedSessionKey(options({ timeout: 1500, retry: { baseDelayMs: 50, maxDelayMs: 100, maxAttempts: 50 } })));
    expect(err.code).toBe('ERR_KMS_TIMEOUT');
    expect(err.message).toMatch(/KMSInternalException/);
    const attempts = decrypts() - count;
    expect(attempts).toBeGreaterThan(1);
    expect(attempts).toBeLessThanOrEqual(50);
  });

  it('gives up after maxAttempts with ERR_KMS_UNAVAILABLE', async () => {
    sim.faults.internalError(1000, 503, 'Decrypt');
    const err = await codeOf(getTrustedSessionKey(options({ retry: { maxAttempts: 3, baseDelayMs: 1 } })));
    expect(err).toMatchObject({ code: 'ERR_KMS_UNAVAILABLE', message: expect.stringContaining('after 3 attempts') });
  });

  it('survives a connection reset mid-response and a truncated body', async () => {
    sim.faults.resetConnection(1, 'Decrypt');
    expect((await getTrustedSessionKey(options())).keyObject.export()).toEqual(Buffer.from(tskPlaintext));
    expect(lastTrustedSessionKeyTimings()!.attempts).toBe(2);
    sim.faults.truncateBody(1, 'Decrypt');
    expect((await getTrustedSessionKey(options())).keyObject.export()).toEqual(Buffer.from(tskPlaintext));
    expect(lastTrustedSessionKeyTimings()!.attempts).toBe(2);
  });

  it('rejects a CMS envelope made for another key with ERR_CMS_DECRYPT_FAILED', async () => {
    const role = sim.principal('EnclaveInstanceRole');
    const kms = new KMSClient({
      region: 'us-east-1',
      credentials: { accessKeyId: role.accessKeyId, secretAccessKey: role.secretAccessKey, sessionToken: role.sessionToken! },
      requestHandler: new NodeHttpHandler({ httpsAgent: createStreamHttpsAgent({ connect: () => connectSocket({ family: 'unix', path: proxyPath }), servername: sim.hostname, ca: sim.caPem }) }),
      maxAttempts: 1,
    });
    // A man in the middle (or a confused proxy) swaps in an envelope for someone else's key.
    kms.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        (result.output as { CiphertextForRecipient?: Uint8Array }).CiphertextForRecipient = buildRecipientEnvelope(new Uint8Array(32).fill(9), rsaPair().publicKey);
        return result;
      },
      { step: 'initialize', name: 'swapEnvelope' },
    );
    const err = await codeOf(getTrustedSessionKey(options({ kms })));
    expect(err).toMatchObject({ code: 'ERR_CMS_DECRYPT_FAILED', message: 'CMS EnvelopedData could not be decrypted with this private key' });
  });

  it('coalesces 200 concurrent calls into one KMS request, each caller with its own key copy', async () => {
    const count = decrypts();
    const keys = await Promise.all(Array.from({ length: 200 }, () => getTrustedSessionKey(options())));
    expect(decrypts() - count).toBe(1);
    expect(new Set(keys).size).toBe(200);
    keys[0]!.dispose();
    expect(keys[1]!.keyObject.export()).toEqual(Buffer.from(tskPlaintext));
  });

  it('caches for cacheTtl when asked', async () => {
    const count = decrypts();
    await getTrustedSessionKey(options({ cacheTtl: 60_000 }));
    await getTrustedSessionKey(options({ cacheTtl: 60_000 }));
    expect(decrypts() - count).toBe(1);
  });

  it('never shows the key in errors, logs or util.inspect', async () => {
    const hex = Buffer.from(tskPlaintext).toString('hex');
    const b64 = Buffer.from(tskPlaintext).toString('base64');
    const tsk = await getTrustedSessionKey(options());
    const texts = [inspect(tsk, { depth: 10, showHidden: true }), JSON.stringify(tsk), String(tsk), `${tsk}`, inspect({ nested: { tsk } }, { depth: 10 })];
    const other = createSimulatedEnclave({ pcrs: { 0: 'cd'.repeat(48) }, pki: enclave.pki });
    const denied = await codeOf(getTrustedSessionKey(options({}, other)));
    texts.push(denied.message, inspect(denied, { depth: 10 }));
    texts.push(JSON.stringify(sim.audit));
    for (const text of texts) {
      expect(text).not.toContain(hex);
      expect(text).not.toContain(b64);
    }
    expect(inspect(tsk)).toContain('[REDACTED]');
  });
});
